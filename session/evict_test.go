package session

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdleEviction(t *testing.T) {
	var hooked []string
	var reasons []EvictReason
	m, clk := newTestManager(t, WithSessionTimeout(10*time.Minute), WithOnEvict(func(s *Session, r EvictReason) {
		if !s.IsActive() {
			t.Error("hook ran on a closed session")
		}
		if _, registered := s.mgr.reg.Load(s.ID()); registered {
			t.Error("hook ran while the session was still registered")
		}
		hooked = append(hooked, s.ID())
		reasons = append(reasons, r)
	}))
	for _, id := range []string{"idle", "touched", "got", "busy"} {
		if err := m.CreateSessionWithID(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	idle, _ := m.GetSession("idle")
	busy, _ := m.GetSession("busy")
	if err := busy.beginRequest(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(6 * time.Minute)
	touched, _ := m.GetSession("touched")
	touched.Touch()
	clk.Advance(4 * time.Minute)
	if n := m.Sweep(); n != 0 {
		t.Fatalf("evicted %d at exactly the timeout, want 0", n)
	}
	if _, err := m.GetSession("got"); err != nil { // a Get is a use
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if n := m.Sweep(); n != 1 {
		t.Fatalf("evicted %d just past the timeout, want 1 (idle)", n)
	}
	if len(hooked) != 1 || hooked[0] != "idle" || reasons[0] != EvictIdle {
		t.Fatalf("hook saw %v %v", hooked, reasons)
	}
	if idle.IsActive() {
		t.Error("evicted session still active")
	}
	if _, err := m.GetSession("idle"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("GetSession of evicted: %v", err)
	}

	// The busy session stays however long its request lasts.
	clk.Advance(3 * time.Hour)
	if n := m.Sweep(); n != 2 {
		t.Fatalf("evicted %d after 3h, want 2 (touched, got)", n)
	}
	if _, err := m.GetSession("busy"); err != nil {
		t.Fatalf("busy session evicted: %v", err)
	}
	busy.endRequest()
	clk.Advance(10*time.Minute + time.Second)
	if n := m.Sweep(); n != 1 {
		t.Fatalf("evicted %d after the request ended and timed out, want 1", n)
	}
	if st := m.Stats(); st.Evicted != 4 || st.Active != 0 || st.Created != 4 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestSetSessionTimeout(t *testing.T) {
	m, clk := newTestManager(t, WithSessionTimeout(time.Hour))
	for range 10 {
		mustCreate(t, m)
	}
	clk.Advance(20 * time.Minute)
	if n := m.Sweep(); n != 0 {
		t.Fatalf("evicted %d under a 1h timeout", n)
	}
	m.SetSessionTimeout(10 * time.Minute) // takes effect at the next sweep
	if m.SessionTimeout() != 10*time.Minute {
		t.Fatalf("SessionTimeout = %v", m.SessionTimeout())
	}
	if n := m.Sweep(); n != 10 {
		t.Fatalf("evicted %d after lowering the timeout, want 10", n)
	}

	mustCreate(t, m)
	m.SetSessionTimeout(0) // disables eviction
	clk.Advance(1000 * time.Hour)
	if n := m.Sweep(); n != 0 || m.SessionCount() != 1 {
		t.Fatalf("timeout 0: evicted %d, %d left", n, m.SessionCount())
	}
	m.SetSessionTimeout(-time.Second)
	if m.SessionTimeout() != 0 {
		t.Errorf("negative timeout stored as %v", m.SessionTimeout())
	}
}

// TestClockJumps: the clock going backwards evicts nothing early and loses
// no use; going forwards evicts at the next sweep.
func TestClockJumps(t *testing.T) {
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute))
	mustCreate(t, m)
	clk.Advance(-time.Hour)
	id := mustCreate(t, m)
	if n := m.Sweep(); n != 0 {
		t.Fatalf("evicted %d after the clock went back", n)
	}
	clk.Advance(time.Hour + 30*time.Second)
	if _, err := m.GetSession(id); err != nil {
		t.Fatal(err)
	}
	if n := m.Sweep(); n != 0 {
		t.Fatalf("evicted %d 30s after the first use", n)
	}
	clk.Advance(24 * time.Hour)
	if n := m.Sweep(); n != 2 {
		t.Fatalf("evicted %d after a jump forward, want 2", n)
	}
}

func TestHookPanicIsContained(t *testing.T) {
	var calls atomic.Int64
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute), WithLogger(discardLogger()),
		WithOnEvict(func(*Session, EvictReason) { calls.Add(1); panic("boom") }))
	var sessions []*Session
	for range 5 {
		s, _ := m.GetSession(mustCreate(t, m))
		sessions = append(sessions, s)
	}
	clk.Advance(2 * time.Minute)
	if n := m.Sweep(); n != 5 {
		t.Fatalf("evicted %d with a panicking hook, want 5", n)
	}
	if calls.Load() != 5 {
		t.Errorf("hook ran %d times", calls.Load())
	}
	for _, s := range sessions {
		if s.IsActive() {
			t.Error("session left open after its hook panicked")
		}
	}
	if m.SessionCount() != 0 {
		t.Errorf("slots held: %d", m.SessionCount())
	}
	mustCreate(t, m)
}

// TestSlowHookBlocksNothingElse: while the eviction hook of one session
// blocks, Gets, creates, closes and other sweeps go on.
func TestSlowHookBlocksNothingElse(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute), WithShards(4),
		WithOnEvict(func(s *Session, r EvictReason) {
			if s.ID() == "slow" && r == EvictIdle {
				close(entered)
				<-release
			}
		}))
	if err := m.CreateSessionWithID("slow", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	var others []string
	for range 20 {
		others = append(others, mustCreate(t, m))
	}
	done := make(chan int)
	go func() { done <- m.Sweep() }()
	<-entered

	for _, id := range others {
		if _, err := m.GetSession(id); err != nil {
			t.Fatalf("GetSession during a blocked hook: %v", err)
		}
	}
	id := mustCreate(t, m)
	if err := m.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if n := m.Sweep(); n != 20 {
		t.Errorf("second sweep during a blocked hook evicted %d, want 20", n)
	}
	close(release)
	if n := <-done; n != 1 {
		t.Errorf("blocked sweep evicted %d, want 1", n)
	}
}

func TestBeginRequestOnClosedSession(t *testing.T) {
	m, _ := newTestManager(t)
	s, _ := m.GetSession(mustCreate(t, m))
	_ = s.Close()
	if err := s.beginRequest(); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("beginRequest on a closed session: %v", err)
	}
	if s.inFlight.Load() != 0 || m.Stats().InFlight != 0 {
		t.Error("a refused request stayed counted in flight")
	}
}

func TestShutdownConcurrent(t *testing.T) {
	var hooked atomic.Int64
	m := NewManager(WithCleanupInterval(time.Millisecond), WithOnEvict(func(_ *Session, r EvictReason) {
		if r == EvictShutdown {
			hooked.Add(1)
		}
	}))
	var sessions []*Session
	for range 50 {
		s, _ := m.GetSession(mustCreate(t, m))
		sessions = append(sessions, s)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(m.Shutdown)
	}
	wg.Wait()
	m.Shutdown()
	for _, s := range sessions {
		if s.IsActive() {
			t.Fatal("session open after Shutdown returned")
		}
	}
	if hooked.Load() != 50 {
		t.Errorf("hook ran %d times with EvictShutdown, want 50", hooked.Load())
	}
	if st := m.Stats(); st.Active != 0 || st.Closed != 50 || m.SessionCount() != 0 {
		t.Errorf("Stats after Shutdown = %+v", st)
	}
	if _, err := m.CreateSession(nil); !errors.Is(err, ErrManagerClosed) {
		t.Errorf("create after Shutdown: %v", err)
	}
	if n := m.Sweep(); n != 0 {
		t.Errorf("Sweep after Shutdown = %d", n)
	}
	if _, err := m.GetSession(sessions[0].ID()); !errors.Is(err, ErrManagerClosed) {
		t.Errorf("GetSession after Shutdown: %v", err)
	}
}

func TestShutdownDuringCreateStorm(t *testing.T) {
	m := NewManager(WithMaxSessions(0), WithCleanupInterval(time.Millisecond), WithSessionTimeout(time.Millisecond))
	var created []*Session
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				id, err := m.CreateSession(nil)
				if errors.Is(err, ErrManagerClosed) {
					return
				}
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				if s, err := m.GetSession(id); err == nil {
					mu.Lock()
					created = append(created, s)
					mu.Unlock()
				}
			}
		})
	}
	for m.Stats().Created < 2000 {
		runtime.Gosched()
	}
	m.Shutdown()
	wg.Wait()
	for _, s := range created {
		if s.IsActive() {
			t.Fatal("session open after Shutdown")
		}
	}
	st := m.Stats()
	if st.Active != 0 || m.SessionCount() != 0 || st.Created != st.Closed+st.Evicted {
		t.Errorf("Stats after Shutdown = %+v", st)
	}
}

func TestShutdownContextWaitsForRequests(t *testing.T) {
	m, _ := newTestManager(t)
	s, _ := m.GetSession(mustCreate(t, m))
	if err := s.beginRequest(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- m.ShutdownContext(context.Background()) }()
	waitFor(t, func() bool { _, err := m.CreateSession(nil); return errors.Is(err, ErrManagerClosed) })
	select {
	case err := <-done:
		t.Fatalf("ShutdownContext returned %v with a request in flight", err)
	default:
	}
	if !s.IsActive() {
		t.Fatal("session closed while its request was in flight")
	}
	s.endRequest()
	if err := <-done; err != nil {
		t.Fatalf("ShutdownContext: %v", err)
	}
	if s.IsActive() {
		t.Error("session open after ShutdownContext")
	}
}

func TestShutdownContextDeadline(t *testing.T) {
	m, _ := newTestManager(t)
	s, _ := m.GetSession(mustCreate(t, m))
	if err := s.beginRequest(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.ShutdownContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ShutdownContext with an ended context = %v", err)
	}
	if s.IsActive() {
		t.Error("session left open after ShutdownContext gave up waiting")
	}
	s.endRequest()
}

// TestSlowHookDoesNotStallTheClock: while one eviction hook blocks, the
// coarse clock that GetSession stamps with must go on, or the next sweep
// would evict sessions used during the hook. This needs the system clock
// (an injected one is read exactly on every Get), so it runs in real time,
// with wide margins: uses every 5 ms against a 300 ms timeout.
func TestSlowHookDoesNotStallTheClock(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	m := NewManager(WithSessionTimeout(300*time.Millisecond), WithCleanupInterval(20*time.Millisecond),
		WithOnEvict(func(s *Session, r EvictReason) {
			if s.ID() == "slow" && r == EvictIdle {
				close(entered)
				<-release
			}
		}))
	defer m.Shutdown()
	if err := m.CreateSessionWithID("slow", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateSessionWithID("busy", nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				if _, err := m.GetSession("busy"); err != nil {
					t.Errorf("busy session lost while in use: %v", err)
					return
				}
			}
		}
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle session was never evicted")
	}
	time.Sleep(600 * time.Millisecond) // the hook blocks for two timeouts
	close(release)
	m.Sweep()
	close(stop)
	wg.Wait()
	if _, err := m.GetSession("busy"); err != nil {
		t.Errorf("a session used every 5 ms was evicted after a slow hook: %v", err)
	}
}

// TestShutdownContextRefusesNewRequests: while ShutdownContext drains, a new
// request fails at once, so that a steady load cannot hold the drain open.
func TestShutdownContextRefusesNewRequests(t *testing.T) {
	m, _ := newTestManager(t)
	s, _ := m.GetSession(mustCreate(t, m))
	if err := s.beginRequest(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- m.ShutdownContext(context.Background()) }()
	waitFor(t, func() bool { return m.c.state.Load() != stateOpen })
	err := s.beginRequest()
	if !errors.Is(err, ErrSessionClosed) || !errors.Is(err, ErrManagerClosed) {
		t.Fatalf("new request during the drain: %v", err)
	}
	s.endRequest()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
