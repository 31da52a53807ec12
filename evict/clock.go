package evict

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a source of wall-clock time. Implementations must be safe for
// concurrent use. Tests inject a manual clock to drive idle eviction without
// sleeping.
type Clock interface {
	Now() time.Time
}

// MaxStamp is the largest stamp a Timebase returns. Registries may use the
// bits above it for flags.
const MaxStamp = 1<<62 - 1

// Timebase turns a Clock into int64 stamps. Its methods are safe for
// concurrent use.
type Timebase struct {
	clock  Clock // nil means the system clock
	exact  bool  // Coarse reads the clock, as it does for an injected Clock
	start  time.Time
	base   int64 // start in Unix nanoseconds
	res    int64
	coarse atomic.Int64

	// The most a Coarse stamp has been behind the clock, in the current
	// window of Cutoff and in the one before; see Cutoff.
	lag, lagPrev atomic.Int64
	windowMu     sync.Mutex
	windowStart  int64 // guarded by windowMu
}

// NewTimebase returns a Timebase reading c, or the system clock when c is nil.
// For the system clock, Coarse returns a reading at most resolution old,
// rounded up by resolution, provided Refresh is called at least that often;
// when it is not, Lag says by how much Coarse has been behind.
func NewTimebase(c Clock, resolution time.Duration) *Timebase {
	return newTimebase(c, resolution, c != nil)
}

// newTimebase is NewTimebase, with a choice of exact (Coarse reads the
// clock) or coarse readings; tests use a coarse Timebase on an injected
// clock to play a refresh that falls behind.
func newTimebase(c Clock, resolution time.Duration, exact bool) *Timebase {
	t := &Timebase{clock: c, exact: exact, start: time.Now(), res: int64(max(resolution, 0))}
	t.base = t.start.UnixNano()
	t.coarse.Store(clampStamp(t.Now() + t.res))
	t.windowStart = t.Now()
	return t
}

// Manual reports whether the Timebase reads an injected Clock.
func (t *Timebase) Manual() bool { return t.clock != nil }

// Now returns the exact current stamp.
func (t *Timebase) Now() int64 {
	if t.clock != nil {
		return clampStamp(t.clock.Now().UnixNano())
	}
	// time.Since reads only the monotonic clock: cheaper than time.Now and
	// immune to the wall clock being set.
	return clampStamp(t.base + int64(time.Since(t.start)))
}

// Coarse returns a stamp for the hot path: for the system clock, the last
// Refresh plus the resolution, which is never earlier than Now at the time of
// the call as long as Refresh keeps up (and when it does not, the next
// Refresh adds how far behind it was to Lag); for an injected clock, Now.
func (t *Timebase) Coarse() int64 {
	if t.exact {
		return t.Now()
	}
	return t.coarse.Load()
}

// Refresh re-reads the clock for Coarse, and records in Lag how far the
// reading it replaces had fallen behind the clock. Concurrent calls are
// safe: Coarse never moves backwards.
func (t *Timebase) Refresh() {
	if t.exact {
		return
	}
	next := clampStamp(t.Now() + t.res)
	for {
		old := t.coarse.Load()
		if old >= next {
			return // a concurrent Refresh got further
		}
		if !t.coarse.CompareAndSwap(old, next) {
			continue
		}
		// Every Coarse that returned old did so before the swap, so the use
		// it stamped was at most this much later than old. The clock is
		// read again after the swap to make that bound hold.
		lag := t.Now() - old
		for cur := t.lag.Load(); lag > cur && !t.lag.CompareAndSwap(cur, lag); cur = t.lag.Load() {
		}
		return
	}
}

// Lag returns the most that a stamp from Coarse has recently been found
// earlier than the use it recorded: zero while Refresh keeps up, and more
// when the goroutine that calls it was held up (a loaded machine, a long
// pause of the process). Cutoff says how long a lag counts. Always zero for
// an injected clock, which Coarse reads exactly.
func (t *Timebase) Lag() time.Duration {
	return time.Duration(max(t.lag.Load(), t.lagPrev.Load()))
}

// Cutoff returns the stamp before which an entry last used at that stamp
// has been idle for longer than timeout, seen at stamp now: now - timeout,
// less Lag, so that a stamp that Coarse handed out early cannot make an
// eviction early. Eviction may then come late by up to one resolution plus
// Lag, never early.
//
// A lag counts until stamps handed out that early can no longer be found
// in a registry swept with this cutoff: Cutoff keeps the worst lag of its
// current window and of the one before, and starts a new window once the
// current one is longer than timeout, twice the lag and one resolution. So
// one long pause delays eviction for two such windows, not for ever. (If
// the timeout is raised meanwhile, a stamp from before the pause can still
// be evicted up to the lag early.)
func (t *Timebase) Cutoff(now int64, timeout time.Duration) int64 {
	t.windowMu.Lock()
	defer t.windowMu.Unlock()
	lag := max(t.lag.Load(), t.lagPrev.Load())
	if now-t.windowStart > int64(timeout)+2*lag+t.res {
		t.lagPrev.Store(t.lag.Swap(0))
		t.windowStart = now
	}
	return now - int64(timeout) - lag
}

// WallNow returns Now as a time.Time, for APIs that want a clock function.
func (t *Timebase) WallNow() time.Time { return t.Time(t.Now()) }

// Time converts a stamp back to a time.Time.
func (t *Timebase) Time(stamp int64) time.Time { return time.Unix(0, stamp) }

func clampStamp(ns int64) int64 { return min(max(ns, 0), MaxStamp) }
