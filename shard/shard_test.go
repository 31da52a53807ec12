package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zeebo/xxh3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(i int) string { return fmt.Sprintf("key-%08d", i) }

func fill(t testing.TB, m *Map[int], n int, now int64) []*Entry[int] {
	t.Helper()
	es := make([]*Entry[int], n)
	for i := range n {
		es[i] = NewEntry(key(i), i, now)
		if err := m.Insert(es[i]); err != nil {
			t.Fatalf("Insert(%q): %v", key(i), err)
		}
	}
	return es
}

func TestNewRoundsShards(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{0, DefaultShards}, {-3, DefaultShards}, {1, 1}, {3, 4}, {64, 64}, {65, 128}} {
		if got := New[int](tt.in).Shards(); got != tt.want {
			t.Errorf("New(%d).Shards() = %d, want %d", tt.in, got, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New(MaxShards+1) did not panic")
		}
	}()
	New[int](MaxShards + 1)
}

func TestInsertGetDeleteRemove(t *testing.T) {
	for _, shards := range []int{1, 4, 64} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			m := New[int](shards)
			es := fill(t, m, 1000, 10)
			if n := m.Len(); n != 1000 {
				t.Fatalf("Len = %d, want 1000", n)
			}
			for i, e := range es {
				if v, ok := m.Get(e.Key(), 20); !ok || v != i {
					t.Fatalf("Get(%q) = %d, %v; want %d, true", e.Key(), v, ok, i)
				}
				if e.LastUsed() != 20 {
					t.Fatalf("LastUsed after Get = %d, want 20", e.LastUsed())
				}
			}
			if err := m.Insert(NewEntry(key(5), 5, 0)); !errors.Is(err, ErrExists) {
				t.Errorf("Insert of a present key = %v, want ErrExists", err)
			}
			if _, ok := m.Get("missing", 0); ok {
				t.Error("Get(missing) found something")
			}
			if v, ok := m.Delete(key(7)); !ok || v != 7 {
				t.Errorf("Delete = %d, %v; want 7, true", v, ok)
			}
			if _, ok := m.Delete(key(7)); ok {
				t.Error("second Delete succeeded")
			}
			if !m.Remove(es[8]) || m.Remove(es[8]) {
				t.Error("Remove should succeed exactly once")
			}
			if m.Remove(es[7]) {
				t.Error("Remove after Delete succeeded")
			}
			for _, i := range []int{7, 8} {
				if _, ok := m.Get(key(i), 30); ok {
					t.Errorf("Get(%q) after removal found it", key(i))
				}
				if !es[i].Removed() || es[i].Touch(40) {
					t.Errorf("entry %d: Removed = %v, Touch succeeded", i, es[i].Removed())
				}
			}
			// A new entry may take a removed key; Remove of the old entry
			// must not take the new one out.
			fresh := NewEntry(key(8), 80, 0)
			if err := m.Insert(fresh); err != nil {
				t.Fatalf("re-Insert: %v", err)
			}
			if m.Remove(es[8]) {
				t.Error("Remove of the old entry succeeded")
			}
			if v, ok := m.Get(key(8), 0); !ok || v != 80 {
				t.Errorf("Get after re-insert = %d, %v; want 80, true", v, ok)
			}
			if e, ok := m.Load(key(8)); !ok || e != fresh {
				t.Errorf("Load = %p, %v; want the fresh entry", e, ok)
			}
			if n := m.Len(); n != 999 {
				t.Errorf("Len = %d, want 999", n)
			}
		})
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	m := New[int](0)
	fill(t, m, 100, 0)
	k := key(42)
	if n := testing.AllocsPerRun(1000, func() { m.Get(k, 1) }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func TestTouchKeepsTheLatestUse(t *testing.T) {
	e := NewEntry("k", 0, 100)
	for _, tt := range []struct {
		now, want int64
	}{{50, 100}, {150, 150}, {150, 150}, {120, 150}, {200, 200}} {
		if !e.Touch(tt.now) {
			t.Fatal("Touch of a live entry failed")
		}
		if got := e.LastUsed(); got != tt.want {
			t.Errorf("Touch(%d): LastUsed = %d, want %d", tt.now, got, tt.want)
		}
	}
}

func TestRangeAndDrain(t *testing.T) {
	m := New[int](8)
	fill(t, m, 500, 0)
	m.Delete(key(3))
	var seen []int
	m.Range(func(e *Entry[int]) bool { seen = append(seen, e.Value()); return true })
	if len(seen) != 499 || slices.Contains(seen, 3) {
		t.Fatalf("Range saw %d entries (3 included: %v), want 499 without 3", len(seen), slices.Contains(seen, 3))
	}
	stops := 0
	m.Range(func(*Entry[int]) bool { stops++; return stops < 10 })
	if stops != 10 {
		t.Errorf("Range went on after false: %d calls", stops)
	}
	var drained []int
	if n := m.Drain(func(v int) { drained = append(drained, v) }); n != 499 || len(drained) != 499 {
		t.Errorf("Drain = %d with %d calls, want 499", n, len(drained))
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len after Drain = %d", n)
	}
	if err := m.Insert(NewEntry("late", 1, 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Insert after Drain = %v, want ErrClosed", err)
	}
	if _, ok := m.Get(key(1), 0); ok {
		t.Error("Get after Drain found an entry")
	}
}

// TestGrowKeepsEveryKey grows one shard through many rehashes, with
// deletions making tombstones, and checks every key at every size.
func TestGrowKeepsEveryKey(t *testing.T) {
	m := New[int](1)
	live := map[int]bool{}
	for i := range 20000 {
		if err := m.Insert(NewEntry(key(i), i, 0)); err != nil {
			t.Fatal(err)
		}
		live[i] = true
		if i%3 == 0 {
			m.Delete(key(i / 2))
			delete(live, i/2)
		}
	}
	for i := range 20000 {
		if _, ok := m.Get(key(i), 0); ok != live[i] {
			t.Fatalf("Get(%q) = %v, want %v", key(i), ok, live[i])
		}
	}
	s := &m.shards[0]
	if s.live != len(live) {
		t.Errorf("live = %d, want %d", s.live, len(live))
	}
	if c := s.table.Load().capacity(); s.used*8 > c*7 {
		t.Errorf("table over its load limit: used %d of %d", s.used, c)
	}
}

// TestReadersNeverMissAStableKey runs lock-free readers while writers insert,
// delete and force rehashes in the same shards: keys present throughout
// must be found by every Get, and keys never inserted never found.
func TestReadersNeverMissAStableKey(t *testing.T) {
	m := New[int](2)
	const stable = 2000
	fill(t, m, stable, 0)
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for round := 0; !stop.Load(); round++ {
				base := stable + (w*1000+round%50)*1000
				for i := range 300 {
					_ = m.Insert(NewEntry(key(base+i), base+i, 0))
				}
				for i := range 300 {
					m.Delete(key(base + i))
				}
			}
		})
	}
	for r := range 4 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for range 100000 {
				i := rng.IntN(stable)
				if v, ok := m.Get(key(i), 1); !ok || v != i {
					t.Errorf("Get(%q) = %d, %v during writes", key(i), v, ok)
					return
				}
				if _, ok := m.Get(fmt.Sprintf("never-%d", i), 1); ok {
					t.Errorf("Get found a key never inserted")
					return
				}
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writers.Wait()
}

func TestMatchByte(t *testing.T) {
	ctrl := uint64(0x80_01_00_85_85_9a_00_ff)
	for _, tt := range []struct {
		b    uint8
		want []int // byte indexes that must be flagged
	}{{0x85, []int{3, 4}}, {0x00, []int{1, 5}}, {0x01, []int{6}}, {0xff, []int{0}}, {0x80, []int{7}}} {
		m := matchByte(ctrl, tt.b)
		for _, i := range tt.want {
			if m&(0x80<<(8*i)) == 0 {
				t.Errorf("matchByte(%#x, %#x) = %#x misses byte %d", ctrl, tt.b, m, i)
			}
		}
	}
	if !hasEmpty(ctrl) || hasEmpty(0x80_81_01_82_83_84_85_86) {
		t.Error("hasEmpty wrong")
	}
	// The tag of a hash always has the top bit set and never equals the
	// empty or deleted bytes.
	for _, h := range []uint64{0, 1, 0x7f, xxh3.HashString("x")} {
		if tg := tagOf(h); tg&tagBit == 0 {
			t.Errorf("tagOf(%#x) = %#x", h, tg)
		}
	}
}

// TestTableShrinks: a shard that empties out gives its table back.
func TestTableShrinks(t *testing.T) {
	m := New[int](1)
	es := fill(t, m, 50000, 0)
	big := m.shards[0].table.Load().capacity()
	for _, e := range es[10:] {
		m.Remove(e)
	}
	s := &m.shards[0]
	if c := s.table.Load().capacity(); c >= big/8 {
		t.Errorf("capacity %d after removing all but 10 of 50000 (was %d)", c, big)
	}
	for i := range 10 {
		if _, ok := m.Get(key(i), 0); !ok {
			t.Fatalf("lost %q in the shrink", key(i))
		}
	}
}
