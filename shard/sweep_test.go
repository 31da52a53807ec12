package shard

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func sweepAll(m *Map[int], now, cutoff int64, busy func(int) bool) []int {
	var got []int
	m.Sweep(now, cutoff, busy, func(v int) { got = append(got, v) })
	slices.Sort(got)
	return got
}

func checkHeapOrder(t *testing.T, m *Map[int]) {
	t.Helper()
	for si := range m.shards {
		s := &m.shards[si]
		for i := 1; i < s.heap.Len(); i++ {
			if p := (i - 1) / 2; s.heap.At(p).At > s.heap.At(i).At {
				t.Fatalf("shard %d: heap order broken at %d", si, i)
			}
		}
	}
}

func TestSweep(t *testing.T) {
	tests := []struct {
		name    string
		stamps  []int64 // creation stamp of entry i
		touches map[int]int64
		busy    []int
		removed []int // closed by their owner before the sweep
		cutoff  int64
		want    []int
	}{
		{name: "empty", cutoff: 100},
		{name: "nothing expired", stamps: []int64{100, 200}, cutoff: 100},
		{name: "expired go", stamps: []int64{10, 99, 100, 150}, cutoff: 100, want: []int{0, 1}},
		{name: "touched stay", stamps: []int64{10, 20, 30}, touches: map[int]int64{1: 120}, cutoff: 100, want: []int{0, 2}},
		{name: "touched but still old go", stamps: []int64{10, 20}, touches: map[int]int64{0: 50}, cutoff: 100, want: []int{0, 1}},
		{name: "busy stay", stamps: []int64{10, 20, 30}, busy: []int{0, 2}, cutoff: 100, want: []int{1}},
		{name: "removed are not evicted again", stamps: []int64{10, 20, 30}, removed: []int{1}, cutoff: 100, want: []int{0, 2}},
	}
	for _, tt := range tests {
		for _, shards := range []int{1, 8} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, shards), func(t *testing.T) {
				m := New[int](shards)
				es := make([]*Entry[int], len(tt.stamps))
				for i, st := range tt.stamps {
					es[i] = NewEntry(key(i), i, st)
					if err := m.Insert(es[i]); err != nil {
						t.Fatal(err)
					}
				}
				for i, st := range tt.touches {
					m.Get(key(i), st)
				}
				for _, i := range tt.removed {
					m.Remove(es[i])
				}
				got := sweepAll(m, 200, tt.cutoff, func(v int) bool { return slices.Contains(tt.busy, v) })
				if !slices.Equal(got, tt.want) {
					t.Fatalf("evicted %v, want %v", got, tt.want)
				}
				for i := range tt.stamps {
					_, ok := m.Load(key(i))
					gone := slices.Contains(tt.want, i) || slices.Contains(tt.removed, i)
					if ok == gone {
						t.Errorf("entry %d present = %v after sweep", i, ok)
					}
				}
				checkHeapOrder(t, m)
				// A second sweep at the same cutoff finds nothing more.
				if again := sweepAll(m, 200, tt.cutoff, nil); len(again) != 0 {
					t.Errorf("second sweep evicted %v", again)
				}
			})
		}
	}
}

// TestSweepBusyCountsAsUsedNow checks that an entry kept because it was busy
// is recorded as used at the sweep's now: it goes only once that is old.
func TestSweepBusyCountsAsUsedNow(t *testing.T) {
	m := New[int](1)
	fill(t, m, 1, 0)
	busy := true
	if got := sweepAll(m, 100, 50, func(int) bool { return busy }); len(got) != 0 {
		t.Fatalf("busy entry evicted")
	}
	busy = false
	if got := sweepAll(m, 120, 70, nil); len(got) != 0 {
		t.Fatalf("evicted at cutoff 70 though kept as used at 100")
	}
	if got := sweepAll(m, 160, 101, nil); len(got) != 1 {
		t.Fatalf("not evicted at cutoff 101")
	}
}

// TestSweepWorstCase touches every entry after it was recorded, so every one
// looks expired at once: the sweep takes the bulk path and must keep them
// all, leave a valid heap, and evict them all once they are really idle.
func TestSweepWorstCase(t *testing.T) {
	for _, n := range []int{100, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := New[int](1)
			es := fill(t, m, n, 0)
			for i := range es {
				m.Get(key(i), 100+int64(i%7))
			}
			// Close a few and leave a few untouched, so the pass also drops
			// and evicts.
			m.Remove(es[0])
			es[1].stamp.Store(0)
			if got := sweepAll(m, 150, 50, nil); !slices.Equal(got, []int{1}) {
				t.Fatalf("evicted %v, want [1]", got)
			}
			checkHeapOrder(t, m)
			if got := m.shards[0].heap.Len(); got != n-2 {
				t.Errorf("heap holds %d, want %d", got, n-2)
			}
			var want []int
			for i := 2; i < n; i++ {
				if 100+i%7 < 104 {
					want = append(want, i)
				}
			}
			if got := sweepAll(m, 200, 104, nil); !slices.Equal(got, want) {
				t.Errorf("evicted %d at cutoff 104, want the %d touched at 100..103", len(got), len(want))
			}
			if got := sweepAll(m, 300, 200, nil); m.Len() != 0 {
				t.Errorf("%d left after sweeping past every use (last sweep %d)", m.Len(), len(got))
			}
		})
	}
}

// TestSweepRaceWithGet races a Get that uses an entry at a fresh stamp with
// a sweep whose cutoff the entry had passed: the Get must find it and the
// sweep keep it, or the sweep evict it and the Get miss it; never both.
func TestSweepRaceWithGet(t *testing.T) {
	for range 2000 {
		m := New[int](1)
		fill(t, m, 1, 0)
		var found bool
		var evicted []int
		var wg sync.WaitGroup
		wg.Go(func() { _, found = m.Get(key(0), 100) })
		wg.Go(func() { evicted = sweepAll(m, 100, 50, nil) })
		wg.Wait()
		if found == (len(evicted) == 1) {
			t.Fatalf("Get found = %v, sweep evicted %v", found, evicted)
		}
		// The entry a Get found stays in the map, and an evicted one is
		// gone from it.
		if _, ok := m.Load(key(0)); ok != found || m.Len() != len(evicted)^1 {
			t.Fatalf("Get found = %v, Load finds = %v, Len = %d", found, ok, m.Len())
		}
	}
}

// TestRemovedEntriesDoNotPileUp closes entries with eviction never running:
// the heap must not keep more than about twice the live entries.
func TestRemovedEntriesDoNotPileUp(t *testing.T) {
	m := New[int](1)
	for i := range 100000 {
		e := NewEntry(key(i), i, int64(i))
		if err := m.Insert(e); err != nil {
			t.Fatal(err)
		}
		if i%10 != 0 {
			m.Remove(e)
		}
	}
	s := &m.shards[0]
	if s.heap.Len() > 2*s.live+65 {
		t.Errorf("heap holds %d for %d live entries", s.heap.Len(), s.live)
	}
	checkHeapOrder(t, m)
	if got := sweepAll(m, 1<<40, 1<<40, nil); len(got) != 10000 {
		t.Errorf("swept %d, want the 10000 live", len(got))
	}
}
