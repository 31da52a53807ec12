package evict

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestHeapAgainstModel drives a Heap and a sorted slice with the same random
// operations and checks that the minimum always agrees.
func TestHeapAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Heap[int]
	var model []int64 // keys; values are unique: the step that pushed them
	for step := range 20000 {
		switch op := r.IntN(10); {
		case op < 5 || len(model) == 0:
			k := r.Int64N(1000)
			h.Push(k, step)
			model = append(model, k)
		case op < 7:
			h.PopMin()
			slices.Sort(model)
			model = model[1:]
		case op < 8 && h.Len() > 0:
			// Remove a value near the end, as a short-lived entry leaves.
			i := h.Len() - 1 - r.IntN(min(h.Len(), 8))
			v, k := h.At(i).Value, h.At(i).At
			if !h.RemoveNearEnd(v, 8) {
				t.Fatalf("step %d: RemoveNearEnd missed %d at %d of %d", step, v, i, h.Len())
			}
			j := slices.Index(model, k)
			model = slices.Delete(model, j, j+1)
			if h.RemoveNearEnd(-1, 8) {
				t.Fatalf("step %d: RemoveNearEnd removed a value never pushed", step)
			}
		case op < 9:
			k := h.Min().At + r.Int64N(100)
			h.SetMin(k)
			slices.Sort(model)
			model[0] = k
		default:
			// Raise keys in place, drop some, then rebuild: the bulk path.
			for i := 0; i < h.Len(); {
				if r.IntN(4) == 0 {
					h.RemoveAt(i)
					continue
				}
				h.SetAt(i, h.At(i).At+r.Int64N(50))
				i++
			}
			h.Init()
			model = model[:0]
			for i := range h.Len() {
				model = append(model, h.At(i).At)
			}
		}
		if h.Len() != len(model) {
			t.Fatalf("step %d: Len = %d, model %d", step, h.Len(), len(model))
		}
		if len(model) > 0 && h.Min().At != slices.Min(model) {
			t.Fatalf("step %d: Min = %d, model %d", step, h.Min().At, slices.Min(model))
		}
	}
}

func TestHeapFilter(t *testing.T) {
	var h Heap[int]
	for i := range 1000 {
		h.Push(int64(1000-i), i)
	}
	h.Filter(func(v int) bool { return v%10 == 0 })
	if h.Len() != 100 {
		t.Fatalf("Len after Filter = %d, want 100", h.Len())
	}
	var got []int64
	for h.Len() > 0 {
		got = append(got, h.Min().At)
		if h.Min().Value%10 != 0 {
			t.Fatalf("Filter kept %d", h.Min().Value)
		}
		h.PopMin()
	}
	if !slices.IsSorted(got) {
		t.Errorf("popped out of order after Filter: %v", got)
	}
	if cap(h.items) > 256 {
		t.Errorf("Filter kept capacity %d for 100 items", cap(h.items))
	}
}

func TestTimebaseManual(t *testing.T) {
	c := &manualClock{t: time.Unix(1000, 0)}
	tb := NewTimebase(c, time.Second)
	if !tb.Manual() {
		t.Fatal("Manual() = false for an injected clock")
	}
	if got, want := tb.Now(), int64(1000e9); got != want {
		t.Errorf("Now = %d, want %d", got, want)
	}
	c.Add(1500 * time.Millisecond)
	if got, want := tb.Coarse(), int64(1001.5e9); got != want {
		t.Errorf("Coarse with a manual clock = %d, want the exact %d", got, want)
	}
	if got := tb.Time(tb.Now()); !got.Equal(c.Now()) {
		t.Errorf("Time(Now()) = %v, want %v", got, c.Now())
	}
	c.t = time.Unix(-5, 0)
	if got := tb.Now(); got != 0 {
		t.Errorf("Now before 1970 = %d, want it clamped to 0", got)
	}
}

// TestTimebaseCoarseNeverBehind checks the promise eviction relies on: with
// the system clock, Coarse is never earlier than Now as long as Refresh is
// called at least once per resolution. Three times, it refreshes and then
// reads without refreshing for half the resolution, and then lets the
// reading grow older than a resolution before the next Refresh, so that a
// Refresh that does not move Coarse on fails the next round.
func TestTimebaseCoarseNeverBehind(t *testing.T) {
	const res = 50 * time.Millisecond
	tb := NewTimebase(nil, res)
	if tb.Manual() {
		t.Fatal("Manual() = true for the system clock")
	}
	reads := 0
	for round := range 3 {
		tb.Refresh()
		refreshed := tb.Now()
		n := tb.Now()
		for ; n-refreshed < int64(res/2); n = tb.Now() {
			if c := tb.Coarse(); c < n {
				t.Fatalf("round %d: Coarse %d is behind Now %d, %v after a Refresh", round, c, n, time.Duration(n-refreshed))
			}
			reads++
		}
		for tb.Now()-refreshed <= int64(res) {
			runtime.Gosched()
		}
	}
	// A round can make no read if the goroutine is descheduled for half a
	// resolution right after its Refresh; three in a row would be news.
	if reads == 0 {
		t.Fatal("no reads within half a resolution of a Refresh")
	}
	wall := time.Now().UnixNano()
	if d := tb.Now() - wall; d < -int64(time.Second) || d > int64(time.Second) {
		t.Errorf("Now is %v away from the wall clock", time.Duration(d))
	}
}

// TestTimebaseCoarseBound plays the coarse clock on an injected one: Coarse
// stays at or after Now for exactly one resolution after a Refresh, and a
// Refresh that comes later records by how much Coarse fell behind.
func TestTimebaseCoarseBound(t *testing.T) {
	const res = 10 * time.Millisecond
	c := &manualClock{t: time.Unix(1000, 0)}
	tb := newTimebase(c, res, false)
	for _, d := range []time.Duration{0, 1, res / 2, res - 1, res} {
		c.Add(d - c.Now().Sub(time.Unix(1000, 0)))
		if co, n := tb.Coarse(), tb.Now(); co < n {
			t.Fatalf("%v after the Refresh: Coarse %d behind Now %d", d, co, n)
		}
	}
	c.Add(3 * time.Millisecond) // the refresh is 3 ms late
	if co, n := tb.Coarse(), tb.Now(); co >= n {
		t.Fatalf("Coarse %d not behind Now %d one resolution and 3ms after the Refresh", co, n)
	}
	if tb.Lag() != 0 {
		t.Fatalf("Lag = %v before the late Refresh", tb.Lag())
	}
	tb.Refresh()
	if got := tb.Lag(); got != 3*time.Millisecond {
		t.Errorf("Lag = %v after a Refresh 3ms late, want 3ms", got)
	}
	// A timely Refresh later does not lower it: stamps from the late
	// period may still be in use.
	c.Add(res / 2)
	tb.Refresh()
	if got := tb.Lag(); got != 3*time.Millisecond {
		t.Errorf("Lag = %v after a timely Refresh, want it kept at 3ms", got)
	}
}

// TestCutoffCoversTheLag is issue 11's "the coarse clock can be early": a
// Get stamps a use with a Coarse reading 40 ms behind the clock (its
// refresh stalled), and the sweep that follows must not evict the entry
// before it has really been idle for the timeout. With a cutoff of plain
// now - timeout it would be evicted 40 ms early.
func TestCutoffCoversTheLag(t *testing.T) {
	const res, timeout = 10 * time.Millisecond, time.Minute
	c := &manualClock{t: time.Unix(1000, 0)}
	tb := newTimebase(c, res, false)
	c.Add(50 * time.Millisecond) // no Refresh meanwhile
	used := tb.Now()             // when the use really happened
	stamp := tb.Coarse()         // what the Get recorded
	if early := time.Duration(used - stamp); early != 40*time.Millisecond {
		t.Fatalf("stamp is %v early, want 40ms", early)
	}
	// The clock goroutine catches up, then refreshes on time, once per
	// resolution, until the sweep, which refreshes and then cuts off.
	tb.Refresh()
	until := func(at int64) {
		for tb.Now()+int64(res) <= at {
			c.Add(res)
			tb.Refresh()
		}
		c.Add(time.Duration(at - tb.Now()))
		tb.Refresh()
	}
	for _, tt := range []struct {
		idle    time.Duration
		evicted bool
	}{
		{timeout - time.Millisecond, false},
		{timeout, false},
		{timeout + time.Millisecond, true},
	} {
		until(used + int64(tt.idle))
		now := tb.Now()
		if got := stamp < tb.Cutoff(now, timeout); got != tt.evicted {
			t.Errorf("idle %v (lag %v): evicted = %v, want %v", tt.idle, tb.Lag(), got, tt.evicted)
		}
	}
}

// TestLagCountsLongEnough: after a stall, the sweeps keep the lag in their
// cutoff for at least the timeout plus twice the lag plus one resolution
// (by then no stamp handed out during the stall can be left unswept), and
// drop it within two such windows, so that one pause does not delay
// eviction for ever.
func TestLagCountsLongEnough(t *testing.T) {
	const res, timeout, stall = 10 * time.Millisecond, time.Second, 100 * time.Millisecond
	c := &manualClock{t: time.Unix(1000, 0)}
	tb := newTimebase(c, res, false)
	window := int64(timeout + 2*(stall-res) + res)
	sweep := func() int64 { // as core.sweep: refresh, then cut off
		tb.Refresh()
		now := tb.Now()
		return now - tb.Cutoff(now, timeout) - int64(timeout)
	}
	for range 300 { // the first window passes without a stall
		c.Add(res)
		if m := sweep(); m != 0 {
			t.Fatalf("margin %v with no stall", time.Duration(m))
		}
	}
	c.Add(stall) // the clock goroutine and the sweeper stall together
	seen := tb.Now()
	if m := sweep(); m != int64(stall-res) {
		t.Fatalf("margin %v right after the stall, want %v", time.Duration(m), stall-res)
	}
	var dropped int64
	for tb.Now()-seen <= 3*window {
		c.Add(res)
		m := sweep()
		if m == 0 && dropped == 0 {
			dropped = tb.Now() - seen
		}
		if dropped == 0 && m != int64(stall-res) {
			t.Fatalf("margin %v, want %v until it is dropped", time.Duration(m), stall-res)
		}
	}
	if dropped <= window || dropped > 2*window+int64(res) {
		t.Errorf("the margin was dropped %v after the stall; want after %v, by %v",
			time.Duration(dropped), time.Duration(window), time.Duration(2*window+int64(res)))
	}
	if tb.Lag() != 0 {
		t.Errorf("Lag = %v once dropped", tb.Lag())
	}
}

// TestRefreshConcurrent: Refresh from several goroutines (the clock
// goroutine and sweeps) never moves Coarse backwards.
func TestRefreshConcurrent(t *testing.T) {
	tb := NewTimebase(nil, time.Millisecond)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			prev := tb.Coarse()
			for range 20000 {
				tb.Refresh()
				c := tb.Coarse()
				if c < prev {
					t.Errorf("Coarse went back from %d to %d", prev, c)
					return
				}
				prev = c
			}
		})
	}
	wg.Wait()
}

func TestResolution(t *testing.T) {
	for _, tt := range []struct{ interval, want time.Duration }{
		{0, time.Second},
		{-time.Second, time.Second},
		{time.Millisecond, time.Millisecond},
		{100 * time.Millisecond, 25 * time.Millisecond},
		{time.Minute, time.Second},
	} {
		if got := Resolution(tt.interval); got != tt.want {
			t.Errorf("Resolution(%v) = %v, want %v", tt.interval, got, tt.want)
		}
	}
}

func TestSweeperSweepsAndStops(t *testing.T) {
	tb := NewTimebase(nil, time.Millisecond)
	swept := make(chan struct{}, 1)
	var n atomic.Int64
	s := StartSweeper(tb, time.Millisecond, func() {
		n.Add(1)
		select {
		case swept <- struct{}{}:
		default:
		}
	})
	for range 3 {
		select {
		case <-swept:
		case <-time.After(10 * time.Second):
			t.Fatal("sweeper did not sweep")
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(s.Stop)
	}
	wg.Wait()
	after := n.Load()
	s.Stop()
	if n.Load() != after {
		t.Error("sweeper swept after Stop returned")
	}
}

func TestSweeperManualClockNoIntervalStartsNothing(t *testing.T) {
	tb := NewTimebase(&manualClock{}, time.Second)
	s := StartSweeper(tb, 0, func() { t.Error("swept with interval 0") })
	s.Stop() // goleak in TestMain checks no goroutine was left
}
