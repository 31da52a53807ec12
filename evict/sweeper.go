package evict

import (
	"sync"
	"time"
)

// Sweeper drives idle eviction for a registry: one goroutine calls sweep
// every interval and, when the Timebase reads the system clock, a second
// keeps its coarse clock fresh. The clock has a goroutine of its own so that
// a sweep that takes long (an eviction hook that blocks, say) cannot stall
// the stamps that Gets record, which would make the next sweep evict
// sessions used in the meantime. Stop ends both; it is safe to call from
// many goroutines, but not from within sweep, which it waits for.
type Sweeper struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Resolution returns the coarse-clock resolution the sweeper uses for a
// cleanup interval: a quarter of it, between 1 ms and 1 s. A stamp is at
// most that much later than the use it records, so eviction is at most that
// much late, plus the Timebase's Lag if the refresh has fallen behind.
func Resolution(interval time.Duration) time.Duration {
	if interval <= 0 {
		return time.Second
	}
	return min(max(interval/4, time.Millisecond), time.Second)
}

// StartSweeper starts the sweeper: sweep every interval (never, if interval
// <= 0) and, when tb reads the system clock, a refresh of tb every
// Resolution(interval). When there is nothing to do, it starts no
// goroutine.
//
// sweep runs on the sweeper goroutine, one call at a time; the goroutines
// hold only what sweep and tb reference, so a registry can let its owner be
// garbage collected and stop the sweeper from a cleanup.
func StartSweeper(tb *Timebase, interval time.Duration, sweep func()) *Sweeper {
	s := &Sweeper{stop: make(chan struct{})}
	if interval > 0 {
		s.wg.Go(func() { s.every(interval, sweep) })
	}
	if !tb.Manual() {
		s.wg.Go(func() { s.every(Resolution(interval), tb.Refresh) })
	}
	return s
}

// every calls f every d until Stop.
func (s *Sweeper) every(d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// Stop stops the sweeper and waits until a sweep in progress has returned.
// It is idempotent and safe for concurrent use.
func (s *Sweeper) Stop() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}
