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
	"weak"

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
// flight.
//
// Call Shutdown when done. A Manager dropped without it stops its background
// goroutines once the garbage collector finds that nothing can reach it any
// more: not the Manager, no Session from it, no request in flight. Until
// then it keeps working, so a Session the program still holds stays usable.
//
// A Manager must not be copied; use the *Manager NewManager returns. go vet
// reports most copies; one it misses still shares the original's state.
//
// With a store (WithStore), the Manager is one process of a fleet: see
// WithStore for what it saves, restores and leases. Such a Manager runs a
// goroutine for its leases that keeps it reachable: call Shutdown.
type Manager struct {
	noCopy noCopy
	c      *core
}

// noCopy makes go vet's copylocks check report copies of a Manager.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// core is the Manager's state. Sessions and callers point here; the
// background goroutines hold only a weak pointer, so that when nothing else
// can reach the core its cleanup stops them. No cleanup ever closes a
// session: one that can still be reached keeps the core alive.
type core struct {
	reg     *shard.Map[*Session]
	tb      *evict.Timebase
	sweeper *evict.Sweeper
	onEvict func(*Session, EvictReason)
	onSweep func(time.Duration, int)
	logger  *slog.Logger
	// collected, set by tests only, sees each session a sweep removes,
	// before its exit is settled.
	collected func(*Session)
	fleet     *fleet // nil without a store

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

	// sweepMu guards sweeps, the number of sweeps in progress, and
	// sweepsDone, which Shutdown waits on for them to end. A counter and
	// not an RWMutex: a hook that calls Sweep while Shutdown waits must
	// return at once, not queue behind the waiting writer.
	sweepMu    sync.Mutex
	sweeps     int
	sweepsDone chan struct{}

	state atomic.Int32  // open, then closing
	idle  chan struct{} // signalled when inFlight drops to 0 while closing
	done  chan struct{} // closed when shutdown has finished
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
	// Active is the number of sessions registered now.
	Active int64 `json:"active"`
	// Created is the number of sessions registered, ever.
	Created int64 `json:"created"`
	// Closed counts sessions closed by their holder, CloseSession or
	// Shutdown.
	Closed int64 `json:"closed"`
	// Evicted counts sessions evicted for idleness, or dropped for a lost
	// lease (StoreStats.LeasesLost).
	Evicted int64 `json:"evicted"`
	// Rejected counts creates refused at the cap (not those refused for a
	// bad config, an unknown preset or a taken ID).
	Rejected int64 `json:"rejected"`
	// InFlight is the number of requests in flight now.
	InFlight int64 `json:"inFlight"`
	// Waiting is the number of CreateSessionWait calls queued now.
	Waiting int64 `json:"waiting"`
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
	c.fleet = newFleet(c, o.store, o.logger)
	// The sweeper holds the core weakly, and its cleanup holds only the
	// sweeper: the core becomes unreachable when the program has let go of
	// the Manager and of every session, and then the goroutines stop. (A
	// fleet's lease goroutine holds the core: with a store, call Shutdown.)
	wc := weak.Make(c)
	c.sweeper = evict.StartSweeper(c.tb, o.interval, func() {
		if c := wc.Value(); c != nil {
			c.sweep()
		}
	})
	if c.fleet != nil {
		c.fleet.run()
	}
	runtime.AddCleanup(c, (*evict.Sweeper).Stop, c.sweeper)
	return &Manager{c: c}
}

// CreateSession makes a session with a new random ID and registers it. A
// nil config means all defaults. It fails with ErrInvalidConfig for a bad
// config or an unknown preset (checked first, so even at the cap), then
// with ErrManagerClosed after Shutdown and ErrMaxSessions at the cap; a
// failed create leaves nothing registered and no slot held, and only a
// create refused at the cap counts as rejected.
func (m *Manager) CreateSession(config *protocol.SessionConfig) (string, error) {
	if err := checkConfig(config); err != nil {
		return "", err
	}
	return m.c.createNew(context.Background(), false, config, func() error { return m.c.reserve() })
}

// checkConfig reports what would make a create with config fail whatever
// the Manager's state: an invalid config or an unknown preset. Creates
// check it before they reserve a slot, so that at the cap a bad request is
// told what is wrong with it, not to come back later.
func checkConfig(config *protocol.SessionConfig) error {
	if err := config.Validate(); err != nil {
		return err
	}
	_, err := lookupPreset(config)
	return err
}

// createNew reserves a slot with reserve and registers a session under a
// new ID in it; wait makes it wait for a fleet slot until ctx ends.
func (c *core) createNew(ctx context.Context, wait bool, config *protocol.SessionConfig, reserve func() error) (string, error) {
	for {
		if err := reserve(); err != nil {
			return "", err
		}
		id := idgen.New()
		err := c.register(ctx, wait, id, config)
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
// CreateSession does, and with ErrInvalidID or ErrSessionExists; those are
// checked before the cap, so at the cap a taken ID is ErrSessionExists.
func (m *Manager) CreateSessionWithID(id string, config *protocol.SessionConfig) error {
	if err := idgen.Validate(id); err != nil {
		return err
	}
	if err := checkConfig(config); err != nil {
		return err
	}
	if err := m.c.checkFree(id); err != nil {
		return err
	}
	if err := m.c.reserve(); err != nil {
		return err
	}
	return m.c.register(context.Background(), false, id, config)
}

// checkFree fails with ErrSessionExists if a session is registered under
// id. An ID taken after the check is still refused, by the registry, once
// the create has its slot.
func (c *core) checkFree(id string) error {
	if _, ok := c.reg.Load(id); ok {
		return errExists(id)
	}
	return nil
}

// CreateSessionWait is CreateSession that, at the cap, waits for a slot
// instead of failing. Waiters are served first come first served, before
// any later CreateSession. It returns ctx's error if ctx ends first and
// ErrManagerClosed if the Manager is shut down while it waits. A bad
// config or an unknown preset fails at once, without waiting.
func (m *Manager) CreateSessionWait(ctx context.Context, config *protocol.SessionConfig) (string, error) {
	if err := checkConfig(config); err != nil {
		return "", err
	}
	return m.c.createNew(ctx, true, config, func() error { return m.c.reserveWait(ctx) })
}

// GetSession returns the open session registered under sessionID and
// records a use, which postpones its idle eviction. It takes no lock and
// does not allocate when the session exists; otherwise it returns an error
// that wraps ErrSessionNotFound (or ErrInvalidID, or ErrManagerClosed after
// Shutdown) and gives the ID. With a store, a miss restores the session
// the store holds under the ID (a round trip): it fails with
// ErrSessionLeased while another process holds it, ErrMaxSessions at the
// local or fleet cap, and ErrSessionNotFound wrapping ErrStoreUnavailable
// when the store cannot be reached.
func (m *Manager) GetSession(sessionID string) (*Session, error) {
	c := m.c
	// Only valid IDs are ever registered, so a hit needs no validation; the
	// length bound keeps a huge ID from being hashed. A miss says why.
	if len(sessionID) <= idgen.MaxLen {
		if s, ok := c.reg.Get(sessionID, c.tb.Coarse()); ok {
			return s, nil
		}
	}
	if c.fleet != nil {
		return c.fleet.restore(context.Background(), sessionID, false)
	}
	return nil, c.errNotFound(sessionID)
}

// PeekSession returns the open session registered under sessionID without
// recording a use, for callers that only look at it (its stats, its saved
// state): looking does not keep a session from idle eviction. It fails as
// GetSession does, and restores on a miss as GetSession does.
func (m *Manager) PeekSession(sessionID string) (*Session, error) {
	if e, ok := m.c.reg.Load(sessionID); ok {
		return e.Value(), nil
	}
	if m.c.fleet != nil {
		return m.c.fleet.restore(context.Background(), sessionID, false)
	}
	return nil, m.c.errNotFound(sessionID)
}

// CloseSession closes the session registered under sessionID and frees its
// slot, after running the eviction hook with EvictClosed. It fails with
// ErrSessionNotFound if there is none. With a store, it also saves the
// session's state and releases its lease, so that any process of the fleet
// may restore it; DeleteSession removes it instead.
func (m *Manager) CloseSession(sessionID string) error {
	c := m.c
	if c.fleet != nil {
		return c.fleet.closeSession(sessionID, false)
	}
	s, ok := c.reg.Delete(sessionID)
	if !ok {
		return c.errNotFound(sessionID)
	}
	c.retire(s, EvictClosed)
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
func (c *core) register(ctx context.Context, wait bool, id string, config *protocol.SessionConfig) error {
	s, err := newSession(id, config, c.tb, c)
	if err != nil {
		c.release()
		return err
	}
	if c.fleet != nil {
		return c.fleet.registerLeased(ctx, s, true, wait)
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
	// A sweep that starts once Shutdown has begun, such as one a hook
	// calls, does nothing.
	c.sweepMu.Lock()
	if c.state.Load() != stateOpen {
		c.sweepMu.Unlock()
		return 0
	}
	c.sweeps++
	c.sweepMu.Unlock()
	defer func() {
		c.sweepMu.Lock()
		if c.sweeps--; c.sweeps == 0 && c.sweepsDone != nil {
			close(c.sweepsDone)
			c.sweepsDone = nil
		}
		c.sweepMu.Unlock()
	}()
	timeout := c.timeout.Load()
	if timeout <= 0 {
		return 0
	}
	c.tb.Refresh()
	start := time.Now()
	now := c.tb.Now()
	n := 0
	cutoff := c.tb.Cutoff(now, time.Duration(timeout))
	if c.fleet != nil {
		n = c.fleet.sweep(now, cutoff)
	} else {
		c.reg.Sweep(now, cutoff, (*Session).busy, func(s *Session) {
			if c.collected != nil {
				c.collected(s)
			}
			if c.retire(s, EvictIdle) {
				n++
			}
		})
	}
	if c.onSweep != nil {
		c.onSweep(time.Since(start), n)
	}
	return n
}

// retire runs a session's exit once it has left the registry: the hook,
// then the close, then the count and the freed slot. Several exits may
// race for one session (a sweep has collected it, and its holder closes it
// before the sweep gets to its hook; or Close is called from the hook):
// the first to claim it runs the hook with its reason, and the first to
// close it frees the slot, counted under the claimed reason, so the hook
// runs once, never on a session already closed when it starts, and the
// session is counted once. It reports whether this call claimed the exit.
func (c *core) retire(s *Session, reason EvictReason) bool {
	claimed := c.claim(s, reason)
	if claimed {
		c.runHook(s, reason)
	}
	c.settle(s)
	return claimed
}

// claim makes reason the session's exit, unless another exit has claimed
// it; it reports whether this call did.
func (c *core) claim(s *Session, reason EvictReason) bool {
	return s.exit.CompareAndSwap(0, int32(reason))
}

// drop ends a session that leaves without its hook: one whose fleet lease
// was lost. It claims the exit as an eviction, so that a racing Close
// neither runs the hook nor counts the session again.
func (c *core) drop(s *Session) {
	s.exit.CompareAndSwap(0, int32(EvictIdle))
	c.settle(s)
}

// settle closes a session whose exit is claimed and frees its slot once,
// counted under the claimed reason.
func (c *core) settle(s *Session) {
	s.shutdown()
	if s.accounted.CompareAndSwap(false, true) {
		if EvictReason(s.exit.Load()) == EvictIdle {
			c.left(&c.evicted)
		} else {
			c.left(&c.closed)
		}
	}
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
	// Wait for Sweep calls in progress; later ones, a hook's included, see
	// the state and return at once.
	c.sweepMu.Lock()
	var wait chan struct{}
	if c.sweeps > 0 {
		wait = make(chan struct{})
		c.sweepsDone = wait
	}
	c.sweepMu.Unlock()
	if wait != nil {
		<-wait
	}

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
	var saves []*Session
	c.reg.Drain(func(s *Session) {
		c.retire(s, EvictShutdown)
		// Saved here even when a racing Close claimed the exit: Drain
		// unlinked the entry first, so that Close found nothing to save.
		if c.fleet != nil {
			saves = append(saves, s)
		}
	})
	if c.fleet != nil {
		c.fleet.shutdown(ctx, saves, drain)
	}
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
