package evict

import (
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
	start  time.Time
	base   int64 // start in Unix nanoseconds
	res    int64
	coarse atomic.Int64
}

// NewTimebase returns a Timebase reading c, or the system clock when c is nil.
// For the system clock, Coarse returns a reading at most resolution old,
// rounded up by resolution, provided Refresh is called at least that often.
func NewTimebase(c Clock, resolution time.Duration) *Timebase {
	t := &Timebase{clock: c, start: time.Now(), res: int64(max(resolution, 0))}
	t.base = t.start.UnixNano()
	t.Refresh()
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
// the call as long as Refresh keeps up; for an injected clock, Now.
func (t *Timebase) Coarse() int64 {
	if t.clock != nil {
		return t.Now()
	}
	return t.coarse.Load()
}

// Refresh re-reads the clock for Coarse.
func (t *Timebase) Refresh() {
	if t.clock == nil {
		t.coarse.Store(clampStamp(t.Now() + t.res))
	}
}

// WallNow returns Now as a time.Time, for APIs that want a clock function.
func (t *Timebase) WallNow() time.Time { return t.Time(t.Now()) }

// Time converts a stamp back to a time.Time.
func (t *Timebase) Time(stamp int64) time.Time { return time.Unix(0, stamp) }

func clampStamp(ns int64) int64 { return min(max(ns, 0), MaxStamp) }
