package bench

import (
	"errors"
	"time"

	"github.com/rosterhq/roster/evict"
	"github.com/rosterhq/roster/session"
	"github.com/rosterhq/roster/shard"
)

// rosterCore is roster's registry core on its own: a shard.Map of small
// values, stamped from an evict.Timebase (Get reads Coarse, one atomic load;
// the sweep reads Now), with the cap kept by an atomic counter. With the
// system clock an evict.Sweeper goroutine refreshes the coarse clock every
// CoarseResolution; the workloads drive Sweep themselves.
type rosterCore struct {
	m       *shard.Map[*Payload]
	tb      *evict.Timebase
	sw      *evict.Sweeper
	count   counter
	timeout int64
}

// NewRosterCore returns the roster registry core contender.
func NewRosterCore(cfg Config) Registry {
	r := &rosterCore{m: shard.New[*Payload](0), count: counter{cap: int64(cfg.Cap)}, timeout: int64(cfg.timeout())}
	if cfg.Clock != nil {
		r.tb = evict.NewTimebase(cfg.Clock, 0)
	} else {
		r.tb = evict.NewTimebase(nil, CoarseResolution)
		// An interval of four resolutions makes the sweeper refresh the
		// clock every CoarseResolution; its sweep does nothing.
		r.sw = evict.StartSweeper(r.tb, 4*CoarseResolution, func() {})
	}
	return r
}

func (r *rosterCore) Create(id string) error {
	if !r.count.reserve() {
		return ErrFull
	}
	if err := r.m.Insert(shard.NewEntry(id, payload, r.tb.Now())); err != nil {
		r.count.release()
		if errors.Is(err, shard.ErrExists) {
			return ErrExists
		}
		return err
	}
	return nil
}

func (r *rosterCore) Get(id string) bool {
	_, ok := r.m.Get(id, r.tb.Coarse())
	return ok
}

func (r *rosterCore) Delete(id string) {
	if _, ok := r.m.Delete(id); ok {
		r.count.release()
	}
}

func (r *rosterCore) Sweep() int {
	now := r.tb.Now()
	return r.m.Sweep(now, r.tb.Cutoff(now, time.Duration(r.timeout)), nil, func(*Payload) { r.count.release() })
}

func (r *rosterCore) Len() int { return r.m.Len() }

func (r *rosterCore) Close() {
	if r.sw != nil {
		r.sw.Stop()
	}
	r.m.Drain(func(*Payload) {})
}

// rosterManager is roster's session.Manager with real sessions, used only
// where a workload fits it: Get throughput, churn and bytes per session.
type rosterManager struct {
	m *session.Manager
}

// NewRosterManager returns the session.Manager contender. It runs no
// background sweeper (WithCleanupInterval(0)): the workloads call Sweep.
func NewRosterManager(cfg Config) Registry {
	opts := []session.Option{
		session.WithMaxSessions(cfg.Cap),
		session.WithSessionTimeout(cfg.timeout()),
		session.WithCleanupInterval(0),
	}
	if cfg.Clock != nil {
		opts = append(opts, session.WithClock(cfg.Clock))
	}
	return &rosterManager{m: session.NewManager(opts...)}
}

// Create returns the Manager's own error: a workload only counts failures.
func (r *rosterManager) Create(id string) error {
	return r.m.CreateSessionWithID(id, nil)
}

func (r *rosterManager) Get(id string) bool {
	_, err := r.m.GetSession(id)
	return err == nil
}

func (r *rosterManager) Delete(id string) { _ = r.m.CloseSession(id) }

func (r *rosterManager) Sweep() int { return r.m.Sweep() }

func (r *rosterManager) Len() int { return r.m.SessionCount() }

func (r *rosterManager) Close() { r.m.Shutdown() }
