// Package bench compares roster's session registry with what users would
// write or pick instead: a hand-rolled map behind a sync.RWMutex, sync.Map,
// xsync.MapOf, otter, ttlcache and go-cache.
//
// Every contender sits behind one small interface, Registry, and every
// workload in the benchmarks of this package drives that interface only, so
// the contenders run the same code around them. See README.md for the
// workloads, the contenders' semantic differences and the measured results.
package bench

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a Registry's Create returns.
var (
	// ErrExists means the ID is already registered.
	ErrExists = errors.New("bench: id already registered")
	// ErrFull means the registry holds as many entries as its cap allows.
	// The caches (otter, ttlcache) never return it: they evict instead.
	ErrFull = errors.New("bench: registry at its cap")
)

// Registry is what every workload drives. Its methods are safe for
// concurrent use.
type Registry interface {
	// Create registers id with the default idle timeout. It returns
	// ErrExists if id is registered, ErrFull if the registry refuses at its
	// cap.
	Create(id string) error
	// Get looks id up and records a use (where the contender does that).
	Get(id string) bool
	// Delete removes id, if present.
	Delete(id string)
	// Sweep removes the entries idle for longer than the timeout, as the
	// contender's janitor would on one tick, and reports how many it
	// removed (-1 where the contender does not say).
	Sweep() int
	// Len returns the number of entries.
	Len() int
	// Close stops the contender's goroutines and drops its entries.
	Close()
}

// TTLCreator is implemented by the contenders whose clock cannot be
// injected (ttlcache, go-cache) and by otter, whose clock may not move
// backwards: the workloads give them per-entry time-to-live to reproduce on
// the wall clock the expiry schedule they set up with a ManualClock for the
// others.
type TTLCreator interface {
	CreateTTL(id string, ttl time.Duration) error
}

// Config configures a contender.
type Config struct {
	// Cap is the most entries held at once; 0 means no cap.
	Cap int
	// Timeout is the idle timeout; 0 means DefaultTimeout.
	Timeout time.Duration
	// Clock, when not nil, is the only time source of a contender whose
	// Contender.Manual is true; the others ignore it. When nil, contenders
	// read the system clock (see Contender for how each reads it).
	Clock *ManualClock
}

// DefaultTimeout is the idle timeout of a Config that gives none.
const DefaultTimeout = 30 * time.Minute

// CoarseResolution is how often the coarse clocks of this package, of roster
// and of otter are refreshed when a contender reads one on its hot path.
const CoarseResolution = 10 * time.Millisecond

func (c Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// Payload is the value every contender stores per entry: one pointer to a
// single shared Payload, so that heap figures measure the registry alone.
type Payload struct{ _ int }

var payload = &Payload{}

// ManualClock is a clock that moves only when told to. It satisfies both
// roster's evict.Clock and otter's Clock; its Tick returns nil, which turns
// otter's periodic clean-up off (the workloads call Sweep instead).
type ManualClock struct{ ns atomic.Int64 }

// NewManualClock returns a ManualClock reading t.
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.Set(t)
	return c
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// NowNano returns the clock's time in Unix nanoseconds.
func (c *ManualClock) NowNano() int64 { return c.ns.Load() }

// Set moves the clock to t, forwards or backwards.
func (c *ManualClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Add moves the clock by d.
func (c *ManualClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// Tick returns nil: no ticks.
func (c *ManualClock) Tick(time.Duration) <-chan time.Time { return nil }

// coarseClock is the clock that the sync.Map and xsync.MapOf contenders
// read on Get when no ManualClock is given: Unix nanoseconds, refreshed by a
// goroutine every CoarseResolution and rounded up by it, as roster's
// evict.Timebase does. A ManualClock replaces it in the workloads that
// control time.
type coarseClock struct {
	manual *ManualClock
	now    atomic.Int64
	stop   chan struct{}
	done   sync.WaitGroup
}

func newCoarseClock(manual *ManualClock) *coarseClock {
	c := &coarseClock{manual: manual}
	if manual != nil {
		return c
	}
	c.refresh()
	c.stop = make(chan struct{})
	c.done.Go(func() {
		t := time.NewTicker(CoarseResolution)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.refresh()
			}
		}
	})
	return c
}

func (c *coarseClock) refresh() {
	c.now.Store(time.Now().UnixNano() + int64(CoarseResolution))
}

// Coarse returns the stamp for the hot path.
func (c *coarseClock) Coarse() int64 {
	if c.manual != nil {
		return c.manual.NowNano()
	}
	return c.now.Load()
}

// Exact returns an exact stamp, for the janitor.
func (c *coarseClock) Exact() int64 {
	if c.manual != nil {
		return c.manual.NowNano()
	}
	return time.Now().UnixNano()
}

func (c *coarseClock) Stop() {
	if c.stop != nil {
		close(c.stop)
		c.done.Wait()
		c.stop = nil
	}
}
