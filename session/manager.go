package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rosterhq/roster/evict"
	"github.com/rosterhq/roster/idgen"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/shard"
)

// Manager is a registry of sessions: it makes them, hands them out by ID to
// any number of goroutines, holds at most MaxSessions at once, evicts those
// idle longer than SessionTimeout, and closes them all at Shutdown. All its
// methods are safe for concurrent use.
//
// GetSession takes no lock and does not allocate. Idle eviction is lazy: a
// single background sweeper looks, per shard, only at sessions that may have
// expired, so a sweep costs O(shards + sessions expired or used since),
// not O(sessions), and a session is never evicted while a request is in
// flight. A Manager dropped without Shutdown is shut down when the garbage
// collector finds it unreachable, so its sweeper does not leak; call
// Shutdown to close its sessions at a time of your choosing.
type Manager struct {
	c *core
}

// core is the Manager's state. The sweeper goroutine and the sessions point
// here, never at the Manager, so that a dropped Manager becomes unreachable
// and its cleanup can shut the core down.
type core struct {
	reg     *shard.Map[*Session]
	tb      *evict.Timebase
	sweeper *evict.Sweeper
	onEvict func(*Session, EvictReason)
	onSweep func(time.Duration, int)
	logger  *slog.Logger

	maxSessions atomic.Int64
	timeout     atomic.Int64 // nanoseconds
	slots       atomic.Int64 // sessions registered plus creates in progress
	active      atomic.Int64
	inFlight    atomic.Int64

	created, closed, evicted, rejected atomic.Int64

	// Creators waiting in CreateSessionWait, first come first served.
	waitMu   sync.Mutex
	waiters  []*waiter
	nWaiting atomic.Int64

	sweeping sync.RWMutex  // held for reading by every sweep
	state    atomic.Int32  // open, then closing
	idle     chan struct{} // signalled when inFlight drops to 0 while closing
	done     chan struct{} // closed when shutdown has finished
}

const (
	stateOpen int32 = iota
	stateClosing
)

type waiter struct {
	ready   chan error // receives nil when granted a slot, or why not
	granted bool       // guarded by core.waitMu
}

// ManagerStats counts what a Manager has done since it was made. Created
// equals Closed + Evicted + Active once no create is in progress.
type ManagerStats struct {
	Active   int64 `json:"active"`   // sessions registered now
	Created  int64 `json:"created"`  // sessions registered, ever
	Closed   int64 `json:"closed"`   // closed by their holder, CloseSession or Shutdown
	Evicted  int64 `json:"evicted"`  // evicted for idleness
	Rejected int64 `json:"rejected"` // creates refused at the cap
	InFlight int64 `json:"inFlight"` // requests in flight now
	Waiting  int64 `json:"waiting"`  // CreateSessionWait calls queued now
}

// NewManager returns a running Manager. Without options it holds at most
// DefaultMaxSessions sessions, evicts those idle for DefaultSessionTimeout,
// and sweeps every DefaultCleanupInterval.
func NewManager(opts ...Option) *Manager {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	c := &core{
		reg:     shard.New[*Session](o.shards),
		tb:      evict.NewTimebase(o.clock, evict.Resolution(o.interval)),
		onEvict: o.onEvict,
		onSweep: o.onSweep,
		logger:  o.logger,
		idle:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	c.maxSessions.Store(int64(o.maxSessions))
	c.timeout.Store(int64(o.timeout))
	c.sweeper = evict.StartSweeper(c.tb, o.interval, func() { c.sweep() })
	m := &Manager{c: c}
	// The cleanup must not wait on requests: it runs on the runtime's one
	// cleanup goroutine.
	runtime.AddCleanup(m, func(c *core) { _ = c.shutdown(context.Background(), false) }, c)
	return m
}

// CreateSession makes a session with a new random ID and registers it. A
// nil config means all defaults. It fails with ErrMaxSessions at the cap,
// ErrInvalidConfig for a bad config and ErrManagerClosed after Shutdown;
// a failed create leaves nothing registered and no slot held.
func (m *Manager) CreateSession(config *protocol.SessionConfig) (string, error) {
	if err := config.Validate(); err != nil {
		return "", err
	}
	return m.c.createNew(config, func() error { return m.c.reserve() })
}

// createNew reserves a slot with reserve and registers a session under a
// new ID in it.
func (c *core) createNew(config *protocol.SessionConfig, reserve func() error) (string, error) {
	for {
		if err := reserve(); err != nil {
			return "", err
		}
		id := idgen.New()
		err := c.register(id, config)
		// 80 random bits make a collision all but impossible; if one
		// happens, register has given the slot back: start again.
		if !errors.Is(err, ErrSessionExists) {
			if err != nil {
				return "", err
			}
			return id, nil
		}
	}
}

// CreateSessionWithID makes a session registered under id. It fails as
// CreateSession does, and with ErrInvalidID or ErrSessionExists.
func (m *Manager) CreateSessionWithID(id string, config *protocol.SessionConfig) error {
	if err := idgen.Validate(id); err != nil {
		return err
	}
	if err := config.Validate(); err != nil {
		return err
	}
	if err := m.c.reserve(); err != nil {
		return err
	}
	return m.c.register(id, config)
}

// CreateSessionWait is CreateSession that, at the cap, waits for a slot
// instead of failing. Waiters are served first come first served, before
// any later CreateSession. It returns ctx's error if ctx ends first and
// ErrManagerClosed if the Manager is shut down while it waits.
func (m *Manager) CreateSessionWait(ctx context.Context, config *protocol.SessionConfig) (string, error) {
	if err := config.Validate(); err != nil {
		return "", err
	}
	return m.c.createNew(config, func() error { return m.c.reserveWait(ctx) })
}

// GetSession returns the open session registered under sessionID and
// records a use, which postpones its idle eviction. It takes no lock and
// does not allocate when the session exists; otherwise it returns an error
// that wraps ErrSessionNotFound (or ErrInvalidID, or ErrManagerClosed after
// Shutdown) and gives the ID.
func (m *Manager) GetSession(sessionID string) (*Session, error) {
	c := m.c
	// Only valid IDs are ever registered, so a hit needs no validation; the
	// length bound keeps a huge ID from being hashed. A miss says why.
	if len(sessionID) <= idgen.MaxLen {
		if s, ok := c.reg.Get(sessionID, c.tb.Coarse()); ok {
			return s, nil
		}
	}
	return nil, c.errNotFound(sessionID)
}

// PeekSession returns the open session registered under sessionID without
// recording a use, for callers that only look at it (its stats, its saved
// state): looking does not keep a session from idle eviction. It fails as
// GetSession does.
func (m *Manager) PeekSession(sessionID string) (*Session, error) {
	if e, ok := m.c.reg.Load(sessionID); ok {
		return e.Value(), nil
	}
	return nil, m.c.errNotFound(sessionID)
}

// CloseSession closes the session registered under sessionID and frees its
// slot. It fails with ErrSessionNotFound if there is none.
func (m *Manager) CloseSession(sessionID string) error {
	c := m.c
	s, ok := c.reg.Delete(sessionID)
	if !ok {
		return c.errNotFound(sessionID)
	}
	s.shutdown()
	c.left(&c.closed)
	return nil
}

// ListSessions returns a snapshot of every registered session, oldest
// first. Sessions created or closed while it runs may be missing or
// included.
func (m *Manager) ListSessions() []SessionStats {
	var out []SessionStats
	m.c.reg.Range(func(e *shard.Entry[*Session]) bool {
		out = append(out, e.Value().Stats())
		return true
	})
	slices.SortFunc(out, func(a, b SessionStats) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// SessionCount returns the number of registered sessions. It never exceeds
// the cap, except after SetMaxSessions lowered the cap below it: that closes
// nothing, and creates fail until the count is below the new cap.
func (m *Manager) SessionCount() int { return int(max(m.c.active.Load(), 0)) }

// Sweep runs one eviction pass now, on the caller's goroutine, and returns
// how many sessions it evicted. It does nothing when the timeout is 0 or
// after Shutdown.
func (m *Manager) Sweep() int { return m.c.sweep() }

// Shutdown stops the sweeper, closes every session (running the eviction
// hook with EvictShutdown) and makes every later create fail with
// ErrManagerClosed. It does not wait for requests in flight: closing their
// sessions cancels them. It is idempotent and safe to call from many
// goroutines; every call returns once the shutdown is complete.
func (m *Manager) Shutdown() { _ = m.c.shutdown(context.Background(), false) }

// ShutdownContext is Shutdown that first waits, until ctx ends, for the
// requests in flight to finish. It returns ctx's error if ctx ended first;
// the Manager is shut down either way, unless another call is still
// shutting it down, in which case ShutdownContext returns ctx's error
// without waiting further.
func (m *Manager) ShutdownContext(ctx context.Context) error { return m.c.shutdown(ctx, true) }

// SetMaxSessions changes the cap; 0 (or less) means none. Lowering it below
// the current count closes nothing: creates fail until the count falls
// below it. Raising it serves waiting CreateSessionWait calls.
func (m *Manager) SetMaxSessions(n int) {
	m.c.maxSessions.Store(int64(max(n, 0)))
	m.c.grant()
}

// SetSessionTimeout changes the idle timeout; 0 (or less) disables idle
// eviction. It takes effect at the next sweep, with no rebuild.
func (m *Manager) SetSessionTimeout(timeout time.Duration) {
	m.c.timeout.Store(int64(max(timeout, 0)))
}

// MaxSessions returns the cap; 0 means none.
func (m *Manager) MaxSessions() int { return int(m.c.maxSessions.Load()) }

// SessionTimeout returns the idle timeout; 0 means idle eviction is off.
func (m *Manager) SessionTimeout() time.Duration { return time.Duration(m.c.timeout.Load()) }

// Stats returns the Manager's counters.
func (m *Manager) Stats() ManagerStats {
	c := m.c
	return ManagerStats{
		Active:   max(c.active.Load(), 0),
		Created:  c.created.Load(),
		Closed:   c.closed.Load(),
		Evicted:  c.evicted.Load(),
		Rejected: c.rejected.Load(),
		InFlight: c.inFlight.Load(),
		Waiting:  c.nWaiting.Load(),
	}
}

// errNotFound says why no session is registered under id: the ID is
// invalid, the Manager is shut down, or there is none.
func (c *core) errNotFound(id string) error {
	if c.state.Load() != stateOpen {
		if err := idgen.Validate(id); err != nil {
			return err
		}
		return fmt.Errorf("%w: looking up %q", ErrManagerClosed, id)
	}
	return errNotFound(id)
}

// reserve takes a slot for a create, or fails at the cap or after Shutdown.
// While CreateSessionWait calls are queued, freed slots are theirs.
func (c *core) reserve() error {
	if c.state.Load() != stateOpen {
		return ErrManagerClosed
	}
	if c.nWaiting.Load() > 0 || !c.tryReserve() {
		c.rejected.Add(1)
		return errMaxSessions(c.maxSessions.Load())
	}
	return nil
}

// tryReserve takes a slot if the cap allows.
func (c *core) tryReserve() bool {
	for {
		n := c.slots.Load()
		if max := c.maxSessions.Load(); max > 0 && n >= max {
			return false
		}
		if c.slots.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a slot and hands free slots to waiters.
func (c *core) release() {
	c.slots.Add(-1)
	// A waiter counts itself before it last tries to reserve, and this
	// reads the count after giving the slot back, so one of the two sees
	// the other: no waiter sleeps while a slot is free.
	if c.nWaiting.Load() > 0 {
		c.grant()
	}
}

// grant hands free slots to waiters in arrival order.
func (c *core) grant() {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	for len(c.waiters) > 0 && c.tryReserve() {
		w := c.waiters[0]
		c.waiters[0] = nil
		c.waiters = c.waiters[1:]
		c.nWaiting.Add(-1)
		w.granted = true
		w.ready <- nil
	}
}

// reserveWait takes a slot, waiting in line at the cap.
func (c *core) reserveWait(ctx context.Context) error {
	if c.state.Load() != stateOpen {
		return ErrManagerClosed
	}
	if c.nWaiting.Load() == 0 && c.tryReserve() {
		return nil
	}
	w := &waiter{ready: make(chan error, 1)}
	c.waitMu.Lock()
	if c.state.Load() != stateOpen {
		c.waitMu.Unlock()
		return ErrManagerClosed
	}
	c.nWaiting.Add(1)
	if len(c.waiters) == 0 && c.tryReserve() {
		c.nWaiting.Add(-1)
		c.waitMu.Unlock()
		return nil
	}
	c.waiters = append(c.waiters, w)
	c.waitMu.Unlock()

	select {
	case err := <-w.ready:
		return err
	case <-ctx.Done():
	}
	c.waitMu.Lock()
	i := slices.Index(c.waiters, w)
	if i >= 0 {
		c.waiters = slices.Delete(c.waiters, i, i+1)
		c.nWaiting.Add(-1)
	}
	granted := w.granted
	c.waitMu.Unlock()
	switch {
	case granted: // the slot came as ctx ended: pass it on
		c.release()
	case i < 0: // not granted, not queued: Shutdown took it out
		return ErrManagerClosed
	}
	return ctx.Err()
}

// register builds and registers a session in a slot already reserved; on
// failure it gives the slot back.
func (c *core) register(id string, config *protocol.SessionConfig) error {
	s, err := newSession(id, config, c.tb, c)
	if err != nil {
		c.release()
		return err
	}
	return c.insert(s)
}

// insert registers s in a slot already reserved; on failure it gives the
// slot back.
func (c *core) insert(s *Session) error {
	err := c.reg.Insert(s.entry)
	if err == nil {
		// Counted once visible, so that SessionCount never shows a session
		// that fails to register. A close that wins the race to here takes
		// active below the truth for a moment; readers clamp at zero.
		c.active.Add(1)
		c.created.Add(1)
		return nil
	}
	c.release()
	if errors.Is(err, shard.ErrExists) {
		return errExists(s.id)
	}
	return ErrManagerClosed // shard.ErrClosed: Shutdown got there first
}

// left accounts for a session that has just left the registry, counting it
// in counter.
func (c *core) left(counter *atomic.Int64) {
	c.active.Add(-1)
	counter.Add(1)
	c.release()
}

func (c *core) sweep() int {
	// Shutdown waits for sweeps in progress, so that no hook runs after it.
	c.sweeping.RLock()
	defer c.sweeping.RUnlock()
	timeout := c.timeout.Load()
	if timeout <= 0 || c.state.Load() != stateOpen {
		return 0
	}
	c.tb.Refresh()
	start := time.Now()
	now := c.tb.Now()
	n := c.reg.Sweep(now, c.tb.Cutoff(now, time.Duration(timeout)), (*Session).busy, c.evictIdle)
	if c.onSweep != nil {
		c.onSweep(time.Since(start), n)
	}
	return n
}

func (c *core) evictIdle(s *Session) {
	c.runHook(s, EvictIdle)
	s.shutdown()
	c.left(&c.evicted)
}

// runHook calls the eviction hook, recovering and logging a panic.
func (c *core) runHook(s *Session, reason EvictReason) {
	if c.onEvict == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			c.logger.Error("roster: eviction hook panicked",
				"session", s.id, "reason", reason.String(), "panic", r)
		}
	}()
	c.onEvict(s, reason)
}

// requestEnded is called by a session after each request.
func (c *core) requestEnded() {
	if c.inFlight.Add(-1) == 0 && c.state.Load() != stateOpen {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
}

// shutdown shuts the Manager down once, first waiting until ctx ends for
// requests in flight if drain is set. Later calls wait until ctx ends for
// the first to finish.
func (c *core) shutdown(ctx context.Context, drain bool) error {
	if !c.state.CompareAndSwap(stateOpen, stateClosing) {
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(c.done)
	c.sweeper.Stop()
	// Wait for Sweep calls in progress: the lock is free once they are
	// done, and later ones see the state and return at once. It is not
	// held further, so a shutdown hook may still call Sweep.
	c.sweeping.Lock()
	//lint:ignore SA2001 the critical section is the wait itself
	c.sweeping.Unlock()

	c.waitMu.Lock()
	for _, w := range c.waiters {
		w.ready <- ErrManagerClosed
	}
	c.nWaiting.Add(-int64(len(c.waiters)))
	c.waiters = nil
	c.waitMu.Unlock()

	var err error
	if drain {
		err = c.drain(ctx)
	}
	c.reg.Drain(func(s *Session) {
		c.runHook(s, EvictShutdown)
		s.shutdown()
		c.left(&c.closed)
	})
	return err
}

// drain waits until no request is in flight or ctx ends.
func (c *core) drain(ctx context.Context) error {
	// The state is closing, so requestEnded signals c.idle when the count
	// reaches zero after this load.
	for c.inFlight.Load() > 0 {
		select {
		case <-c.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
