package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault injection under load. evict_test.go covers a panicking and a slow
// eviction hook, Shutdown during a storm of creates, clock jumps and
// ShutdownContext; the tests here cover the cap and the timeout changed
// under load, Close while CreateSessionWait calls queue, and a sweep racing
// Gets of the same sessions at the timeout boundary. Each ends with the
// counters adding up and the slot counter matching the sessions registered;
// TestMain's goleak checks that no goroutine is left.

// faultDuration is how long the load of the tests below runs.
func faultDuration() time.Duration {
	if stressMode() {
		return time.Minute
	}
	return 1500 * time.Millisecond
}

// checkQuiescent checks, with nothing else running, that the counters add
// up, that the registry holds what it counts, and that exactly the slots the
// cap leaves free can be taken: none leaked, none counted twice.
func checkQuiescent(t *testing.T, m *Manager) {
	t.Helper()
	st := m.Stats()
	n := m.SessionCount()
	if list := m.ListSessions(); len(list) != n || st.Active != int64(n) {
		t.Fatalf("SessionCount %d, ListSessions %d, Stats.Active %d", n, len(list), st.Active)
	}
	if st.Created != st.Closed+st.Evicted+st.Active || st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("Stats do not add up: %+v", st)
	}
	m.SetMaxSessions(n + 2)
	var extra []string
	for i := range 3 {
		id, err := m.CreateSession(nil)
		switch {
		case i < 2 && err != nil:
			t.Fatalf("create %d of 2 under a cap of count+2 (%d): %v; a slot leaked", i+1, n+2, err)
		case i == 2 && !errors.Is(err, ErrMaxSessions):
			t.Fatalf("third create under a cap of count+2 (%d): %v; two creates took one slot", n+2, err)
		case err == nil:
			extra = append(extra, id)
		}
	}
	for _, id := range extra {
		if err := m.CloseSession(id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFaultLimitsChangedUnderLoad changes the cap and the timeout from
// several goroutines while others create, get, close, sweep and move the
// clock. While the cap only grows, an observer checks that the count is
// never above it; then the cap goes down, to 0 (none) and back, which must
// neither panic nor break the accounting.
func TestFaultLimitsChangedUnderLoad(t *testing.T) {
	clk := newRelClock()
	clk.jitter = true
	m := NewManager(WithClock(clk), WithCleanupInterval(0), WithMaxSessions(4),
		WithSessionTimeout(5*time.Second), WithShards(4), WithLogger(discardLogger()))
	defer m.Shutdown()
	var ids [16]string
	for i := range ids {
		ids[i] = fmt.Sprintf("load-%d", i)
	}

	var created, rejected, evicted atomic.Int64
	load := func(stop <-chan struct{}, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := ids[r.IntN(len(ids))]
			switch p := r.IntN(100); {
			case p < 20:
				err := m.CreateSessionWithID(id, nil)
				switch {
				case err == nil:
					created.Add(1)
				case errors.Is(err, ErrMaxSessions):
					rejected.Add(1)
				case !errors.Is(err, ErrSessionExists):
					t.Errorf("CreateSessionWithID: %v", err)
					return
				}
			case p < 35:
				if _, err := m.CreateSession(nil); err == nil {
					created.Add(1)
				} else if errors.Is(err, ErrMaxSessions) {
					rejected.Add(1)
				} else {
					t.Errorf("CreateSession: %v", err)
					return
				}
			case p < 60:
				if s, err := m.GetSession(id); err == nil && r.IntN(4) == 0 {
					_ = s.Close()
				} else if err != nil && !errors.Is(err, ErrSessionNotFound) {
					t.Errorf("GetSession: %v", err)
					return
				}
			case p < 70:
				if err := m.CloseSession(id); err != nil && !errors.Is(err, ErrSessionNotFound) {
					t.Errorf("CloseSession: %v", err)
					return
				}
			case p < 75:
				// Close some of the generated sessions too.
				for _, st := range m.ListSessions() {
					if r.IntN(3) == 0 {
						_ = m.CloseSession(st.ID)
					}
				}
			case p < 85:
				evicted.Add(int64(m.Sweep()))
			default:
				clk.Advance(time.Duration(r.IntN(3000)) * time.Millisecond)
			}
		}
	}
	timeouts := func(stop <-chan struct{}, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.SetSessionTimeout([]time.Duration{-time.Second, 0, time.Second, 5 * time.Second, time.Hour}[r.IntN(5)])
			runtime.Gosched()
		}
	}
	run := func(d time.Duration, extra ...func(stop <-chan struct{}, seed uint64)) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() { load(stop, uint64(i)) })
		}
		for i, f := range append([]func(<-chan struct{}, uint64){timeouts, timeouts}, extra...) {
			wg.Go(func() { f(stop, uint64(100+i)) })
		}
		time.Sleep(d)
		close(stop)
		wg.Wait()
	}

	// Phase 1: the cap only grows, from two goroutines; an observer checks
	// the count against it. The count is read first: the cap then can only
	// be higher than when the count was taken.
	var capMu sync.Mutex
	raise := func(stop <-chan struct{}, _ uint64) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			capMu.Lock()
			if c := m.MaxSessions(); c < 64 {
				m.SetMaxSessions(c + 1)
			}
			capMu.Unlock()
		}
	}
	observe := func(stop <-chan struct{}, _ uint64) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := m.SessionCount()
			active := m.Stats().Active
			if c := m.MaxSessions(); n > c || active > int64(c) {
				t.Errorf("SessionCount %d (Stats.Active %d) above the cap %d", n, active, c)
				return
			}
			runtime.Gosched()
		}
	}
	run(faultDuration()/2, raise, raise, observe)
	if created.Load() == 0 || rejected.Load() == 0 || evicted.Load() == 0 {
		t.Fatalf("phase 1 did not exercise the registry: %d created, %d rejected, %d evicted",
			created.Load(), rejected.Load(), evicted.Load())
	}
	checkQuiescent(t, m)

	// Phase 2: the cap goes up and down, below the count and to 0.
	lower := func(stop <-chan struct{}, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 3))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			m.SetMaxSessions([]int{-1, 0, 1, 2, 3, 8, 20}[r.IntN(7)])
		}
	}
	run(faultDuration()/2, lower, lower)
	checkQuiescent(t, m)
	// The Manager counted what the callers saw, plus the two creates and
	// the one refusal of each checkQuiescent.
	st := m.Stats()
	if st.Created != created.Load()+4 || st.Rejected != rejected.Load()+2 || st.Evicted != evicted.Load() {
		t.Errorf("Stats = %+v; the callers saw %d created, %d rejected, %d evicted",
			st, created.Load(), rejected.Load(), evicted.Load())
	}
	t.Logf("%d created, %d rejected, %d evicted; %+v", created.Load(), rejected.Load(), evicted.Load(), st)
}

// TestFaultCloseWhileWaitersQueue closes sessions, with CloseSession and
// Session.Close from several goroutines, while CreateSessionWait calls queue
// at the cap, some of them with contexts that end at random moments. Every
// waiter whose context does not end gets a slot; the others get a slot or
// their context's error; no slot is lost or handed out twice.
func TestFaultCloseWhileWaitersQueue(t *testing.T) {
	rounds := 40
	if stressMode() {
		rounds = 5000
	}
	var queued, timedOut int64
	for round := range rounds {
		q, to := faultWaitersRound(t, uint64(round))
		queued = max(queued, q)
		timedOut += to
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds: up to %d waiters queued at once, %d impatient waiters timed out", rounds, queued, timedOut)
	if queued < 2 {
		t.Errorf("at most %d waiters queued at once: the test did not exercise the queue", queued)
	}
}

func faultWaitersRound(t *testing.T, seed uint64) (maxQueued, timedOutN int64) {
	const capN, patient, impatient = 4, 12, 8
	m, _ := newTestManager(t, WithMaxSessions(capN))
	pool := make(chan *Session, capN+patient+impatient)
	for range capN {
		s, err := m.GetSession(mustCreate(t, m))
		if err != nil {
			t.Fatal(err)
		}
		pool <- s
	}

	var over, maxWaiting atomic.Int64
	stopObs := make(chan struct{})
	var obs sync.WaitGroup
	obs.Go(func() {
		for {
			select {
			case <-stopObs:
				return
			default:
			}
			if n := m.SessionCount(); n > capN {
				over.Store(int64(n))
			}
			if w := m.Stats().Waiting; w > maxWaiting.Load() {
				maxWaiting.Store(w)
			}
			runtime.Gosched()
		}
	})

	var granted, timedOut atomic.Int64
	var waiters sync.WaitGroup
	for i := range patient + impatient {
		waiters.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			// A patient waiter's deadline is only a safety net: reaching
			// it means a slot was lost.
			d := 10 * time.Second
			if i >= patient {
				d = time.Duration(r.IntN(3000)) * time.Microsecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			id, err := m.CreateSessionWait(ctx, nil)
			switch {
			case err == nil:
				s, err := m.GetSession(id)
				if err != nil {
					t.Errorf("waiter %d: session %q from CreateSessionWait not registered: %v", i, id, err)
					return
				}
				granted.Add(1)
				pool <- s
			case i < patient:
				t.Errorf("patient waiter %d: %v; its slot was lost", i, err)
			case errors.Is(err, context.DeadlineExceeded):
				timedOut.Add(1)
			default:
				t.Errorf("waiter %d: %v, want a slot or its context's error", i, err)
			}
		})
	}

	done := make(chan struct{})
	var closes atomic.Int64
	var closers sync.WaitGroup
	for c := range 3 {
		closers.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-done:
					return
				case s := <-pool:
					// Close at a varying pace, so the queue grows and shrinks
					// and some contexts end while their waiter is queued.
					if k%3 == 0 {
						time.Sleep(time.Duration(k%5) * 100 * time.Microsecond)
					}
					if (c+k)%2 == 0 {
						if err := m.CloseSession(s.ID()); err != nil {
							t.Errorf("CloseSession: %v", err)
						}
					} else if err := s.Close(); err != nil {
						t.Errorf("Session.Close: %v", err)
					}
					if s.IsActive() {
						t.Errorf("session %q active after its close", s.ID())
					}
					closes.Add(1)
				}
			}
		})
	}
	waiters.Wait()
	close(done)
	closers.Wait()
	close(stopObs)
	obs.Wait()

	if over.Load() != 0 {
		t.Errorf("SessionCount %d above the cap %d", over.Load(), capN)
	}
	if g := granted.Load(); g < patient || g+timedOut.Load() != patient+impatient {
		t.Errorf("%d waiters granted, %d timed out, of %d patient and %d impatient", g, timedOut.Load(), patient, impatient)
	}
	st := m.Stats()
	if st.Waiting != 0 || st.Created != capN+granted.Load() || st.Closed != closes.Load() {
		t.Errorf("Stats = %+v; want 0 waiting, %d created, %d closed", st, capN+granted.Load(), closes.Load())
	}
	m.c.waitMu.Lock()
	queued := len(m.c.waiters)
	m.c.waitMu.Unlock()
	if queued != 0 {
		t.Errorf("%d waiters left in the queue", queued)
	}
	checkQuiescent(t, m)
	return maxWaiting.Load(), timedOut.Load()
}

// TestFaultSweepRacesGetsAtBoundary: a sweep runs while many goroutines Get
// the same sessions, with the clock right at the timeout boundary (the
// newest session idle for the timeout plus one nanosecond). A Get either
// finds a session, whose use then saves it from this sweep, or misses it
// because the sweep evicted it: never both. No Get returns a session whose
// eviction finished before the Get began (the hook says when), or one that
// had already left the registry when the Get began (its removed flag says
// so), and every session a Get returned is still open after the sweep.
func TestFaultSweepRacesGetsAtBoundary(t *testing.T) {
	rounds := 60
	if stressMode() {
		rounds = 6000
	}
	var saved, evicted int
	for round := range rounds {
		s, e := faultBoundaryRound(t, uint64(round), []int{1, 1, 8}[round%3])
		saved += s
		evicted += e
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds: %d sessions saved by a racing Get, %d evicted", rounds, saved, evicted)
	if saved == 0 || evicted == 0 {
		t.Errorf("the Gets never won (%d) or never lost (%d) a race with the sweep", saved, evicted)
	}
}

func faultBoundaryRound(t *testing.T, seed uint64, shards int) (saved, evicted int) {
	const n, timeout = 512, 10 * time.Second
	clk := newRelClock()
	var hookSeq atomic.Int64
	evictedAt := make([]atomic.Int64, n) // hook sequence number; 0: not evicted
	index := map[string]int{}
	m := NewManager(WithClock(clk), WithCleanupInterval(0), WithMaxSessions(0), WithSessionTimeout(timeout),
		WithShards(shards), WithOnEvict(func(s *Session, r EvictReason) {
			if r == EvictIdle {
				if !s.IsActive() {
					t.Errorf("hook: %q already closed", s.ID())
				}
				evictedAt[index[s.ID()]].Store(hookSeq.Add(1))
			}
		}))
	defer m.Shutdown()

	// Sessions last used 1 ns apart, so one shard's heap evicts them in
	// creation order.
	handles := make([]*Session, n)
	t0 := clk.stamp()
	for i := range n {
		id := fmt.Sprintf("edge-%03d", i)
		index[id] = i
		if err := m.CreateSessionWithID(id, nil); err != nil {
			t.Fatal(err)
		}
		s, err := m.GetSession(id)
		if err != nil {
			t.Fatal(err)
		}
		handles[i] = s
		clk.Advance(1)
	}
	// Exactly at the timeout for the oldest: nothing is evicted.
	clk.Advance(time.Duration(t0 + int64(timeout) - clk.stamp()))
	if k := m.Sweep(); k != 0 {
		t.Fatalf("evicted %d with the oldest session idle for exactly the timeout", k)
	}
	// One nanosecond past it for the newest: all are stale.
	clk.Advance(time.Duration(n))

	// Even sessions are contended by getters; odd ones no Get touches until
	// the chaser sees them removed.
	var found [n]atomic.Bool
	var sweepDone atomic.Bool
	var chased atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			<-start
			for !sweepDone.Load() {
				i := 2 * r.IntN(n/2)
				before := hookSeq.Load()
				s, err := m.GetSession(handles[i].ID())
				if err != nil {
					if !errors.Is(err, ErrSessionNotFound) {
						t.Errorf("GetSession: %v", err)
						return
					}
					continue
				}
				found[i].Store(true)
				switch at := evictedAt[i].Load(); {
				case s != handles[i]:
					t.Errorf("GetSession(%q) returned another session", s.ID())
				case at != 0 && at <= before:
					t.Errorf("GetSession(%q) found the session after its eviction had finished", s.ID())
				case !s.IsActive():
					t.Errorf("GetSession(%q) returned a closed session", s.ID())
				}
			}
		})
	}
	wg.Go(func() { // the chaser
		<-start
		var odd []int
		for i := 1; i < n; i += 2 {
			odd = append(odd, i)
		}
		for len(odd) > 0 {
			last := sweepDone.Load()
			rest := odd[:0]
			for j, i := range odd {
				e := handles[i].entry
				if !e.Removed() {
					if shards == 1 && !last {
						// One shard evicts in order: wait on the next.
						rest = append(rest, odd[j:]...)
						break
					}
					rest = append(rest, i)
					continue
				}
				chased.Add(1)
				if s, err := m.GetSession(handles[i].ID()); err == nil {
					t.Errorf("GetSession(%q) found a session already removed when it began (active %v)", s.ID(), s.IsActive())
				}
			}
			odd = rest
			if last {
				break
			}
		}
	})
	close(start)
	evictedN := m.Sweep()
	sweepDone.Store(true)
	wg.Wait()

	hooked := 0
	for i, s := range handles {
		gone := evictedAt[i].Load() != 0
		if gone {
			hooked++
		}
		_, err := m.GetSession(s.ID())
		switch {
		case found[i].Load() && gone:
			t.Errorf("%q: found by a Get and evicted by the same sweep", s.ID())
		case found[i].Load() && (!s.IsActive() || err != nil):
			t.Errorf("%q: found by a Get, then closed (active %v, Get %v)", s.ID(), s.IsActive(), err)
		case !found[i].Load() && !gone:
			t.Errorf("%q: stale, not used, and not evicted", s.ID())
		case gone && (s.IsActive() || !errors.Is(err, ErrSessionNotFound)):
			t.Errorf("%q: evicted but active %v, Get %v", s.ID(), s.IsActive(), err)
		case found[i].Load():
			saved++
		default:
			evicted++
		}
	}
	if evictedN != hooked {
		t.Errorf("Sweep returned %d, the hook saw %d", evictedN, hooked)
	}
	if st := m.Stats(); st.Created != n || st.Evicted != int64(hooked) || st.Active != int64(n-hooked) {
		t.Errorf("Stats = %+v after %d evictions of %d", st, hooked, n)
	}
	if chased.Load() != n/2 {
		t.Errorf("the chaser saw %d of the %d odd sessions removed", chased.Load(), n/2)
	}
	return saved, evicted
}
