package bench

import (
	"errors"
	"time"

	"github.com/rosterhq/roster/bench/internal/xsyncshard"
	"github.com/rosterhq/roster/evict"
)

// rosterCoreXsync is rosterCore over xsyncshard, the registry core as
// issue 12 proposed it (one xsync.MapOf for lookups, shards for writer locks
// and idle heaps): the same adapter line for line, so that the two differ
// only in the map.
type rosterCoreXsync struct {
	m       *xsyncshard.Map[*Payload]
	tb      *evict.Timebase
	sw      *evict.Sweeper
	count   counter
	timeout int64
}

// NewRosterCoreXsync returns the contender of roster's registry core on
// xsync.MapOf.
func NewRosterCoreXsync(cfg Config) Registry {
	r := &rosterCoreXsync{m: xsyncshard.New[*Payload](0), count: counter{cap: int64(cfg.Cap)}, timeout: int64(cfg.timeout())}
	if cfg.Clock != nil {
		r.tb = evict.NewTimebase(cfg.Clock, 0)
	} else {
		r.tb = evict.NewTimebase(nil, CoarseResolution)
		r.sw = evict.StartSweeper(r.tb, 4*CoarseResolution, func() {})
	}
	return r
}

func (r *rosterCoreXsync) Create(id string) error {
	if !r.count.reserve() {
		return ErrFull
	}
	if err := r.m.Insert(xsyncshard.NewEntry(id, payload, r.tb.Now())); err != nil {
		r.count.release()
		if errors.Is(err, xsyncshard.ErrExists) {
			return ErrExists
		}
		return err
	}
	return nil
}

func (r *rosterCoreXsync) Get(id string) bool {
	_, ok := r.m.Get(id, r.tb.Coarse())
	return ok
}

func (r *rosterCoreXsync) Delete(id string) {
	if _, ok := r.m.Delete(id); ok {
		r.count.release()
	}
}

func (r *rosterCoreXsync) Sweep() int {
	now := r.tb.Now()
	return r.m.Sweep(now, r.tb.Cutoff(now, time.Duration(r.timeout)), nil, func(*Payload) { r.count.release() })
}

func (r *rosterCoreXsync) Len() int { return r.m.Len() }

func (r *rosterCoreXsync) Close() {
	if r.sw != nil {
		r.sw.Stop()
	}
	r.m.Drain(func(*Payload) {})
}
