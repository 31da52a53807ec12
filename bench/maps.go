package bench

import (
	"sync"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v3"
)

// stamped is the value the sync.Map and xsync.MapOf contenders store: the
// last-use stamp, in Unix nanoseconds from a coarse clock, next to the value.
type stamped struct {
	last  atomic.Int64
	value *Payload
}

// touch records a use at now, writing only when the stamp moves, as roster's
// entries do: with a coarse clock most Gets then write nothing.
func (s *stamped) touch(now int64) {
	if s.last.Load() < now {
		s.last.Store(now)
	}
}

// counter keeps the entry count of the maps that have no O(1) length and
// enforces the cap with it.
type counter struct {
	n   atomic.Int64
	cap int64
}

func (c *counter) reserve() bool {
	if c.n.Add(1) > c.cap && c.cap > 0 {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *counter) release() { c.n.Add(-1) }

// syncMap is a sync.Map with an atomic last-use stamp per entry and a
// janitor that ranges over everything.
type syncMap struct {
	m       sync.Map
	count   counter
	clock   *coarseClock
	timeout int64
}

// NewSyncMap returns the sync.Map contender.
func NewSyncMap(cfg Config) Registry {
	return &syncMap{count: counter{cap: int64(cfg.Cap)}, clock: newCoarseClock(cfg.Clock), timeout: int64(cfg.timeout())}
}

func (r *syncMap) Create(id string) error {
	if !r.count.reserve() {
		return ErrFull
	}
	s := &stamped{value: payload}
	s.last.Store(r.clock.Exact())
	if _, loaded := r.m.LoadOrStore(id, s); loaded {
		r.count.release()
		return ErrExists
	}
	return nil
}

func (r *syncMap) Get(id string) bool {
	v, ok := r.m.Load(id)
	if ok {
		v.(*stamped).touch(r.clock.Coarse())
	}
	return ok
}

func (r *syncMap) Delete(id string) {
	if _, ok := r.m.LoadAndDelete(id); ok {
		r.count.release()
	}
}

func (r *syncMap) Sweep() int {
	cutoff := r.clock.Exact() - r.timeout
	n := 0
	r.m.Range(func(k, v any) bool {
		if v.(*stamped).last.Load() < cutoff && r.m.CompareAndDelete(k, v) {
			r.count.release()
			n++
		}
		return true
	})
	return n
}

func (r *syncMap) Len() int { return int(r.count.n.Load()) }

func (r *syncMap) Close() {
	r.clock.Stop()
	r.m.Clear()
}

// xsyncMap is an xsync.MapOf with an atomic last-use stamp per entry and a
// janitor that ranges over everything.
type xsyncMap struct {
	m       *xsync.MapOf[string, *stamped]
	count   counter
	clock   *coarseClock
	timeout int64
}

// NewXsync returns the xsync.MapOf contender.
func NewXsync(cfg Config) Registry {
	return &xsyncMap{
		m:       xsync.NewMapOf[string, *stamped](),
		count:   counter{cap: int64(cfg.Cap)},
		clock:   newCoarseClock(cfg.Clock),
		timeout: int64(cfg.timeout()),
	}
}

func (r *xsyncMap) Create(id string) error {
	if !r.count.reserve() {
		return ErrFull
	}
	s := &stamped{value: payload}
	s.last.Store(r.clock.Exact())
	if _, loaded := r.m.LoadOrStore(id, s); loaded {
		r.count.release()
		return ErrExists
	}
	return nil
}

func (r *xsyncMap) Get(id string) bool {
	s, ok := r.m.Load(id)
	if ok {
		s.touch(r.clock.Coarse())
	}
	return ok
}

func (r *xsyncMap) Delete(id string) {
	if _, ok := r.m.LoadAndDelete(id); ok {
		r.count.release()
	}
}

func (r *xsyncMap) Sweep() int {
	cutoff := r.clock.Exact() - r.timeout
	n := 0
	r.m.Range(func(k string, s *stamped) bool {
		if s.last.Load() < cutoff {
			// Delete only the entry looked at, not one re-created since.
			r.m.Compute(k, func(old *stamped, loaded bool) (*stamped, bool) {
				if loaded && old == s {
					n++
					r.count.release()
					return old, true
				}
				return old, !loaded
			})
		}
		return true
	})
	return n
}

func (r *xsyncMap) Len() int { return int(r.count.n.Load()) }

func (r *xsyncMap) Close() {
	r.clock.Stop()
	r.m.Clear()
}
