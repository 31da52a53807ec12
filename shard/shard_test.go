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
	if n := m.Len(); n != len(live) {
		t.Errorf("Len = %d, want %d", n, len(live))
	}
	if st := m.m.Stats(); st.TotalGrowths == 0 {
		t.Errorf("the map never grew: %+v", st)
	}
}

// TestReadersDuringGrowthAndShrink runs lock-free readers while writers
// insert tens of thousands of keys (well past the map's first size) and take
// them all out again by Remove, Delete and Sweep, so that the map grows and
// shrinks several times under the readers: the map's own counters prove it
// did. Keys present throughout must be found by every Get, keys never
// inserted never found, and a key taken out never found again.
func TestReadersDuringGrowthAndShrink(t *testing.T) {
	m := New[int](4)
	// Few stable keys, so that the map shrinks once the churn is out: xsync
	// halves its table when it is at most 1/128 full.
	const stable, writers, perWriter = 16, 3, 15000
	for i := range stable {
		if err := m.Insert(NewEntry(key(i), i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	before := m.m.Stats()

	var stop atomic.Bool
	var started, readers sync.WaitGroup
	var gets atomic.Int64
	started.Add(4)
	for r := range 4 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			n := 0
			for ; n < 1000 || !stop.Load(); n++ {
				if n == 1000 {
					started.Done()
				}
				i := rng.IntN(stable)
				// Stable entries are stamped 1000 and the sweeps cut off
				// at 500: a Get at 1000 keeps them as they were.
				if v, ok := m.Get(key(i), 1000); !ok || v != i {
					t.Errorf("Get(%q) = %d, %v while the map resized", key(i), v, ok)
					break
				}
				if _, ok := m.Get(fmt.Sprintf("never-%d", i), 1000); ok {
					t.Errorf("Get found a key never inserted")
					break
				}
			}
			gets.Add(int64(n))
		})
	}
	started.Wait() // every reader is running before the first write

	var ws sync.WaitGroup
	for w := range writers {
		ws.Go(func() {
			base := stable + w*perWriter
			es := make([]*Entry[int], perWriter)
			for i := range es {
				es[i] = NewEntry(key(base+i), base+i, 0)
				if err := m.Insert(es[i]); err != nil {
					t.Errorf("Insert: %v", err)
					return
				}
			}
			for i, e := range es {
				switch i % 3 {
				case 0:
					m.Remove(e)
				case 1:
					m.Delete(e.Key())
				} // the rest go by Sweep
			}
			for i := range es {
				if _, ok := m.Get(key(base+i), 0); ok && i%3 != 2 {
					t.Errorf("Get(%q) found a removed key", key(base+i))
					return
				}
			}
		})
	}
	ws.Go(func() {
		// Sweeps racing the writers: they evict the churn entries
		// (stamped 0) but never a stable one (stamped 1000).
		for range 50 {
			m.Sweep(1000, 500, nil, func(v int) {
				if v < stable {
					t.Errorf("swept stable entry %d", v)
				}
			})
		}
	})
	ws.Wait()
	m.Sweep(1000, 500, nil, func(int) {})
	stop.Store(true)
	readers.Wait()

	after := m.m.Stats()
	growths, shrinks := after.TotalGrowths-before.TotalGrowths, after.TotalShrinks-before.TotalShrinks
	t.Logf("%d Gets during %d growths and %d shrinks", gets.Load(), growths, shrinks)
	if growths < 3 || shrinks < 1 {
		t.Errorf("the map grew %d times and shrank %d times under the readers; want >= 3 and >= 1", growths, shrinks)
	}
	if n := m.Len(); n != stable || after.Size != stable {
		t.Errorf("Len = %d, map size %d after the churn, want %d", n, after.Size, stable)
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
	// An entry never inserted but from a drained Map is removed too.
	m := New[int](1)
	e := NewEntry("d", 1, 0)
	_ = m.Insert(e)
	m.Drain(func(int) {})
	if err := New[int](1).Insert(e); !errors.Is(err, ErrRemoved) {
		t.Errorf("Insert of a drained entry into another Map = %v, want ErrRemoved", err)
	}
	if err := m.Insert(NewEntry("x", 1, 0)); !errors.Is(err, ErrExists) && !errors.Is(err, ErrClosed) {
		t.Errorf("Insert after Drain = %v", err)
	}
}

// TestShardHashIsSeeded: keys chosen to share one shard of a Map are spread
// over the shards of another, so callers who choose IDs cannot pile them
// onto one shard's lock and heap.
func TestShardHashIsSeeded(t *testing.T) {
	a, b := New[int](64), New[int](64)
	var chosen []string
	for i := 0; len(chosen) < 2000; i++ {
		if k := key(i); a.shardOf(k) == &a.shards[0] {
			chosen = append(chosen, k)
		}
	}
	most := 0
	for _, k := range chosen {
		if err := b.Insert(NewEntry(k, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range b.shards {
		most = max(most, b.shards[i].live)
	}
	// 2000 keys over 64 shards: about 31 each; a shared hash puts 2000 in one.
	if most > 200 {
		t.Errorf("keys chosen into one shard of a Map put %d of 2000 into one shard of another", most)
	}
}
