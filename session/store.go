package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rosterhq/roster/idgen"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/shard"
	"github.com/rosterhq/roster/store"
)

// Store is a shared store of session state and leases; see package store.
type Store = store.Store

// Defaults of a Manager with a store.
const (
	DefaultLeaseTTL     = 30 * time.Second
	DefaultStateTTL     = 7 * 24 * time.Hour
	DefaultSaveInterval = 5 * time.Minute
	DefaultStoreTimeout = 2 * time.Second
)

// The errors of a Manager with a store, besides those of every Manager.
var (
	// ErrSessionLeased means another process of the fleet holds the
	// session's lease. The message names the holder.
	ErrSessionLeased = store.ErrLeased
	// ErrStoreUnavailable means the store could not be reached in time.
	ErrStoreUnavailable = store.ErrUnavailable
	// ErrLeaseLost means the session's lease could not be renewed before
	// it expired, so this process stopped driving it: another may have
	// taken it over. Requests on it fail with an error that matches both
	// ErrLeaseLost and ErrSessionClosed.
	ErrLeaseLost = errors.New("session lease lost")
)

type storeOptions struct {
	st        store.Store
	owner     string
	leaseTTL  time.Duration
	stateTTL  time.Duration
	saveEvery time.Duration
	timeout   time.Duration
	fleetMax  int
}

// WithStore makes the Manager one process of a fleet that shares st: it
// saves a session's state to st when the session is closed, evicted or
// shut down (and every WithSaveInterval while it lives), restores a
// session that st holds when GetSession misses it, and drives a session
// only while it holds the session's lease in st. GetSession hits never touch
// st. A nil st means no store, the default.
func WithStore(st Store) Option { return func(o *options) { o.store.st = st } }

// WithOwner names this process in the store's leases, so that
// ErrSessionLeased says who holds a session. The default is
// "hostname:pid:random", unique per Manager.
func WithOwner(name string) Option { return func(o *options) { o.store.owner = name } }

// WithLeaseTTL sets how long a lease lasts without renewal; the Manager
// renews its leases every third of it, in one pipeline, so a lease outlives
// two failed renewals. A process that dies holds its sessions this long.
// The default is DefaultLeaseTTL; values under 30ms are raised to it.
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) { o.store.leaseTTL = max(d, 30*time.Millisecond) }
}

// WithStateTTL sets how long the store keeps a session's state after its
// last save, so that abandoned identities expire. The default is
// DefaultStateTTL.
func WithStateTTL(d time.Duration) Option {
	return func(o *options) { o.store.stateTTL = max(d, time.Millisecond) }
}

// WithSaveInterval sets how often the state of a session that lives long is
// saved, if it changed (a request or a use since the last save); 0 (or
// less) means only at close, eviction and shutdown. The default is
// DefaultSaveInterval.
func WithSaveInterval(d time.Duration) Option {
	return func(o *options) { o.store.saveEvery = max(d, 0) }
}

// WithStoreTimeout bounds each store operation made for one caller (a
// create, a restore, a close); batch operations of the background tick get
// a third of the lease TTL. The default is DefaultStoreTimeout.
func WithStoreTimeout(d time.Duration) Option {
	return func(o *options) { o.store.timeout = max(d, time.Millisecond) }
}

// WithFleetMaxSessions caps the leases held at once across every process
// that shares the store and sets the same cap; 0 (or less) means no fleet
// cap, the default. The local cap (WithMaxSessions) still applies. With a
// fleet cap, a create fails with ErrStoreUnavailable when the store cannot
// be reached, since the cap could not be kept; without one, a create then
// proceeds locally and its lease is taken when the store is back.
func WithFleetMaxSessions(n int) Option { return func(o *options) { o.store.fleetMax = max(n, 0) } }

// StoreStats counts what a Manager's store machinery has done since the
// Manager was made. All zero without a store.
type StoreStats struct {
	LeasesHeld   int64         `json:"leasesHeld"`   // sessions held under a lease now
	Restores     int64         `json:"restores"`     // sessions restored from the store on a miss (counted in ManagerStats.Created too)
	Saves        int64         `json:"saves"`        // states written
	SaveErrors   int64         `json:"saveErrors"`   // states not written (kept and retried)
	Fenced       int64         `json:"fenced"`       // writes refused because a newer lease exists
	Renewals     int64         `json:"renewals"`     // lease renewals sent
	LeasesLost   int64         `json:"leasesLost"`   // sessions dropped because their lease expired or was taken (counted as evicted too)
	Leased       int64         `json:"leased"`       // lookups or creates refused: another process holds the lease
	Errors       int64         `json:"errors"`       // store operations that failed to reach the store
	Unsaved      int64         `json:"unsaved"`      // closed sessions whose state waits for the store
	Unleased     int64         `json:"unleased"`     // sessions created while the store was down, waiting for a lease
	LastLatency  time.Duration `json:"lastLatency"`  // of the last store operation
	TotalLatency time.Duration `json:"totalLatency"` // of every store operation, summed
	Ops          int64         `json:"ops"`          // store operations (round trips or pipelines)
}

// leaseState is a session's lease in the store. The pointer is set before
// the session is registered and never changed.
type leaseState struct {
	create    bool         // a new identity: its lease must not take over stored state
	token     atomic.Int64 // 0 until the lease is taken
	until     atomic.Int64 // monotonic deadline, in fleet.mono nanoseconds
	lost      atomic.Bool
	saved     atomic.Int64 // last-use stamp at the last save
	savedReqs atomic.Int64 // request count at the last save
	savedAt   atomic.Int64 // fleet.mono at the last save
	changes   atomic.Int64 // SetCookies, ClearCookies and SetProxy calls
	savedChg  atomic.Int64 // changes at the last save
}

// errClosed says why the session is closed: ErrSessionClosed, and
// ErrLeaseLost too when its lease was lost.
func (s *Session) errClosed() error {
	if s.ls != nil && s.ls.lost.Load() {
		return fmt.Errorf("%w: %w: %q", ErrLeaseLost, ErrSessionClosed, s.id)
	}
	return ErrSessionClosed
}

// changed records a change to the session's state that is not a use, for
// the periodic save.
func (s *Session) changed() {
	if s.ls != nil {
		s.ls.changes.Add(1)
	}
}

// orphan is the state of a session that has left the Manager and could
// not be saved then; it is saved (fenced, so never over a newer holder's)
// when the store is back, and a restore of its ID in the meantime takes it.
type orphan struct {
	lease  store.Lease
	data   []byte
	create bool // never leased, and a new identity (see leaseState.create)
}

// fleet is the store machinery of a core; nil without a store.
type fleet struct {
	c     *core
	st    store.Store
	o     storeOptions
	start time.Time
	log   *slog.Logger

	mu      sync.Mutex
	locks   map[string]chan struct{} // IDs with a store operation in progress
	orphans map[string]*orphan

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	restores, saves, saveErrors, fenced, renewals, lost, leased, errs atomic.Int64
	ops, lastLat, totalLat                                            atomic.Int64

	// downUntil (fleet.mono) is set for a second after an operation could
	// not reach the store, and cleared by the next that does: until then,
	// creates without a fleet cap do not wait for it, and their leases are
	// taken at a later tick.
	downUntil atomic.Int64
}

func newFleet(c *core, o storeOptions, log *slog.Logger) *fleet {
	if o.st == nil {
		return nil
	}
	if o.owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = DefaultLeaseTTL
	}
	if o.stateTTL == 0 {
		o.stateTTL = DefaultStateTTL
	}
	if o.timeout == 0 {
		o.timeout = DefaultStoreTimeout
	}
	f := &fleet{c: c, st: o.st, o: o, start: time.Now(), log: log,
		locks: map[string]chan struct{}{}, orphans: map[string]*orphan{}, stop: make(chan struct{})}
	return f
}

// run starts the background tick: lease renewal, periodic saves, and the
// retries of what the store refused while down.
func (f *fleet) run() {
	f.wg.Go(func() {
		t := time.NewTicker(f.o.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-t.C:
				f.tick()
			}
		}
	})
}

// stopTick stops the background tick and waits for one in progress.
func (f *fleet) stopTick() {
	f.stopOnce.Do(func() { close(f.stop) })
	f.wg.Wait()
}

// mono returns nanoseconds since the fleet started on the monotonic clock:
// leases expire in real time in the store, whatever clock the Manager reads.
func (f *fleet) mono() int64 { return int64(time.Since(f.start)) }

// ctx returns a context for one store operation for one caller.
func (f *fleet) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, f.o.timeout)
}

// observe counts one store operation that took since start and failed
// with err, if it could not reach the store.
func (f *fleet) observe(start time.Time, err error) {
	d := int64(time.Since(start))
	f.ops.Add(1)
	f.lastLat.Store(d)
	f.totalLat.Add(d)
	if errors.Is(err, store.ErrUnavailable) {
		f.errs.Add(1)
		if f.downUntil.Swap(f.mono()+int64(time.Second)) == 0 {
			f.log.Warn("roster: store unreachable", "err", err)
		}
		return
	}
	if f.downUntil.Load() != 0 && f.downUntil.Swap(0) != 0 {
		f.log.Info("roster: store reachable again")
	}
}

// lock takes the ID's local lock, which every store operation on the ID
// holds, so that this process never races itself for a lease: a restore
// waits for the save of an eviction in progress, for example.
func (f *fleet) lock(ctx context.Context, id string) (func(), error) {
	for {
		unlock, wait := f.tryLock(id)
		if unlock != nil {
			return unlock, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for store operation on %q: %w", id, ctx.Err())
		}
	}
}

// tryLock takes the ID's lock if free; otherwise it returns a channel
// closed when the holder is done.
func (f *fleet) tryLock(id string) (unlock func(), wait <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.locks[id]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	f.locks[id] = ch
	return func() {
		f.mu.Lock()
		delete(f.locks, id)
		f.mu.Unlock()
		close(ch)
	}, nil
}

// storeErr turns a store error into the Manager's: a fleet cap is
// ErrMaxSessions, state stored for a new ID is ErrSessionExists.
func (f *fleet) storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrFleetFull):
		f.c.rejected.Add(1)
		return fmt.Errorf("%w: %w", ErrMaxSessions, err)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("%w: %w", ErrSessionExists, err)
	case errors.Is(err, store.ErrLeased):
		f.leased.Add(1)
	}
	return err
}

// acquire takes the lease for a session about to be registered, under its
// ID's lock; wait makes it wait for a fleet slot until ctx ends. A store
// that cannot be reached fails the create only under a fleet cap.
func (f *fleet) acquire(ctx context.Context, s *Session, create, wait bool) error {
	s.ls = &leaseState{create: create}
	if f.o.fleetMax == 0 && f.mono() < f.downUntil.Load() {
		f.log.Debug("roster: store away, session created without a lease", "session", s.id)
		return nil // the store was just found away: lease it later
	}
	req := store.AcquireRequest{ID: s.id, Owner: f.o.owner, TTL: f.o.leaseTTL, FleetMax: f.o.fleetMax, Create: create}
	for backoff := 10 * time.Millisecond; ; backoff = min(backoff*2, f.o.leaseTTL/3) {
		sent := f.mono()
		octx, cancel := f.ctx(ctx)
		start := time.Now()
		l, _, err := f.st.Acquire(octx, req)
		cancel()
		f.observe(start, err)
		switch {
		case err == nil:
			s.ls.token.Store(l.Token)
			s.ls.until.Store(sent + int64(f.o.leaseTTL))
			return nil
		case errors.Is(err, store.ErrUnavailable) && f.o.fleetMax == 0:
			f.log.Warn("roster: store unavailable, session created without a lease", "session", s.id, "err", err)
			return nil
		case wait && errors.Is(err, store.ErrFleetFull):
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		return f.storeErr(err)
	}
}

// registerLeased registers a new session under a lease: it takes the ID's
// lock, checks that no local session has the ID, takes the lease, and
// inserts; wait makes it wait for a fleet slot until ctx ends. The slot is
// reserved; on failure it is given back. create makes
// it fail when the store holds state under the ID: a new session must not
// take an old identity's place, where RestoreSession's state may.
func (f *fleet) registerLeased(ctx context.Context, s *Session, create, wait bool) error {
	c := f.c
	unlock, err := f.lock(ctx, s.id)
	if err != nil {
		c.release()
		return err
	}
	defer unlock()
	if _, ok := c.reg.Load(s.id); ok {
		c.release()
		return errExists(s.id)
	}
	// A closed session whose state waits here for the store still exists:
	// a create may not take its ID; a RestoreSession replaces its state.
	f.mu.Lock()
	o := f.orphans[s.id]
	if o != nil && !create {
		delete(f.orphans, s.id)
	}
	f.mu.Unlock()
	if o != nil && create {
		c.release()
		return fmt.Errorf("%w (its state waits for the store)", errExists(s.id))
	}
	if err := f.acquire(ctx, s, create, wait); err != nil {
		f.putBack(s.id, o)
		c.release()
		return err
	}
	if err := c.insert(s); err != nil {
		f.putBack(s.id, o)
		f.releaseLeases(s)
		return err
	}
	return nil
}

// putBack keeps an orphan (the unsaved state of a closed session) that an
// operation took but could not replace, unless another has taken its place.
func (f *fleet) putBack(id string, o *orphan) {
	if o == nil {
		return
	}
	f.mu.Lock()
	if f.orphans[id] == nil {
		f.orphans[id] = o
	}
	f.mu.Unlock()
}

// restore registers the session that the store holds under id, on a
// GetSession miss: after waiting for any store operation on id in this
// process, it takes a local slot and the lease, and loads the state (or the
// state of this process's own unsaved close). wait makes it wait for a fleet
// slot.
func (f *fleet) restore(ctx context.Context, id string, wait bool) (*Session, error) {
	c := f.c
	if err := idgen.Validate(id); err != nil {
		return nil, err
	}
	unlock, err := f.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another caller may have restored it, or an eviction kept it, while
	// this one waited for the lock.
	if s, ok := c.reg.Get(id, c.tb.Coarse()); ok {
		return s, nil
	}
	if c.state.Load() != stateOpen {
		return nil, c.errNotFound(id)
	}
	if wait {
		err = c.reserveWait(ctx)
	} else {
		err = c.reserve()
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	_, unsaved := f.orphans[id]
	f.mu.Unlock()
	req := store.AcquireRequest{ID: id, Owner: f.o.owner, TTL: f.o.leaseTTL, FleetMax: f.o.fleetMax, IfStored: !unsaved}
	for backoff := 10 * time.Millisecond; ; backoff = min(backoff*2, f.o.leaseTTL/3) {
		sent := f.mono()
		octx, cancel := f.ctx(ctx)
		start := time.Now()
		l, data, err := f.st.Acquire(octx, req)
		cancel()
		f.observe(start, err)
		if err != nil {
			if wait && errors.Is(err, store.ErrFleetFull) {
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
					continue
				case <-ctx.Done():
					t.Stop()
					c.release()
					return nil, ctx.Err()
				}
			}
			c.release()
			if errors.Is(err, store.ErrUnavailable) {
				return nil, fmt.Errorf("%w: %q (restore: %w)", ErrSessionNotFound, id, err)
			}
			return nil, f.storeErr(err)
		}
		// This process's own unsaved state is newer than the store's only
		// if no other lease was granted since its own: the same token, or
		// the next one (its lease expired and this is the next grant); or
		// it never had a lease and the store has nothing. Otherwise another
		// process may have written since, and the store's state wins, as
		// fencing would make it anyway.
		f.mu.Lock()
		var kept *orphan // an orphan whose state this restore uses
		if o := f.orphans[id]; o != nil {
			if t := o.lease.Token; t == l.Token || (t != 0 && l.Token == t+1) || (t == 0 && data == nil) {
				data, kept = o.data, o
			} else {
				f.log.Warn("roster: unsaved state dropped: the session was leased by another process since", "session", id)
			}
			delete(f.orphans, id)
		}
		f.mu.Unlock()
		if data == nil {
			f.release(l) // a no-op when IfStored took nothing
			c.release()
			return nil, errNotFound(id)
		}
		s, err := f.build(data, l, sent)
		if err != nil {
			f.release(l)
			c.release()
			return nil, err
		}
		if err := c.insert(s); err != nil {
			f.putBack(id, kept) // newer than the store's: not lost to a lost race
			f.release(l)
			return nil, err
		}
		f.restores.Add(1)
		return s, nil
	}
}

// build makes a session from stored state, under lease l taken at sent.
func (f *fleet) build(data []byte, l store.Lease, sent int64) (*Session, error) {
	st, err := protocol.DecodeState(data)
	if err != nil {
		return nil, fmt.Errorf("restore %q from the store: %w", l.ID, err)
	}
	if st.ID != l.ID {
		return nil, fmt.Errorf("%w: restore %q from the store: state is of %q", protocol.ErrInvalidState, l.ID, st.ID)
	}
	s, err := restore(st, f.c.tb, f.c)
	if err != nil {
		return nil, fmt.Errorf("restore %q from the store: %w", l.ID, err)
	}
	s.ls = &leaseState{}
	s.ls.token.Store(l.Token)
	s.ls.until.Store(sent + int64(f.o.leaseTTL))
	f.markSaved(s)
	return s, nil
}

func (f *fleet) markSaved(s *Session) {
	s.ls.savedChg.Store(s.ls.changes.Load())
	s.ls.saved.Store(s.entry.LastUsed())
	s.ls.savedReqs.Store(s.requests.Load())
	s.ls.savedAt.Store(f.mono())
}

func (f *fleet) leaseOf(s *Session) store.Lease {
	return store.Lease{ID: s.id, Owner: f.o.owner, Token: s.ls.token.Load(), Fleet: f.o.fleetMax > 0}
}

// release gives one lease back, best effort: unreleased, it expires.
func (f *fleet) release(l store.Lease) {
	if l.Token == 0 {
		return
	}
	ctx, cancel := f.ctx(context.Background())
	defer cancel()
	start := time.Now()
	err := f.st.Release(ctx, []store.Lease{l})
	f.observe(start, err)
}

func (f *fleet) releaseLeases(s *Session) { f.release(f.leaseOf(s)) }

// saveAndRelease writes the states of sessions that are leaving the Manager
// and releases their leases, in one pipeline, and returns per session
// whether its state is safe: written, or refused because a newer lease
// exists, in which case the state is no longer this process's to write.
func (f *fleet) saveAndRelease(ctx context.Context, ss []*Session, datas [][]byte) []bool {
	ok := make([]bool, len(ss))
	var writes []store.Write
	var idx []int
	for i, s := range ss {
		if datas[i] == nil || s.ls.token.Load() == 0 {
			continue // never leased: handled by the caller
		}
		writes = append(writes, store.Write{Lease: f.leaseOf(s), State: datas[i], StateTTL: f.o.stateTTL, Release: true})
		idx = append(idx, i)
	}
	if len(writes) == 0 {
		return ok
	}
	start := time.Now()
	errs, err := f.st.Save(ctx, writes)
	f.observe(start, err)
	if err != nil {
		f.saveErrors.Add(int64(len(writes)))
		f.log.Warn("roster: store unavailable, states not saved", "sessions", len(writes), "err", err)
		return ok
	}
	for j, e := range errs {
		i := idx[j]
		switch {
		case e == nil:
			f.saves.Add(1)
			ok[i] = true
		case errors.Is(e, store.ErrFenced):
			f.fenced.Add(1)
			f.log.Warn("roster: state not saved: a newer lease exists", "session", ss[i].id, "err", e)
			ok[i] = true
		default:
			f.saveErrors.Add(1)
		}
	}
	return ok
}

// leave saves the state of a session that has just left the registry
// (closed by its holder or CloseSession) and releases its lease, under the
// ID's lock, which the caller holds. If the store cannot take it, the state
// is kept as an orphan and saved when the store is back.
func (f *fleet) leave(s *Session) {
	if s.ls == nil {
		return
	}
	data, err := s.Marshal()
	if err != nil {
		f.log.Error("roster: cannot marshal session state", "session", s.id, "err", err)
		return
	}
	if s.ls.token.Load() == 0 {
		if err := f.leaseLate(s); err != nil {
			if errors.Is(err, store.ErrUnavailable) {
				f.orphan(s, data)
			}
			return
		}
	}
	ctx, cancel := f.ctx(context.Background())
	defer cancel()
	if !f.saveAndRelease(ctx, []*Session{s}, [][]byte{data})[0] {
		f.orphan(s, data)
	}
}

// leaseLate takes the lease of a session created while the store was down.
// An error other than ErrUnavailable means another process took the ID
// meanwhile; a registered session then leaves as lost.
func (f *fleet) leaseLate(s *Session) error {
	ctx, cancel := f.ctx(context.Background())
	defer cancel()
	start := time.Now()
	sent := f.mono()
	l, _, err := f.st.Acquire(ctx, store.AcquireRequest{ID: s.id, Owner: f.o.owner, TTL: f.o.leaseTTL, FleetMax: f.o.fleetMax, Create: s.ls.create})
	f.observe(start, err)
	if err != nil {
		if !errors.Is(err, store.ErrUnavailable) {
			// Another process took the ID while this one could not ask:
			// two identities now share it; this one gives way.
			f.log.Error("roster: session created while the store was down cannot take its lease", "session", s.id, "err", err)
			f.lose(s)
		}
		return err
	}
	s.ls.token.Store(l.Token)
	s.ls.until.Store(sent + int64(f.o.leaseTTL))
	return nil
}

func (f *fleet) orphan(s *Session, data []byte) {
	f.mu.Lock()
	f.orphans[s.id] = &orphan{lease: f.leaseOf(s), data: data, create: s.ls.create}
	f.mu.Unlock()
	f.log.Warn("roster: session state kept in memory until the store is back", "session", s.id)
}

// closeSession closes the session registered under id, saving its state
// (del false) or deleting it from the store (del true).
func (f *fleet) closeSession(id string, del bool) error {
	c := f.c
	unlock, err := f.lock(context.Background(), id)
	if err != nil {
		return err
	}
	unlock = sync.OnceFunc(unlock)
	defer unlock()
	e, ok := c.reg.Load(id)
	if !ok {
		if !del {
			return c.errNotFound(id)
		}
		f.mu.Lock()
		o := f.orphans[id]
		delete(f.orphans, id)
		f.mu.Unlock()
		l := store.Lease{ID: id, Owner: f.o.owner, Fleet: f.o.fleetMax > 0}
		if o != nil {
			l = o.lease
		}
		return f.delete(l)
	}
	s := e.Value()
	if !c.reg.Remove(e) {
		return c.errNotFound(id)
	}
	// The hook runs once the ID's lock is released: a hook that calls
	// Close or GetSession on the ID would wait for it forever.
	claimed := c.claim(s, EvictClosed)
	c.settle(s)
	if del {
		err = f.delete(f.leaseOf(s))
	} else {
		f.leave(s)
	}
	unlock()
	if claimed {
		c.runHook(s, EvictClosed)
	}
	return err
}

func (f *fleet) delete(l store.Lease) error {
	ctx, cancel := f.ctx(context.Background())
	defer cancel()
	start := time.Now()
	err := f.st.Delete(ctx, l)
	f.observe(start, err)
	if err != nil {
		return fmt.Errorf("delete %q from the store: %w", l.ID, err)
	}
	return nil
}

// closeOne is Session.Close with a store: under the ID's lock, so that a
// GetSession miss waits for the save, the session leaves the registry, is
// closed and saved.
func (f *fleet) closeOne(s *Session) {
	c := f.c
	if s.exit.Load() != 0 {
		// Its exit is under way (Close from an eviction hook, or a
		// second Close): whoever claimed it saves it; the ID's lock may
		// be held by this very goroutine's caller.
		c.settle(s)
		return
	}
	unlock, _ := f.lock(context.Background(), s.id)
	// The ID's lock orders this after a sweep that took the session: it
	// was then retired or replaced (keep), and claim fails.
	removed := c.reg.Remove(s.entry)
	claimed := c.claim(s, EvictClosed)
	c.settle(s)
	if removed {
		f.leave(s)
	}
	unlock()
	if claimed {
		c.runHook(s, EvictClosed)
	}
}

// sweep is the Manager's sweep with a store: the sessions the registry
// gives up are saved, in one pipeline, before they count as evicted; a
// session whose save fails is registered again, with the same state and
// last use, so that the next sweep tries again.
func (f *fleet) sweep(now, cutoff int64) int {
	c := f.c
	// Each candidate's ID lock is taken under its shard's lock, before it
	// leaves the registry, so that a GetSession miss on it waits for the
	// save instead of restoring an older state.
	var mu sync.Mutex
	held := map[*Session]func(){}
	busy := func(s *Session) bool {
		if s.busy() {
			return true
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := held[s]; ok {
			return false
		}
		unlock, _ := f.tryLock(s.id)
		if unlock == nil {
			return true // a close or a loss is under way
		}
		held[s] = unlock
		return false
	}
	var victims []*Session
	c.reg.Sweep(now, cutoff, busy, func(s *Session) { victims = append(victims, s) })
	datas := make([][]byte, len(victims))
	for i, s := range victims {
		datas[i], _ = s.Marshal()
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(f.o.timeout, f.o.leaseTTL/3))
	saved := f.saveAndRelease(ctx, victims, datas)
	cancel()
	n := 0
	for i, s := range victims {
		if s.ls.token.Load() == 0 && !saved[i] {
			if err := f.leaseLate(s); err != nil && !errors.Is(err, store.ErrUnavailable) {
				// Its ID was taken in the store meanwhile: another
				// process drives that identity; this one gives way.
				f.lost.Add(1)
				s.ls.lost.Store(true)
				c.drop(s)
				held[s]()
				delete(held, s)
				continue
			}
			if s.ls.token.Load() != 0 {
				octx, cancel := f.ctx(context.Background())
				saved[i] = f.saveAndRelease(octx, victims[i:i+1], datas[i:i+1])[0]
				cancel()
			}
		}
		if saved[i] {
			// Saved: settled under the ID's lock, the hook after it (a
			// hook may call Close or GetSession on the ID).
			claimed := c.claim(s, EvictIdle)
			c.settle(s)
			held[s]()
			delete(held, s)
			if claimed {
				c.runHook(s, EvictIdle)
				n++
			}
			continue
		}
		f.keep(s, datas[i])
		held[s]()
		delete(held, s)
	}
	for _, unlock := range held { // candidates that stayed
		unlock()
	}
	return n
}

// keep registers again a session whose eviction could not be saved. The
// evicted *Session is closed (its holders see ErrSessionClosed, as after
// any eviction); a new one with its state, lease, slot and last use takes
// its place.
func (f *fleet) keep(old *Session, data []byte) {
	c := f.c
	st, err := protocol.DecodeState(data)
	var s *Session
	if err == nil {
		s, err = restore(st, c.tb, c)
	}
	if err != nil {
		f.log.Error("roster: evicted session cannot be kept", "session", old.id, "err", err)
		c.drop(old)
		return
	}
	s.ls = old.ls
	s.entry = shard.NewEntry(s.id, s, old.entry.LastUsed())
	// The old session's slot passes to the new one: its exit is settled
	// here, uncounted, so that a Close of the old one does nothing.
	old.exit.CompareAndSwap(0, int32(EvictIdle))
	old.accounted.Store(true)
	old.shutdown()
	if err := c.reg.Insert(s.entry); err != nil {
		// Only Shutdown gets here (no one else may register the ID while
		// its lock is held): the state goes with the orphans.
		f.orphan(s, data)
		c.active.Add(-1)
		c.evicted.Add(1)
		c.release()
		return
	}
	f.log.Warn("roster: idle session kept: its state could not be saved", "session", s.id)
}

// lose drops a session whose lease expired or was taken: it leaves the
// registry, counted as evicted, and its requests fail with ErrLeaseLost.
// Its state is kept as an orphan, which the fencing token keeps from
// overwriting a newer holder's.
func (f *fleet) lose(s *Session) {
	if !f.c.reg.Remove(s.entry) {
		return // closed or evicted meanwhile: not lost
	}
	s.ls.lost.Store(true)
	f.lost.Add(1)
	f.log.Warn("roster: session lease lost", "session", s.id, "token", s.ls.token.Load())
	if data, err := s.Marshal(); err == nil && s.ls.token.Load() != 0 {
		f.orphan(s, data)
	}
	f.c.drop(s)
}

// tick renews every lease in one pipeline, drops the sessions whose leases
// are gone, takes the leases of sessions created while the store was down,
// saves long-lived sessions that changed, and saves orphans.
func (f *fleet) tick() {
	c := f.c
	var held []*Session
	var late []*Session
	c.reg.Range(func(e *shard.Entry[*Session]) bool {
		s := e.Value()
		if s.ls != nil && !s.ls.lost.Load() {
			if s.ls.token.Load() == 0 {
				late = append(late, s)
			} else {
				held = append(held, s)
			}
		}
		return true
	})
	f.renew(held)
	for _, s := range late {
		if unlock, _ := f.tryLock(s.id); unlock != nil {
			_ = f.leaseLate(s)
			unlock()
		}
	}
	if f.o.saveEvery > 0 {
		f.saveChanged(held)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.o.leaseTTL/3)
	defer cancel()
	f.flushOrphans(ctx)
}

// renew renews the leases of held in one pipeline (a few, past 10,000).
func (f *fleet) renew(held []*Session) {
	if len(held) == 0 {
		return
	}
	leases := make([]store.Lease, len(held))
	for i, s := range held {
		leases[i] = f.leaseOf(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.o.leaseTTL/3)
	defer cancel()
	sent := f.mono()
	start := time.Now()
	ok, err := f.st.Renew(ctx, leases, f.o.leaseTTL)
	f.observe(start, err)
	f.renewals.Add(int64(len(leases)))
	now := f.mono()
	for i, s := range held {
		switch {
		case err == nil && ok[i]:
			s.ls.until.Store(sent + int64(f.o.leaseTTL))
		case err == nil || s.ls.until.Load() <= now:
			if unlock, _ := f.tryLock(s.id); unlock != nil {
				f.lose(s)
				unlock()
			}
		}
	}
	if err != nil {
		f.log.Warn("roster: store unavailable, leases not renewed", "leases", len(leases), "err", err)
	}
}

// saveChanged saves, without releasing the lease, each session last saved
// longer than the save interval ago that was used or changed since (a
// request, a use, SetCookies, ClearCookies, SetProxy).
func (f *fleet) saveChanged(held []*Session) {
	// The snapshot's time, not the reply's, marks a save: stamped after
	// the round trip, a session saved every tick looked not yet due at the
	// next one, and was saved every other tick.
	snap := f.mono()
	due := snap - int64(f.o.saveEvery)
	var writes []store.Write
	var who []*Session
	var marks [][3]int64
	// Each session's ID lock is held from its snapshot until the reply:
	// a Close or an eviction that saves a newer state waits for this
	// write instead of being overwritten by it (both carry the same
	// fencing token). A session whose lock is taken is saved by its
	// holder, or at the next tick.
	var unlocks []func()
	defer func() {
		for _, u := range unlocks {
			u()
		}
	}()
	for _, s := range held {
		if s.ls.savedAt.Load() > due {
			continue
		}
		used, reqs, chg := s.entry.LastUsed(), s.requests.Load(), s.ls.changes.Load()
		if used == s.ls.saved.Load() && reqs == s.ls.savedReqs.Load() && chg == s.ls.savedChg.Load() {
			continue
		}
		unlock, _ := f.tryLock(s.id)
		if unlock == nil {
			continue
		}
		unlocks = append(unlocks, unlock)
		if s.closed.Load() {
			continue // closed meanwhile: its close saved it
		}
		data, err := s.Marshal()
		if err != nil {
			continue
		}
		writes = append(writes, store.Write{Lease: f.leaseOf(s), State: data, StateTTL: f.o.stateTTL})
		who = append(who, s)
		marks = append(marks, [3]int64{used, reqs, chg})
	}
	if len(writes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.o.leaseTTL/3)
	defer cancel()
	start := time.Now()
	errs, err := f.st.Save(ctx, writes)
	f.observe(start, err)
	if err != nil {
		f.saveErrors.Add(int64(len(writes)))
		return
	}
	for i, e := range errs {
		s := who[i]
		switch {
		case e == nil:
			f.saves.Add(1)
			s.ls.saved.Store(marks[i][0])
			s.ls.savedReqs.Store(marks[i][1])
			s.ls.savedChg.Store(marks[i][2])
			s.ls.savedAt.Store(snap)
		case errors.Is(e, store.ErrFenced):
			f.fenced.Add(1)
			f.lose(s) // under its ID lock, held since the snapshot
		default:
			f.saveErrors.Add(1)
		}
	}
}

// flushOrphans saves, in one pipeline, the states kept in memory while the
// store was down, and releases their leases. It returns how many are left.
func (f *fleet) flushOrphans(ctx context.Context) int {
	f.mu.Lock()
	ids := make([]string, 0, len(f.orphans))
	for id := range f.orphans {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	var writes []store.Write
	var unlocks []func()
	for _, id := range ids {
		unlock, _ := f.tryLock(id)
		if unlock == nil {
			continue
		}
		f.mu.Lock()
		o := f.orphans[id]
		f.mu.Unlock()
		if o != nil && o.lease.Token == 0 {
			// Created while the store was down and never leased.
			start := time.Now()
			l, _, err := f.st.Acquire(ctx, store.AcquireRequest{ID: id, Owner: f.o.owner, TTL: f.o.leaseTTL, Create: o.create})
			f.observe(start, err)
			switch {
			case err == nil:
				o.lease = l
			case errors.Is(err, store.ErrUnavailable):
				o = nil
			default:
				f.log.Error("roster: unsaved state dropped: its ID is taken in the store", "session", id, "err", err)
				f.mu.Lock()
				delete(f.orphans, id)
				f.mu.Unlock()
				o = nil
			}
		}
		if o == nil {
			unlock()
			continue
		}
		writes = append(writes, store.Write{Lease: o.lease, State: o.data, StateTTL: f.o.stateTTL, Release: true})
		unlocks = append(unlocks, unlock)
	}
	if len(writes) > 0 {
		start := time.Now()
		errs, err := f.st.Save(ctx, writes)
		f.observe(start, err)
		for i, w := range writes {
			switch {
			case err != nil:
			case errs[i] == nil:
				f.saves.Add(1)
			case errors.Is(errs[i], store.ErrFenced):
				f.fenced.Add(1)
			default:
				continue
			}
			if err == nil {
				f.mu.Lock()
				delete(f.orphans, w.Lease.ID)
				f.mu.Unlock()
			}
		}
	}
	for _, unlock := range unlocks {
		unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.orphans)
}

// shutdown stops the tick, then saves every session of ss (which have left
// the registry) and releases their leases, in one pipeline; with retry, it
// tries again until ctx ends while the store cannot take them.
func (f *fleet) shutdown(ctx context.Context, ss []*Session, retry bool) {
	f.stopTick()
	f.mu.Lock()
	for _, s := range ss {
		if data, err := s.Marshal(); err == nil {
			f.orphans[s.id] = &orphan{lease: f.leaseOf(s), data: data, create: s.ls.create}
		}
	}
	f.mu.Unlock()
	if ctx.Err() != nil { // a drain used it up: one try still
		ctx, retry = context.Background(), false
	}
	for {
		octx, cancel := context.WithTimeout(ctx, max(f.o.timeout, f.o.leaseTTL/3))
		left := f.flushOrphans(octx)
		cancel()
		if left == 0 {
			return
		}
		if !retry || ctx.Err() != nil {
			f.saveErrors.Add(int64(left))
			f.log.Error("roster: shutdown: session states not saved to the store", "sessions", left)
			return
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// stats returns the store counters.
func (f *fleet) stats() StoreStats {
	if f == nil {
		return StoreStats{}
	}
	var held, unleased int64
	f.c.reg.Range(func(e *shard.Entry[*Session]) bool {
		if ls := e.Value().ls; ls != nil && !ls.lost.Load() {
			if ls.token.Load() != 0 {
				held++
			} else {
				unleased++
			}
		}
		return true
	})
	f.mu.Lock()
	unsaved := int64(len(f.orphans))
	f.mu.Unlock()
	return StoreStats{
		LeasesHeld:   held,
		Restores:     f.restores.Load(),
		Saves:        f.saves.Load(),
		SaveErrors:   f.saveErrors.Load(),
		Fenced:       f.fenced.Load(),
		Renewals:     f.renewals.Load(),
		LeasesLost:   f.lost.Load(),
		Leased:       f.leased.Load(),
		Errors:       f.errs.Load(),
		Unsaved:      unsaved,
		Unleased:     unleased,
		LastLatency:  time.Duration(f.lastLat.Load()),
		TotalLatency: time.Duration(f.totalLat.Load()),
		Ops:          f.ops.Load(),
	}
}

// StoreStats returns the counters of the Manager's store machinery; all
// zero without a store.
func (m *Manager) StoreStats() StoreStats { return m.c.fleet.stats() }

// GetSessionWait is GetSession that, when another process holds the
// session's lease, waits until it is released or expires (or, under a fleet
// cap, until a fleet slot is free) and then restores the session. It
// returns ctx's error if ctx ends first. Without a store it is GetSession.
func (m *Manager) GetSessionWait(ctx context.Context, sessionID string) (*Session, error) {
	c := m.c
	for backoff := 10 * time.Millisecond; ; backoff = min(backoff*2, time.Second) {
		if len(sessionID) <= idgen.MaxLen {
			if s, ok := c.reg.Get(sessionID, c.tb.Coarse()); ok {
				return s, nil
			}
		}
		if c.fleet == nil {
			return nil, c.errNotFound(sessionID)
		}
		s, err := c.fleet.restore(ctx, sessionID, true)
		if !errors.Is(err, ErrSessionLeased) {
			return s, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the lease of %q: %w (%w)", sessionID, ctx.Err(), err)
		}
	}
}

// DeleteSession closes the session registered under sessionID, as
// CloseSession does, and removes its state from the store, so that no
// process of the fleet can restore it. With a store, an ID held by no
// local session is deleted from the store unless another process holds
// its lease (ErrSessionLeased). When the store cannot be reached, the
// session is closed here all the same, its state stays in the store, and
// the error wraps ErrStoreUnavailable. Without a store it is CloseSession.
func (m *Manager) DeleteSession(sessionID string) error {
	if m.c.fleet == nil {
		return m.CloseSession(sessionID)
	}
	if err := idgen.Validate(sessionID); err != nil {
		return err
	}
	return m.c.fleet.closeSession(sessionID, true)
}
