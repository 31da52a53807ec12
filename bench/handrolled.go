package bench

import (
	"sync"
	"time"
)

// handrolled is what roster's session.Manager replaces, as a user would
// write it: one sync.RWMutex around one map, a mutex per session around its
// LastUsed time, time.Now on every Get, and a janitor that takes the write
// lock and scans every entry on each tick.
type handrolled struct {
	mu       sync.RWMutex
	sessions map[string]*hrSession
	cap      int
	timeout  time.Duration
	now      func() time.Time
}

type hrSession struct {
	mu       sync.Mutex
	LastUsed time.Time
	value    *Payload
}

// NewHandrolled returns the hand-rolled registry.
func NewHandrolled(cfg Config) Registry {
	r := &handrolled{sessions: make(map[string]*hrSession), cap: cfg.Cap, timeout: cfg.timeout(), now: time.Now}
	if cfg.Clock != nil {
		r.now = cfg.Clock.Now
	}
	return r
}

func (r *handrolled) Create(id string) error {
	s := &hrSession{LastUsed: r.now(), value: payload}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sessions[id]; ok {
		return ErrExists
	}
	if r.cap > 0 && len(r.sessions) >= r.cap {
		return ErrFull
	}
	r.sessions[id] = s
	return nil
}

func (r *handrolled) Get(id string) bool {
	r.mu.RLock()
	s, ok := r.sessions[id]
	r.mu.RUnlock()
	if !ok {
		return false
	}
	s.mu.Lock()
	s.LastUsed = r.now()
	s.mu.Unlock()
	return true
}

func (r *handrolled) Delete(id string) {
	r.mu.Lock()
	delete(r.sessions, id)
	r.mu.Unlock()
}

// Sweep is the janitor's tick: the write lock over a scan of every entry.
func (r *handrolled) Sweep() int {
	n := 0
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for id, s := range r.sessions {
		s.mu.Lock()
		idle := now.Sub(s.LastUsed)
		s.mu.Unlock()
		if idle > r.timeout {
			delete(r.sessions, id)
			n++
		}
	}
	return n
}

func (r *handrolled) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions)
}

func (r *handrolled) Close() {
	r.mu.Lock()
	clear(r.sessions)
	r.mu.Unlock()
}
