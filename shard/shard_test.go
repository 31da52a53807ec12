package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// readStable runs n readers that Get the stable keys 0..stable-1 (stamped
// at 1000) and keys never inserted until stop, failing t on a miss of the
// one or a hit of the other. It returns once every reader has read.
func readStable(t *testing.T, m *Map[int], stable, n int, stop *atomic.Bool, wg *sync.WaitGroup) {
	var started sync.WaitGroup
	started.Add(n)
	for r := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for i := 0; i < 1000 || !stop.Load(); i++ {
				if i == 1000 {
					started.Done()
				}
				k := rng.IntN(stable)
				if v, ok := m.Get(key(k), 1000); !ok || v != k {
					t.Errorf("Get(%q) = %d, %v while the table was replaced", key(k), v, ok)
					if i < 1000 {
						started.Done()
					}
					return
				}
				if _, ok := m.Get(fmt.Sprintf("never-%d", k), 1000); ok {
					t.Errorf("Get found a key never inserted")
					if i < 1000 {
						started.Done()
					}
					return
				}
			}
		})
	}
	started.Wait()
}

// TestReadersDuringGrowth runs lock-free readers of a few stable keys while
// a writer inserts 60k more into the same shard, so that its table is
// outgrown and replaced ten times under them: the shard's growth
// counter proves it was. A grown table published before every entry is in
// it makes readers miss stable keys.
func TestReadersDuringGrowth(t *testing.T) {
	m := New[int](1)
	const stable = 64
	for i := range stable {
		if err := m.Insert(NewEntry(key(i), i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	s := &m.shards[0]
	s.mu.Lock()
	grows := s.grows
	s.mu.Unlock()
	var stop atomic.Bool
	var readers sync.WaitGroup
	readStable(t, m, stable, 4, &stop, &readers)
	for i := stable; i < 60_000; i++ {
		if err := m.Insert(NewEntry(key(i), i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	grows = s.grows - grows
	s.mu.Unlock()
	stop.Store(true)
	readers.Wait()
	if grows < 8 {
		t.Errorf("the table grew %d times under the readers, want at least 8", grows)
	}
}

// TestReadersDuringShrink runs lock-free readers of a few stable keys while
// 60k other keys of their shard leave by Remove, Delete and Sweep, so that
// its table shrinks under them: the shard's shrink counter proves it did.
// Afterwards the table holds exactly the live entries and every key that
// left can be inserted again: a shrink that copies the leaving entry before
// its slot is cleared leaves it in the new table, its key taken forever.
func TestReadersDuringShrink(t *testing.T) {
	m := New[int](1)
	const stable, n = 64, 60_000
	es := make([]*Entry[int], n)
	for i := range n {
		st := int64(1000)
		if i >= stable {
			st = 0
		}
		es[i] = NewEntry(key(i), i, st)
		if err := m.Insert(es[i]); err != nil {
			t.Fatal(err)
		}
	}
	s := &m.shards[0]
	var stop atomic.Bool
	var readers sync.WaitGroup
	readStable(t, m, stable, 4, &stop, &readers)
	for i := stable; i < n; i++ {
		switch i % 3 {
		case 0:
			m.Remove(es[i])
		case 1:
			m.Delete(key(i))
		}
		if i%10_000 == 0 {
			m.Sweep(1000, 500, nil, func(int) {}) // evicts those stamped 0 and left
		}
	}
	m.Sweep(1000, 500, nil, func(int) {})
	s.mu.Lock()
	shrinks, live, held := s.shrinks, s.live, 0
	s.table.Load().each(func(*Entry[int]) bool { held++; return true })
	s.mu.Unlock()
	stop.Store(true)
	readers.Wait()
	if shrinks < 2 {
		t.Errorf("the table shrank %d times under the readers, want at least 2", shrinks)
	}
	if live != stable || held != stable {
		t.Errorf("after the removals: live = %d, table holds %d; want %d", live, held, stable)
	}
	for i := stable; i < n; i++ {
		if err := m.Insert(NewEntry(key(i), i, 0)); err != nil {
			t.Fatalf("Insert of %q after it left: %v", key(i), err)
		}
	}
}

// TestMatchByte checks matchByte against the bytes of the control word: it
// must flag every byte equal to b, and it may flag a byte that is not equal
// only above one that is (a borrow from the true match), never below all of
// them nor in a word with none.
func TestMatchByte(t *testing.T) {
	ctrls := []uint64{
		0x80_01_00_85_85_9a_00_ff,
		0x80_81_01_82_83_84_85_86,
		0x00_00_00_00_00_00_00_00,
		0x85_84_85_01_01_86_85_00,
		0xff_fe_80_81_01_00_01_80,
	}
	for _, ctrl := range ctrls {
		for _, b := range []uint8{0x00, 0x01, 0x80, 0x81, 0x85, 0x86, 0xff} {
			m := matchByte(ctrl, b)
			seen := false // a true match below this byte
			for i := range 8 {
				eq := uint8(ctrl>>(8*i)) == b
				flagged := m&(0x80<<(8*i)) != 0
				switch {
				case eq && !flagged:
					t.Errorf("matchByte(%#x, %#x) = %#x misses byte %d", ctrl, b, m, i)
				case !eq && flagged && !seen:
					t.Errorf("matchByte(%#x, %#x) = %#x flags byte %d, with no match below it", ctrl, b, m, i)
				}
				seen = seen || eq
			}
			if m&^msbs != 0 {
				t.Errorf("matchByte(%#x, %#x) = %#x sets bits other than the bytes' top bits", ctrl, b, m)
			}
		}
		// hasEmpty is exact: full bytes have the top bit set, deleted ones
		// are 0x01.
		want := false
		for i := range 8 {
			want = want || uint8(ctrl>>(8*i)) == ctrlEmpty
		}
		if got := hasEmpty(ctrl); got != want {
			t.Errorf("hasEmpty(%#x) = %v, want %v", ctrl, got, want)
		}
	}
	// The tag of a hash always has the top bit set, so it never equals the
	// empty or deleted bytes.
	for _, h := range []uint64{0, 1, 0x7f, 0xff, xxh3.HashString("x")} {
		if tg := tagOf(h); tg&tagBit == 0 {
			t.Errorf("tagOf(%#x) = %#x", h, tg)
		}
	}
}

// TestInsertRejectsRemoved checks that an entry removed by any path can
// never be inserted again: it would be unreachable (Get fails on a removed
// entry) and its key unusable. The key itself stays usable.
func TestInsertRejectsRemoved(t *testing.T) {
	removers := map[string]func(m *Map[int], e *Entry[int]){
		"Remove": func(m *Map[int], e *Entry[int]) { m.Remove(e) },
		"Delete": func(m *Map[int], e *Entry[int]) { m.Delete(e.Key()) },
		"Sweep":  func(m *Map[int], e *Entry[int]) { m.Sweep(100, 50, nil, func(int) {}) },
		"Drain":  func(m *Map[int], e *Entry[int]) { m.Drain(func(int) {}) },
	}
	for name, remove := range removers {
		t.Run(name, func(t *testing.T) {
			m := New[int](2)
			e := NewEntry("k", 1, 0)
			if err := m.Insert(e); err != nil {
				t.Fatal(err)
			}
			remove(m, e)
			if !e.Removed() {
				t.Fatal("entry not removed")
			}
			if name == "Drain" {
				m = New[int](2) // a drained Map refuses everything; try another
			}
			err := m.Insert(e)
			if !errors.Is(err, ErrRemoved) || !strings.Contains(err.Error(), `"k"`) {
				t.Fatalf("Insert of a removed entry = %v, want ErrRemoved naming the key", err)
			}
			if _, ok := m.Get("k", 10); ok || m.Len() != 0 {
				t.Fatalf("after the refused Insert: Get found it or Len = %d", m.Len())
			}
			if err := m.Insert(NewEntry("k", 2, 0)); err != nil {
				t.Fatalf("Insert of a fresh entry under the key: %v", err)
			}
			if v, ok := m.Get("k", 10); !ok || v != 2 {
				t.Errorf("Get = %d, %v; want the fresh 2", v, ok)
			}
		})
	}
	m := New[int](1)
	e := NewEntry("k", 1, 0)
	_ = m.Insert(e)
	if err := m.Insert(e); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("second Insert of a live entry = %v, want ErrExists naming the key", err)
	}
}

// TestHashIsSeeded: keys chosen to share one shard and one probe group in a
// Map are spread over the shards and groups of another, so callers who
// choose IDs cannot pile them onto one lock, heap or probe chain.
func TestHashIsSeeded(t *testing.T) {
	a, b := New[int](64), New[int](64)
	var chosen []string
	for i := 0; len(chosen) < 2000; i++ {
		if k := key(i); a.shardOf(a.hash(k)) == &a.shards[0] {
			chosen = append(chosen, k)
		}
	}
	for _, k := range chosen {
		if err := b.Insert(NewEntry(k, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	most := 0
	for i := range b.shards {
		most = max(most, b.shards[i].live)
	}
	// 2000 keys over 64 shards: about 31 each; a shared hash puts 2000 in one.
	if most > 200 {
		t.Errorf("keys chosen into one shard of a Map put %d of 2000 into one shard of another", most)
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
