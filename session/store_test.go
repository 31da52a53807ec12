package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rosterhq/roster/internal/redistest"
	"github.com/rosterhq/roster/store"
	rstore "github.com/rosterhq/roster/store/redis"
)

// fleetEnv is one redis-server shared by the Managers of a test.
type fleetEnv struct {
	t   *testing.T
	srv *redistest.Server
	rc  goredis.UniversalClient // for looking at keys
	st  *rstore.Store
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	srv := redistest.Start(t)
	e := &fleetEnv{t: t, srv: srv}
	e.rc, e.st = e.client(2 * time.Second)
	return e
}

// client returns a client and a store of its own, as a separate process
// would have, with the given timeout on each command.
func (e *fleetEnv) client(timeout time.Duration) (goredis.UniversalClient, *rstore.Store) {
	e.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: e.srv.Addr(), DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, MaxRetries: -1})
	e.t.Cleanup(func() { _ = c.Close() })
	st, err := rstore.New(c, rstore.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	return c, st
}

// manager returns a Manager of the fleet, named owner, on clock clk (a
// fake clock when nil), with no background sweeper.
func (e *fleetEnv) manager(owner string, clk *fakeClock, opts ...Option) (*Manager, *fakeClock) {
	e.t.Helper()
	if clk == nil {
		clk = newFakeClock()
	}
	_, st := e.client(time.Second)
	m := NewManager(append([]Option{WithClock(clk), WithCleanupInterval(0), WithStore(st), WithOwner(owner),
		WithStoreTimeout(300 * time.Millisecond), WithLogger(quietLogger)}, opts...)...)
	e.t.Cleanup(m.Shutdown)
	return m, clk
}

var quietLogger = slog.New(slog.DiscardHandler)

var testCookie = []CookieState{{Name: "sid", Value: "v1", Domain: "example.com", Path: "/", HostOnly: true}}

func cookieOf(t *testing.T, s *Session) string {
	t.Helper()
	for _, c := range s.Cookies() {
		if c.Name == "sid" {
			return c.Value
		}
	}
	return ""
}

func setCookie(t *testing.T, s *Session, v string) {
	t.Helper()
	cs := append([]CookieState(nil), testCookie...)
	cs[0].Value = v
	if err := s.SetCookies(cs); err != nil {
		t.Fatal(err)
	}
}

func TestFleetHandOverAfterClose(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil)
	b, _ := e.manager("B", nil)
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "from-a")

	// While A holds it, B is refused, and told who holds it.
	if _, err := b.GetSession(id); !errors.Is(err, ErrSessionLeased) || !strings.Contains(err.Error(), "A") {
		t.Fatalf("B.GetSession of A's session: %v, want ErrSessionLeased naming A", err)
	}
	if err := a.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetSession(id)
	if err != nil {
		t.Fatalf("B.GetSession after A closed it: %v", err)
	}
	if v := cookieOf(t, got); v != "from-a" {
		t.Fatalf("cookie through B %q, want from-a", v)
	}
	if _, err := a.GetSession(id); !errors.Is(err, ErrSessionLeased) {
		t.Fatalf("A.GetSession of B's session: %v", err)
	}
	// Session.Close saves as CloseSession does.
	setCookie(t, got, "from-b")
	if err := got.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := a.GetSession(id)
	if err != nil || cookieOf(t, back) != "from-b" {
		t.Fatalf("A.GetSession after B closed it: %v, cookie %q", err, cookieOf(t, back))
	}
	if st := b.StoreStats(); st.Restores != 1 || st.Saves != 1 {
		t.Errorf("B's store stats %+v, want 1 restore, 1 save", st)
	}
	if _, err := a.GetSession("never-was"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("miss on an ID the store does not hold: %v", err)
	}
	if keys, _ := e.rc.Keys(context.Background(), "*never-was*").Result(); len(keys) != 0 {
		t.Fatalf("a miss left keys behind: %q", keys)
	}
}

func TestFleetHandOverAfterEviction(t *testing.T) {
	e := newFleetEnv(t)
	var hooked atomic.Int32
	a, clk := e.manager("A", nil, WithSessionTimeout(10*time.Minute), WithOnEvict(func(*Session, EvictReason) { hooked.Add(1) }))
	b, _ := e.manager("B", nil)
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "evicted")
	clk.Advance(11 * time.Minute)
	if n := a.Sweep(); n != 1 || hooked.Load() != 1 {
		t.Fatalf("sweep evicted %d (hook ran %d times), want 1", n, hooked.Load())
	}
	got, err := b.GetSession(id)
	if err != nil || cookieOf(t, got) != "evicted" {
		t.Fatalf("B.GetSession after A evicted it: %v, cookie %q", err, cookieOf(t, got))
	}
	if st := a.Stats(); st.Evicted != 1 || st.Active != 0 {
		t.Fatalf("A's stats %+v", st)
	}
}

// A session whose eviction cannot be saved stays registered, with its
// state, and goes at a later sweep once the store is back.
func TestFleetEvictionWaitsForTheStore(t *testing.T) {
	e := newFleetEnv(t)
	a, clk := e.manager("A", nil, WithSessionTimeout(10*time.Minute), WithStoreTimeout(100*time.Millisecond))
	b, _ := e.manager("B", nil)
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "kept")
	clk.Advance(11 * time.Minute)

	e.srv.Pause()
	if n := a.Sweep(); n != 0 {
		t.Fatalf("sweep with the store down evicted %d", n)
	}
	kept, err := a.PeekSession(id)
	if err != nil || cookieOf(t, kept) != "kept" {
		t.Fatalf("session after a failed eviction save: %v, cookie %q", err, cookieOf(t, kept))
	}
	if st := a.Stats(); st.Active != 1 || st.Evicted != 0 {
		t.Fatalf("stats after a failed eviction save %+v", st)
	}
	e.srv.Resume()
	if n := a.Sweep(); n != 1 {
		t.Fatalf("sweep with the store back evicted %d, want 1 (the kept session is still idle)", n)
	}
	got, err := b.GetSession(id)
	if err != nil || cookieOf(t, got) != "kept" {
		t.Fatalf("B after the retried eviction: %v, cookie %q", err, cookieOf(t, got))
	}
	if st := a.StoreStats(); st.SaveErrors != 1 || st.Errors == 0 {
		t.Errorf("A's store stats %+v, want 1 save error and store errors counted", st)
	}
}

// A holder that stops renewing (as after kill -9) loses its leases after
// the TTL; another process takes the session over with its last saved
// state; the old holder's late write is refused and its requests fail with
// ErrLeaseLost.
func TestFleetLeaseExpiryAndFencing(t *testing.T) {
	e := newFleetEnv(t)
	const ttl = 300 * time.Millisecond
	a, _ := e.manager("A", nil, WithLeaseTTL(ttl), WithSaveInterval(time.Nanosecond))
	b, _ := e.manager("B", nil, WithLeaseTTL(ttl))
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "saved")
	s.Touch()
	a.c.fleet.stopTick() // A pauses: no more renewals from here
	a.c.fleet.saveChanged([]*Session{s})
	setCookie(t, s, "unsaved")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	got, err := b.GetSessionWait(ctx, id)
	if err != nil {
		t.Fatalf("B.GetSessionWait: %v", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("B waited %v for a %v lease", waited, ttl)
	}
	if v := cookieOf(t, got); v != "saved" {
		t.Fatalf("B took over with cookie %q, want the last saved one", v)
	}
	setCookie(t, got, "from-b")
	if err := b.CloseSession(id); err != nil {
		t.Fatal(err)
	}

	// A wakes up: its periodic save carries its old token and is refused.
	s.Touch()
	a.c.fleet.saveChanged([]*Session{s})
	if st := a.StoreStats(); st.Fenced != 1 || st.LeasesLost != 1 {
		t.Fatalf("A's store stats after its late write %+v, want 1 fenced, 1 lost", st)
	}
	if _, err := s.Get(context.Background(), "http://127.0.0.1:1/"); !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("request on a lost session: %v, want ErrLeaseLost", err)
	}
	back, err := b.GetSession(id)
	if err != nil || cookieOf(t, back) != "from-b" {
		t.Fatalf("state after A's late write: %v, cookie %q, want from-b", err, cookieOf(t, back))
	}
	if st := a.Stats(); st.Created != st.Closed+st.Evicted+st.Active {
		t.Errorf("A's counters do not add up: %+v", st)
	}
}

// A renewal that finds the lease gone drops the session.
func TestFleetRenewalFindsLeaseTaken(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil)
	id := mustCreate(t, a)
	ctx := context.Background()
	if err := e.rc.Del(ctx, e.st.LeaseKey(id)).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.st.Acquire(ctx, store.AcquireRequest{ID: id, Owner: "B", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a.c.fleet.tick()
	if _, err := a.PeekSession(id); !errors.Is(err, ErrSessionLeased) {
		t.Fatalf("session whose lease is gone: %v", err)
	}
	if st := a.StoreStats(); st.LeasesLost != 1 {
		t.Fatalf("store stats %+v", st)
	}
}

func TestFleetCapUnderConcurrentCreators(t *testing.T) {
	e := newFleetEnv(t)
	const capN, creators, managers = 20, 200, 4
	var ms []*Manager
	for i := range managers {
		m, _ := e.manager(fmt.Sprintf("M%d", i), nil, WithFleetMaxSessions(capN), WithMaxSessions(0), WithStoreTimeout(5*time.Second))
		ms = append(ms, m)
	}
	var held, peak atomic.Int64
	var created, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range creators {
		wg.Go(func() {
			m := ms[i%managers]
			var id string
			var err error
			if i%2 == 0 {
				id, err = m.CreateSession(nil)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				id, err = m.CreateSessionWait(ctx, nil)
				cancel()
			}
			if err != nil {
				if !errors.Is(err, ErrMaxSessions) {
					t.Errorf("create: %v", err)
				}
				refused.Add(1)
				return
			}
			created.Add(1)
			n := held.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			held.Add(-1)
			if err := m.CloseSession(id); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	wg.Wait()
	if peak.Load() > capN {
		t.Fatalf("%d sessions held at once across the fleet, cap %d", peak.Load(), capN)
	}
	if created.Load() < creators/2 {
		t.Fatalf("only %d creates succeeded; every waiting creator should have", created.Load())
	}
	if n, _ := e.rc.ZCard(context.Background(), e.st.FleetKey()).Result(); n != 0 {
		t.Fatalf("%d fleet slots held after every session closed", n)
	}
	t.Logf("created %d, refused %d, peak %d of %d", created.Load(), refused.Load(), peak.Load(), capN)
}

// Redis paused (SIGSTOP) and restarted mid-run: hits keep working, creates
// without a fleet cap proceed, closes and evictions keep their state, and
// once Redis is back everything reaches it; the counters add up.
func TestFleetRedisPauseAndRestart(t *testing.T) {
	e := newFleetEnv(t)
	a, clk := e.manager("A", nil, WithLeaseTTL(5*time.Second), WithSessionTimeout(10*time.Minute), WithStoreTimeout(100*time.Millisecond))
	capped, _ := e.manager("C", nil, WithFleetMaxSessions(100), WithStoreTimeout(100*time.Millisecond))
	var ids []string
	for i := range 10 {
		id := mustCreate(t, a)
		s, _ := a.GetSession(id)
		setCookie(t, s, fmt.Sprintf("c%d", i))
		ids = append(ids, id)
	}
	// An identity saved in Redis, to be restored from its state while
	// Redis is away.
	saved := mustCreate(t, a)
	if err := a.CloseSession(saved); err != nil {
		t.Fatal(err)
	}
	savedState, err := e.rc.Get(context.Background(), e.st.StateKey(saved)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Pause()
	for _, id := range ids {
		if _, err := a.GetSession(id); err != nil {
			t.Fatalf("hit with Redis paused: %v", err)
		}
	}
	if _, err := capped.CreateSession(nil); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("create under a fleet cap with Redis paused: %v, want ErrStoreUnavailable", err)
	}
	late := mustCreate(t, a) // no fleet cap: proceeds, leased later
	s, _ := a.GetSession(late)
	setCookie(t, s, "late")
	ids = append(ids, late)
	if err := a.CloseSession(ids[0]); err != nil { // kept in memory
		t.Fatal(err)
	}
	if _, err := a.RestoreSession(savedState); err != nil {
		t.Fatalf("RestoreSession with Redis paused: %v", err)
	}
	if st := a.StoreStats(); st.Unsaved != 1 || st.Unleased != 2 {
		t.Fatalf("store stats with Redis paused %+v, want 1 unsaved, 2 unleased", st)
	}
	e.srv.Resume()
	a.c.fleet.tick() // leases the late ones, saves the closed one
	if st := a.StoreStats(); st.Unsaved != 0 || st.Unleased != 0 || st.LeasesLost != 0 {
		t.Fatalf("store stats with Redis back %+v", st)
	}
	if err := a.CloseSession(saved); err != nil {
		t.Fatalf("the restored identity: %v", err)
	}
	e.srv.Restart()
	for range 3 { // the first tick may meet the broken connections
		a.c.fleet.tick()
	}
	clk.Advance(11 * time.Minute)
	if n := a.Sweep(); n != len(ids)-1 {
		t.Fatalf("sweep after the restart evicted %d, want %d", n, len(ids)-1)
	}
	if st := a.Stats(); st.Created != st.Closed+st.Evicted+st.Active || st.Active != 0 {
		t.Fatalf("A's counters do not add up: %+v", st)
	}
	b, _ := e.manager("B", nil)
	for i, id := range ids {
		want := fmt.Sprintf("c%d", i)
		if id == late {
			want = "late"
		}
		got, err := b.GetSession(id)
		if err != nil || cookieOf(t, got) != want {
			t.Fatalf("B.GetSession(%s): %v, cookie %q, want %q", id, err, cookieOf(t, got), want)
		}
	}
}

func TestFleetShutdownSavesEverySession(t *testing.T) {
	e := newFleetEnv(t)
	_, st := e.client(time.Second)
	a := NewManager(WithCleanupInterval(0), WithStore(st), WithOwner("A"), WithLogger(quietLogger))
	var ids []string
	for range 50 {
		id := mustCreate(t, a)
		s, _ := a.GetSession(id)
		setCookie(t, s, id)
		ids = append(ids, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.ShutdownContext(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := e.manager("B", nil)
	for _, id := range ids {
		got, err := b.GetSession(id)
		if err != nil || cookieOf(t, got) != id {
			t.Fatalf("B.GetSession(%s) after A's shutdown: %v", id, err)
		}
	}
}

func TestFleetDeleteSession(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil)
	b, _ := e.manager("B", nil)
	id := mustCreate(t, a)
	if err := b.DeleteSession(id); !errors.Is(err, ErrSessionLeased) {
		t.Fatalf("B deleting A's session: %v", err)
	}
	if err := a.DeleteSession(id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetSession(id); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("B.GetSession after delete: %v", err)
	}
	if n, _ := e.rc.Exists(context.Background(), e.st.StateKey(id), e.st.LeaseKey(id)).Result(); n != 0 {
		t.Fatalf("%d keys left after DeleteSession", n)
	}
}

func TestFleetStateTTL(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil, WithStateTTL(time.Hour))
	id := mustCreate(t, a)
	if err := a.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	ttl, err := e.rc.PTTL(context.Background(), e.st.StateKey(id)).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("state TTL %v (%v), want just under an hour", ttl, err)
	}
}

func TestFleetCreateWithIDOfStoredState(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil)
	b, _ := e.manager("B", nil)
	if err := a.CreateSessionWithID("named", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseSession("named"); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateSessionWithID("named", nil); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("create over a stored identity: %v, want ErrSessionExists", err)
	}
	if b.SessionCount() != 0 {
		t.Fatal("a refused create holds a slot")
	}
}

// TestFleetChaos runs workers that set cookies, close and restore their
// sessions while Redis is paused (SIGSTOP/SIGCONT), then stopped and
// started again (its append-only file keeps its data) under them; afterwards another Manager finds every session with the last cookie
// its worker set, and the counters add up.
func TestFleetChaos(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil, WithLeaseTTL(10*time.Second), WithStoreTimeout(50*time.Millisecond), WithMaxSessions(0))
	const workers, perWorker = 8, 4
	last := make([]map[string]int, workers) // per worker: ID -> last value set
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops, failures atomic.Int64
	for w := range workers {
		last[w] = map[string]int{}
		var ids []string
		for range perWorker {
			ids = append(ids, mustCreate(t, a))
		}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[r.IntN(len(ids))]
				s, err := a.GetSession(id)
				if err != nil {
					// A restore with Redis away: the session waits in
					// memory or in Redis; try again later.
					if !errors.Is(err, ErrStoreUnavailable) {
						t.Errorf("GetSession(%s): %v", id, err)
						return
					}
					failures.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				ops.Add(1)
				// Whether restored or still here, the session has the
				// last cookie this worker set: nothing lost.
				if want, got := last[w][id], cookieOf(t, s); got != fmt.Sprint(want) && (want != 0 || got != "") {
					t.Errorf("%s: cookie %q, want %d (the last one set)", id, got, want)
					return
				}
				if r.IntN(4) == 0 {
					if err := a.CloseSession(id); err != nil {
						t.Errorf("CloseSession(%s): %v", id, err)
						return
					}
					continue
				}
				setCookie(t, s, fmt.Sprint(n))
				if s.IsActive() {
					last[w][id] = n
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	e.srv.Pause()
	time.Sleep(300 * time.Millisecond)
	e.srv.Resume()
	time.Sleep(200 * time.Millisecond)
	e.srv.Kill() // down for a while: writes sent now never arrive
	time.Sleep(300 * time.Millisecond)
	e.srv.StartAgain()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	a.c.fleet.tick() // saves what waited for Redis
	if st := a.Stats(); st.Created != st.Closed+st.Evicted+st.Active {
		t.Fatalf("A's counters do not add up: %+v", st)
	}
	if st := a.StoreStats(); st.LeasesLost != 0 || st.Errors == 0 {
		t.Fatalf("store stats %+v: want no lease lost in a short outage, and the outage seen", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.ShutdownContext(ctx); err != nil {
		t.Fatal(err)
	}
	if st := a.StoreStats(); st.Unsaved != 0 {
		t.Fatalf("states left unsaved at shutdown: %+v", st)
	}
	b, _ := e.manager("B", nil, WithMaxSessions(0))
	for w := range workers {
		for id, v := range last[w] {
			s, err := b.GetSession(id)
			if err != nil {
				t.Fatalf("B.GetSession(%s): %v", id, err)
			}
			if got := cookieOf(t, s); got != fmt.Sprint(v) {
				t.Errorf("%s: cookie %q, want %d (the last one set)", id, got, v)
			}
		}
	}
	t.Logf("%d operations, %d refused while Redis was away; store stats %+v", ops.Load(), failures.Load(), a.StoreStats())
}

// A close whose save could not reach Redis keeps the state in memory; if
// the lease expires and another process drives the session meanwhile, a
// later restore here takes the other's state, not the stale one kept.
func TestFleetStaleUnsavedStateLosesToNewerHolder(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil, WithLeaseTTL(300*time.Millisecond), WithStoreTimeout(100*time.Millisecond))
	b, _ := e.manager("B", nil)
	a.c.fleet.stopTick() // A keeps its unsaved state to itself
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "a0")
	if err := a.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	s, err := a.GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	setCookie(t, s, "a1")
	e.srv.Kill()
	if err := a.CloseSession(id); err != nil { // kept in memory
		t.Fatal(err)
	}
	e.srv.StartAgain()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := b.GetSessionWait(ctx, id) // once A's lease has expired
	if err != nil || cookieOf(t, got) != "a0" {
		t.Fatalf("B after A's lease expired: %v, cookie %q, want a0", err, cookieOf(t, got))
	}
	setCookie(t, got, "b")
	if err := b.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	back, err := a.GetSession(id)
	if err != nil || cookieOf(t, back) != "b" {
		t.Fatalf("A after B's close: %v, cookie %q, want b (B's, newer than A's unsaved a1)", err, cookieOf(t, back))
	}
}

// A session created while Redis was down, and idle since, takes its lease
// at its eviction and is saved then.
func TestFleetEvictionOfSessionCreatedWhileDown(t *testing.T) {
	e := newFleetEnv(t)
	a, clk := e.manager("A", nil, WithSessionTimeout(10*time.Minute), WithStoreTimeout(100*time.Millisecond))
	b, _ := e.manager("B", nil)
	a.c.fleet.stopTick() // only the sweep takes the lease
	e.srv.Kill()
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "born-offline")
	e.srv.StartAgain()
	clk.Advance(11 * time.Minute)
	if n := a.Sweep(); n != 1 {
		t.Fatalf("sweep evicted %d, want 1", n)
	}
	got, err := b.GetSession(id)
	if err != nil || cookieOf(t, got) != "born-offline" {
		t.Fatalf("B: %v, cookie %q", err, cookieOf(t, got))
	}
}

// A session lost because Redis was down past its lease keeps its state in
// memory; when this process is the next to lease it, that state is the
// newest and comes back.
func TestFleetLostSessionComesBackWithItsState(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil, WithLeaseTTL(300*time.Millisecond), WithStoreTimeout(50*time.Millisecond))
	a.c.fleet.stopTick()
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "x0")
	if err := a.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	if s, _ = a.GetSession(id); s == nil {
		t.Fatal("no restore")
	}
	setCookie(t, s, "x1")
	e.srv.Kill()
	for deadline := time.Now().Add(10 * time.Second); a.StoreStats().LeasesLost == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the lease was never found lost")
		}
		a.c.fleet.renew([]*Session{s}) // fails until the lease's deadline has passed
		time.Sleep(20 * time.Millisecond)
	}
	e.srv.StartAgain()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); e.rc.Exists(ctx, e.st.LeaseKey(id)).Val() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the lease never expired in Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
	back, err := a.GetSession(id)
	if err != nil || cookieOf(t, back) != "x1" {
		t.Fatalf("after the loss: %v, cookie %q, want x1 (kept in memory)", err, cookieOf(t, back))
	}
}

// While a closed session's state waits in memory for Redis, its ID is
// still taken: a create under it fails.
func TestFleetCreateOverUnsavedState(t *testing.T) {
	e := newFleetEnv(t)
	a, _ := e.manager("A", nil, WithStoreTimeout(50*time.Millisecond))
	a.c.fleet.stopTick()
	e.srv.Kill()
	if err := a.CreateSessionWithID("offline", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseSession("offline"); err != nil {
		t.Fatal(err)
	}
	e.srv.StartAgain()
	if err := a.CreateSessionWithID("offline", nil); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("create over unsaved state: %v, want ErrSessionExists", err)
	}
	if a.SessionCount() != 0 {
		t.Fatal("a refused create holds a slot")
	}
	a.c.fleet.tick()
	if st := a.StoreStats(); st.Unsaved != 0 {
		t.Fatalf("store stats %+v", st)
	}
	if n := e.rc.Exists(context.Background(), e.st.StateKey("offline")).Val(); n != 1 {
		t.Fatal("the unsaved state never reached Redis")
	}
}

// TestFleetHookMayCloseAndGet: with a store, an eviction hook may close the
// session it is given or look its ID up, during a sweep and during
// CloseSession, as WithOnEvict promises; the hook runs after the ID's lock
// is released (it used to run under it, and each of these waited forever).
func TestFleetHookMayCloseAndGet(t *testing.T) {
	within := func(t *testing.T, what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return: deadlock", what)
		}
	}
	var m *Manager
	for _, tc := range []struct {
		name string
		hook func(*Session, EvictReason)
	}{
		{"close", func(s *Session, _ EvictReason) { _ = s.Close() }},
		{"get", func(s *Session, _ EvictReason) { _, _ = m.GetSession(s.ID()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFleetEnv(t)
			var calls atomic.Int32
			a, clk := e.manager("A", nil, WithSessionTimeout(10*time.Minute), WithOnEvict(func(s *Session, r EvictReason) {
				calls.Add(1)
				tc.hook(s, r)
			}))
			m = a
			mustCreate(t, a)
			clk.Advance(11 * time.Minute)
			within(t, "Sweep", func() { a.Sweep() })
			id := mustCreate(t, a)
			within(t, "CloseSession", func() { _ = a.CloseSession(id) })
			if n := calls.Load(); n < 2 {
				t.Errorf("hook ran %d times, want one per exit", n)
			}
		})
	}
}

// TestFleetCloseDuringShutdownSaves: sessions closed while Shutdown drains
// the registry still reach the store, and their leases are released.
func TestFleetCloseDuringShutdownSaves(t *testing.T) {
	e := newFleetEnv(t)
	var first atomic.Bool
	started, release := make(chan struct{}), make(chan struct{})
	a, _ := e.manager("A", nil, WithShards(1), WithOnEvict(func(s *Session, r EvictReason) {
		if r == EvictShutdown && first.CompareAndSwap(false, true) {
			close(started)
			<-release // hold the drain while the sessions are closed
		}
	}))
	b, _ := e.manager("B", nil)
	var ss []*Session
	for range 4 {
		id := mustCreate(t, a)
		s, _ := a.GetSession(id)
		setCookie(t, s, "x")
		ss = append(ss, s)
	}
	shut := make(chan struct{})
	go func() { a.Shutdown(); close(shut) }()
	<-started
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { _ = s.Close() })
	}
	wg.Wait()
	close(release)
	<-shut
	for _, s := range ss {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := b.GetSessionWait(ctx, s.ID())
		cancel()
		if err != nil || cookieOf(t, got) != "x" {
			t.Errorf("%s closed during Shutdown: %v; A %+v, store %+v", s.ID(), err, a.Stats(), a.StoreStats())
		}
	}
}

// saveHold wraps a store: a periodic (non-releasing) save reports that it
// has begun and waits for let; every save records the fleet time it began.
type saveHold struct {
	store.Store
	mono    func() int64
	entered chan struct{}
	let     chan struct{}
	began   atomic.Int64
}

func (h *saveHold) Save(ctx context.Context, ws []store.Write) ([]error, error) {
	if h.mono != nil {
		h.began.Store(h.mono())
	}
	if len(ws) > 0 && !ws[0].Release && h.entered != nil {
		close(h.entered)
		h.entered = nil
		<-h.let
	}
	return h.Store.Save(ctx, ws)
}

// TestFleetPeriodicSaveDoesNotOverwriteClose: a periodic save in flight when
// the session is changed and closed must not land after the close's save
// (both carry the same fencing token): Close waits for it, then saves the
// newer state. Before, the store was left with the older state.
func TestFleetPeriodicSaveDoesNotOverwriteClose(t *testing.T) {
	e := newFleetEnv(t)
	_, st := e.client(time.Second)
	hs := &saveHold{Store: st, entered: make(chan struct{}), let: make(chan struct{})}
	a := NewManager(WithClock(newFakeClock()), WithCleanupInterval(0), WithStore(hs), WithOwner("A"),
		WithStoreTimeout(2*time.Second), WithLogger(quietLogger), WithSaveInterval(time.Nanosecond), WithLeaseTTL(time.Hour))
	t.Cleanup(a.Shutdown)
	b, _ := e.manager("B", nil)
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "old")
	ticked := make(chan struct{})
	entered := hs.entered
	go func() { a.c.fleet.tick(); close(ticked) }() // snapshots "old", then waits in Save
	<-entered
	setCookie(t, s, "new")
	closed := make(chan struct{})
	go func() { _ = s.Close(); close(closed) }()
	// Give a Close that does not wait (the old code) time to finish
	// before the periodic save lands; the fixed Close waits regardless.
	select {
	case <-closed:
	case <-time.After(200 * time.Millisecond):
	}
	close(hs.let)
	<-ticked
	<-closed
	got, err := b.GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	if v := cookieOf(t, got); v != "new" {
		t.Fatalf("the store holds %q after Close saved %q: the periodic save in flight overwrote it", v, "new")
	}
}

// TestFleetSaveStampsTheSnapshot: a periodic save is stamped with the time
// of its snapshot, not of the reply, so that a session that changes every
// tick is saved every save interval, not every other one.
func TestFleetSaveStampsTheSnapshot(t *testing.T) {
	e := newFleetEnv(t)
	_, st := e.client(time.Second)
	hs := &saveHold{Store: st}
	a := NewManager(WithClock(newFakeClock()), WithCleanupInterval(0), WithStore(hs), WithOwner("A"),
		WithLogger(quietLogger), WithSaveInterval(time.Nanosecond), WithLeaseTTL(time.Hour))
	t.Cleanup(a.Shutdown)
	hs.mono = a.c.fleet.mono
	id := mustCreate(t, a)
	s, _ := a.GetSession(id)
	setCookie(t, s, "x")
	saves := a.StoreStats().Saves
	a.c.fleet.tick()
	if a.StoreStats().Saves != saves+1 {
		t.Fatalf("the tick saved %d sessions, want 1", a.StoreStats().Saves-saves)
	}
	if at, began := s.ls.savedAt.Load(), hs.began.Load(); at > began {
		t.Errorf("save stamped at %d, after the write began at %d: stamped with the reply", at, began)
	}
}
