package bench

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// TestCreateGetDelete checks the common semantics every workload relies on.
func TestCreateGetDelete(t *testing.T) {
	ks := keys(3)
	for _, c := range Contenders {
		t.Run(c.Name, func(t *testing.T) {
			r := c.New(Config{})
			defer r.Close()
			if err := r.Create(ks[0]); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := r.Create(ks[0]); err == nil {
				t.Fatal("second Create of one ID succeeded")
			} else if !c.Sessions && !errors.Is(err, ErrExists) {
				t.Fatalf("second Create: %v, want ErrExists", err)
			}
			if err := r.Create(ks[1]); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if !r.Get(ks[0]) || !r.Get(ks[1]) {
				t.Fatal("Get missed a registered ID")
			}
			if r.Get(ks[2]) {
				t.Fatal("Get found an ID never registered")
			}
			if n := r.Len(); n != 2 {
				t.Fatalf("Len = %d, want 2", n)
			}
			r.Delete(ks[0])
			r.Delete(ks[2]) // absent: no effect
			if r.Get(ks[0]) {
				t.Fatal("Get found a deleted ID")
			}
			if n := r.Len(); n != 1 {
				t.Fatalf("Len = %d after Delete, want 1", n)
			}
			if err := r.Create(ks[0]); err != nil {
				t.Fatalf("Create after Delete: %v", err)
			}
		})
	}
}

// TestCap checks what each contender does at its cap: roster, the
// hand-rolled registry and the maps refuse; otter and ttlcache evict.
func TestCap(t *testing.T) {
	ks := keys(3)
	evicts := map[string]bool{"otter": true, "ttlcache": true}
	for _, c := range Contenders {
		t.Run(c.Name, func(t *testing.T) {
			r := c.New(Config{Cap: 2})
			defer r.Close()
			for _, k := range ks[:2] {
				if err := r.Create(k); err != nil {
					t.Fatalf("Create: %v", err)
				}
			}
			err := r.Create(ks[2])
			if evicts[c.Name] {
				if err != nil {
					t.Fatalf("Create at the cap: %v, want an eviction", err)
				}
				r.Sweep()
				if n := r.Len(); n > 2 {
					t.Fatalf("Len = %d at cap 2", n)
				}
				return
			}
			if err == nil {
				t.Fatal("Create at the cap succeeded")
			}
			if !c.Sessions && !errors.Is(err, ErrFull) {
				t.Fatalf("Create at the cap: %v, want ErrFull", err)
			}
			r.Delete(ks[0])
			if err := r.Create(ks[2]); err != nil {
				t.Fatalf("Create after freeing a slot: %v", err)
			}
		})
	}
}

// TestExpiry checks idle eviction on a manual clock: an entry idle longer
// than the timeout goes at the next Sweep, one used since stays.
func TestExpiry(t *testing.T) {
	const timeout = time.Minute
	ks := keys(2)
	for _, c := range Contenders {
		if !c.Manual {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			clk := NewManualClock(t0)
			r := c.New(Config{Timeout: timeout, Clock: clk})
			defer r.Close()
			for _, k := range ks {
				if err := r.Create(k); err != nil {
					t.Fatalf("Create: %v", err)
				}
			}
			clk.Add(timeout / 2)
			if n := r.Sweep(); n != 0 {
				t.Fatalf("Sweep before the timeout evicted %d", n)
			}
			if !r.Get(ks[1]) {
				t.Fatal("Get missed a live entry")
			}
			// otter may leave an access time up to a second off.
			clk.Add(timeout/2 + 2*time.Second)
			if n := r.Sweep(); n != 1 {
				t.Fatalf("Sweep evicted %d, want 1", n)
			}
			if r.Get(ks[0]) {
				t.Fatal("Get found an entry idle past the timeout")
			}
			if !r.Get(ks[1]) {
				t.Fatal("Sweep evicted an entry used within the timeout")
			}
			if n := r.Len(); n != 1 {
				t.Fatalf("Len = %d after the sweep, want 1", n)
			}
		})
	}
}

// TestTTL checks the per-entry time-to-live the workloads give the
// contenders that read the wall clock, and otter.
func TestTTL(t *testing.T) {
	ks := keys(2)
	for _, c := range Contenders {
		t.Run(c.Name, func(t *testing.T) {
			clk := NewManualClock(t0)
			r := c.New(Config{Clock: clk})
			defer r.Close()
			tc, ok := r.(TTLCreator)
			if !ok {
				if !c.Manual {
					t.Fatal("a contender that reads the wall clock must implement TTLCreator")
				}
				t.Skip("driven by the manual clock")
			}
			if err := tc.CreateTTL(ks[0], time.Nanosecond); err != nil {
				t.Fatalf("CreateTTL: %v", err)
			}
			if err := r.Create(ks[1]); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := tc.CreateTTL(ks[1], time.Nanosecond); err == nil {
				t.Fatal("CreateTTL of a registered ID succeeded")
			}
			clk.Add(2 * time.Second) // otter's timer wheel turns in steps of about 1.07s
			time.Sleep(2 * time.Millisecond)
			if n := r.Sweep(); n != 1 {
				t.Fatalf("Sweep evicted %d, want 1", n)
			}
			if r.Get(ks[0]) || !r.Get(ks[1]) {
				t.Fatal("Sweep evicted the wrong entry")
			}
		})
	}
}

// TestGoCacheNoRefresh documents that a go-cache Get does not postpone the
// expiry, which counts from the creation.
func TestGoCacheNoRefresh(t *testing.T) {
	k := keys(1)[0]
	r := NewGoCache(Config{}).(*goCache)
	defer r.Close()
	if err := r.CreateTTL(k, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		r.Get(k)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	if r.Get(k) {
		t.Fatal("go-cache kept an entry past its TTL although it was read throughout")
	}
}

func TestHistogram(t *testing.T) {
	h := NewHistogram(100 * time.Microsecond)
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != 1000 || h.Max() != time.Millisecond {
		t.Fatalf("count %d, max %v", h.Count(), h.Max())
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.Quantile(tc.q)
		if d := got - tc.want; d < -tc.want/30 || d > tc.want/30 {
			t.Errorf("Quantile(%v) = %v, want %v within 3%%", tc.q, got, tc.want)
		}
	}
	n, sum := h.Slow()
	if n != 900 || sum != time.Duration(900*(101+1000)/2)*time.Microsecond {
		t.Errorf("Slow() = %d, %v", n, sum)
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if i := histIndex(v); histLow(i) > v || (i+1 < histBuckets && histLow(i+1) <= v) {
			t.Fatalf("value %d in bucket %d [%d, %d)", v, i, histLow(i), histLow(i+1))
		}
	}
	o := NewHistogram(0)
	o.Record(time.Second)
	h.Merge(o)
	if h.Count() != 1001 || h.Max() != time.Second || h.Mean() <= 500*time.Microsecond {
		t.Fatalf("after Merge: count %d, max %v, mean %v", h.Count(), h.Max(), h.Mean())
	}
}
