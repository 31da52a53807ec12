package evict

import (
	"sync"
	"time"
)

// Sweeper is the one goroutine that drives idle eviction for a registry: it
// calls sweep every interval and keeps the Timebase's coarse clock fresh.
// Stop ends it; it is safe to call from many goroutines.
type Sweeper struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Resolution returns the coarse-clock resolution the sweeper uses for a
// cleanup interval: a quarter of it, between 1 ms and 1 s. A stamp is at
// most that much later than the use it records, so eviction is at most that
// much late.
func Resolution(interval time.Duration) time.Duration {
	if interval <= 0 {
		return time.Second
	}
	return min(max(interval/4, time.Millisecond), time.Second)
}

// StartSweeper starts the sweeper goroutine. It calls sweep every interval
// (never, if interval <= 0) and, when tb reads the system clock, refreshes tb
// every Resolution(interval). When there is nothing to do, it starts no
// goroutine.
//
// sweep runs on the sweeper goroutine, one call at a time; the goroutine
// holds only what sweep and tb reference, so a registry can let its owner be
// garbage collected and stop the sweeper from a cleanup.
func StartSweeper(tb *Timebase, interval time.Duration, sweep func()) *Sweeper {
	s := &Sweeper{stop: make(chan struct{}), done: make(chan struct{})}
	if interval <= 0 && tb.Manual() {
		close(s.done)
		return s
	}
	go s.run(tb, interval, sweep)
	return s
}

func (s *Sweeper) run(tb *Timebase, interval time.Duration, sweep func()) {
	defer close(s.done)
	var sweepC, clockC <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		sweepC = t.C
	}
	if !tb.Manual() {
		t := time.NewTicker(Resolution(interval))
		defer t.Stop()
		clockC = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-clockC:
			tb.Refresh()
		case <-sweepC:
			tb.Refresh()
			sweep()
		}
	}
}

// Stop stops the sweeper and waits until a sweep in progress has returned.
// It is idempotent and safe for concurrent use.
func (s *Sweeper) Stop() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
