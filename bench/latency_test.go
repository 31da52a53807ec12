package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The schedule of BenchmarkGetLatency: 1M entries, of which 500k are hot
// (read by the readers, never idle long enough to expire) and 500k cold, in
// latCohorts cohorts of 10k (1%) whose idle times are one tick apart, so
// that one cohort expires per tick; the writer re-creates it right after
// the sweep, and it expires again latCohorts ticks later.
const (
	latTick      = 50 * time.Millisecond
	latCohorts   = 50
	latCohortN   = bigN / 100
	latHotN      = bigN - latCohorts*latCohortN
	latHotGroups = 25 // the writer uses one group of hot entries per tick
	latSlow      = 100 * time.Microsecond
	// On the manual clock a tick is latStep of virtual time and the idle
	// timeout is latCohorts-1 ticks. A minute, rather than a second, lets
	// otter's timer wheel (whose finest step is about 1.07s) expire one
	// cohort per tick.
	latStep    = time.Minute
	latTimeout = (latCohorts - 1) * latStep
)

// BenchmarkGetLatency measures Get latency while the sweeper runs and
// writers are present: 1M entries, one 1% cohort expiring per 50 ms tick,
// swept and re-created on every tick by the benchmark goroutine, which also
// uses 1/25 of the hot entries per tick so that none of them expires. The
// readers (GOMAXPROCS-1 goroutines, at least one) Get uniformly random hot
// entries and time each Get with the monotonic clock: the interval between
// two readings covers one Get and one random number.
//
// Reported: p50, p99, p99.9 and max Get latency in ns; slow-% is the share
// of reader time spent in Gets slower than 100µs; sweep-ms and
// sweep-max-ms the mean and longest Sweep; evicted/tick the mean count it
// evicted. ns/op is the mean Get latency, not the tick. Run it with
// -benchtime=Nx: each op is one tick.
//
// The manual-clock contenders (otter included) run on a ManualClock that
// moves one minute per tick. ttlcache and go-cache read the wall clock: the
// cold cohorts get per-entry time-to-live that expires them on the same
// schedule in real time, and the hot entries a one-hour timeout (go-cache
// does not refresh on Get).
func BenchmarkGetLatency(b *testing.B) {
	ks := keys(bigN)
	hot := ks[:latHotN]
	cohort := func(c int) []string {
		lo := latHotN + c*latCohortN
		return ks[lo : lo+latCohortN]
	}
	group := func(g int) []string {
		n := latHotN / latHotGroups
		return hot[g*n : (g+1)*n]
	}
	for _, c := range rotate(Registries()) {
		b.Run("impl="+c.Name, func(b *testing.B) {
			var (
				r    Registry
				tick func(j int) (evicted int, sweep time.Duration)
			)
			if c.Manual {
				clk := NewManualClock(t0)
				r = c.New(Config{Cap: bigCap, Timeout: latTimeout, Clock: clk})
				for i := range latCohorts {
					clk.Set(t0.Add(time.Duration(i) * latStep))
					mustCreate(b, r, cohort(i))
				}
				clk.Set(t0.Add(latTimeout))
				mustCreate(b, r, hot)
				tick = func(j int) (int, time.Duration) {
					// Cohort j%latCohorts, last used latTimeout+latStep/2
					// ago, has just expired; the others have not.
					clk.Set(t0.Add(time.Duration(j)*latStep + latTimeout + latStep/2))
					start := time.Now()
					n := r.Sweep()
					took := time.Since(start)
					for _, k := range cohort(j % latCohorts) {
						_ = r.Create(k)
					}
					for _, k := range group(j % latHotGroups) {
						r.Get(k)
					}
					return n, took
				}
			} else {
				r = c.New(Config{Cap: bigCap, Timeout: time.Hour})
				tc := r.(TTLCreator)
				mustCreate(b, r, hot)
				cold := ks[latHotN:]
				// Measure, then schedule: time one creation of the cold
				// cohorts (with a TTL that does not expire during it),
				// take them out again, and give the real creation twice
				// that before the first deadline. On a slow or busy machine
				// the schedule starts later; it never fails.
				start := time.Now()
				for _, k := range cold {
					if err := tc.CreateTTL(k, time.Hour); err != nil {
						b.Fatalf("CreateTTL: %v", err)
					}
				}
				took := time.Since(start)
				for _, k := range cold {
					r.Delete(k)
				}
				runtime.GC()
				base := time.Now().Add(2*took + 100*time.Millisecond)
				deadline := make([]time.Time, latCohorts)
				for i := range latCohorts {
					deadline[i] = base.Add(time.Duration(i)*latTick + latTick/2)
					for _, k := range cohort(i) {
						if err := tc.CreateTTL(k, time.Until(deadline[i])); err != nil {
							b.Fatalf("CreateTTL: %v", err)
						}
					}
				}
				if late := time.Since(base); late > 0 {
					// Still late (a pause twice as long as the measured
					// creation): the first ticks sweep more than one
					// cohort, which evicted/tick shows. Say so, go on.
					b.Logf("setup ended %v after the first deadline (measured creation %v)", late, took)
				}
				time.Sleep(time.Until(base))
				next := 0
				tick = func(int) (int, time.Duration) {
					start := time.Now()
					n := r.Sweep()
					took := time.Since(start)
					for deadline[next].Before(start) {
						deadline[next] = deadline[next].Add(latCohorts * latTick)
						for _, k := range cohort(next) {
							_ = tc.CreateTTL(k, time.Until(deadline[next]))
						}
						next = (next + 1) % latCohorts
					}
					return n, took
				}
			}
			defer r.Close()
			runtime.GC()

			nr := max(1, runtime.GOMAXPROCS(0)-1)
			readers := make([]latReader, nr)
			var stop atomic.Bool
			var wg sync.WaitGroup
			for i := range readers {
				wg.Go(func() { readers[i].run(r, hot, uint64(i+1), &stop) })
			}
			var evicted int
			var sweepSum, sweepMax time.Duration
			j := 0
			next := time.Now()
			for b.Loop() {
				next = waitTick(next)
				n, took := tick(j)
				evicted += n
				sweepSum += took
				sweepMax = max(sweepMax, took)
				j++
			}
			stop.Store(true)
			wg.Wait()

			h := NewHistogram(latSlow)
			var readTime time.Duration
			var misses uint64
			for i := range readers {
				h.Merge(readers[i].h)
				readTime += readers[i].elapsed
				misses += readers[i].misses
			}
			if misses > 0 {
				b.Errorf("%d Gets of hot entries missed", misses)
			}
			_, slow := h.Slow()
			b.ReportMetric(float64(h.Quantile(0.50)), "p50-ns")
			b.ReportMetric(float64(h.Quantile(0.99)), "p99-ns")
			b.ReportMetric(float64(h.Quantile(0.999)), "p99.9-ns")
			b.ReportMetric(float64(h.Max()), "max-ns")
			b.ReportMetric(100*float64(slow)/float64(readTime), "slow-%")
			b.ReportMetric(float64(sweepSum.Microseconds())/1e3/float64(b.N), "sweep-ms")
			b.ReportMetric(float64(sweepMax.Microseconds())/1e3, "sweep-max-ms")
			b.ReportMetric(float64(evicted)/float64(b.N), "evicted/tick")
			b.ReportMetric(float64(h.Mean()), "ns/op")
		})
	}
}

// waitTick waits until one latTick after the start of the previous tick,
// next, and returns the start of this one. It spins (yielding to other
// goroutines) rather than sleeping: on a 2-core machine, a writer thread
// that the kernel wakes 20 times a second tends to be woken on the reader's
// core and to share it with the reader for a scheduler tick (4 ms), which
// penalizes exactly the contenders whose per-tick work is short. A tick that
// starts late (the previous one overran) starts at once, and the schedule
// restarts from there, as a time.Ticker drops missed ticks.
func waitTick(prev time.Time) time.Time {
	next := prev.Add(latTick)
	if now := time.Now(); now.After(next) {
		return now
	}
	for time.Now().Before(next) {
		runtime.Gosched()
	}
	return next
}

// latReader is one reader goroutine of BenchmarkGetLatency.
type latReader struct {
	h       *Histogram
	elapsed time.Duration
	misses  uint64
}

func (rd *latReader) run(r Registry, hot []string, seed uint64, stop *atomic.Bool) {
	x := newRNG(seed)
	h := NewHistogram(latSlow)
	start := time.Now()
	var prev time.Duration
	for !stop.Load() {
		ok := r.Get(hot[x.intn(len(hot))])
		now := time.Since(start) // one monotonic clock read
		h.Record(now - prev)
		prev = now
		if !ok {
			rd.misses++
		}
	}
	rd.h, rd.elapsed = h, prev
}
