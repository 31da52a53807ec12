package bench

import (
	"errors"

	"github.com/rosterhq/roster/bench/internal/oldshard"
	"github.com/rosterhq/roster/evict"
)

// rosterCoreOld is rosterCore over oldshard, the registry core as it was
// before issue 12 replaced its hand-written lock-free table by an
// xsync.MapOf: the same adapter line for line, so that the two differ only
// in the map.
type rosterCoreOld struct {
	m       *oldshard.Map[*Payload]
	tb      *evict.Timebase
	sw      *evict.Sweeper
	count   counter
	timeout int64
}

// NewRosterCoreOld returns the contender of roster's registry core on its
// old table.
func NewRosterCoreOld(cfg Config) Registry {
	r := &rosterCoreOld{m: oldshard.New[*Payload](0), count: counter{cap: int64(cfg.Cap)}, timeout: int64(cfg.timeout())}
	if cfg.Clock != nil {
		r.tb = evict.NewTimebase(cfg.Clock, 0)
	} else {
		r.tb = evict.NewTimebase(nil, CoarseResolution)
		r.sw = evict.StartSweeper(r.tb, 4*CoarseResolution, func() {})
	}
	return r
}

func (r *rosterCoreOld) Create(id string) error {
	if !r.count.reserve() {
		return ErrFull
	}
	if err := r.m.Insert(oldshard.NewEntry(id, payload, r.tb.Now())); err != nil {
		r.count.release()
		if errors.Is(err, oldshard.ErrExists) {
			return ErrExists
		}
		return err
	}
	return nil
}

func (r *rosterCoreOld) Get(id string) bool {
	_, ok := r.m.Get(id, r.tb.Coarse())
	return ok
}

func (r *rosterCoreOld) Delete(id string) {
	if _, ok := r.m.Delete(id); ok {
		r.count.release()
	}
}

func (r *rosterCoreOld) Sweep() int {
	now := r.tb.Now()
	return r.m.Sweep(now, now-r.timeout, nil, func(*Payload) { r.count.release() })
}

func (r *rosterCoreOld) Len() int { return r.m.Len() }

func (r *rosterCoreOld) Close() {
	if r.sw != nil {
		r.sw.Stop()
	}
	r.m.Drain(func(*Payload) {})
}
