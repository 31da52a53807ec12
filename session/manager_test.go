package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a manual Clock for deterministic eviction tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestManager returns a Manager on a fake clock with no background
// sweeper, shut down when the test ends.
func newTestManager(t testing.TB, opts ...Option) (*Manager, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	m := NewManager(append([]Option{WithClock(clk), WithCleanupInterval(0)}, opts...)...)
	t.Cleanup(m.Shutdown)
	return m, clk
}

func mustCreate(t testing.TB, m *Manager) string {
	t.Helper()
	id, err := m.CreateSession(nil)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return id
}

func TestDefaults(t *testing.T) {
	m := NewManager()
	defer m.Shutdown()
	if got := m.MaxSessions(); got != 100 {
		t.Errorf("MaxSessions = %d, want 100", got)
	}
	if got := m.SessionTimeout(); got != 30*time.Minute {
		t.Errorf("SessionTimeout = %v, want 30m", got)
	}
	id := mustCreate(t, m)
	s, err := m.GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != id || s.Preset() != protocol.DefaultPreset || !s.IsActive() {
		t.Errorf("session %q preset %q active %v", s.ID(), s.Preset(), s.IsActive())
	}
}

func TestCreateAndGet(t *testing.T) {
	m, _ := newTestManager(t)
	id := mustCreate(t, m)
	if len(id) != 26 {
		t.Errorf("generated ID %q is not a ULID", id)
	}
	if err := m.CreateSessionWithID("worker-1", &protocol.SessionConfig{Preset: "firefox-latest"}); err != nil {
		t.Fatalf("CreateSessionWithID: %v", err)
	}
	s, err := m.GetSession("worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Preset() != "firefox-latest" {
		t.Errorf("Preset = %q", s.Preset())
	}
	if got := m.SessionCount(); got != 2 {
		t.Errorf("SessionCount = %d, want 2", got)
	}
	if st := m.Stats(); st.Created != 2 || st.Active != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestErrors(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(2))
	if err := m.CreateSessionWithID("dup", nil); err != nil {
		t.Fatal(err)
	}
	f := false
	tests := []struct {
		name    string
		err     error
		want    error
		message []string
	}{
		{"exists", m.CreateSessionWithID("dup", nil), ErrSessionExists, []string{"already exists", `"dup"`}},
		{"empty ID", m.CreateSessionWithID("", nil), ErrInvalidID, []string{"empty"}},
		{"space in ID", m.CreateSessionWithID("a b", nil), ErrInvalidID, []string{`"a b"`, "offset 1"}},
		{"long ID", m.CreateSessionWithID(strings.Repeat("x", 129), nil), ErrInvalidID, []string{"129 bytes"}},
		{"bad config", m.CreateSessionWithID("ok", &protocol.SessionConfig{Timeout: -1}), ErrInvalidConfig, []string{"timeout -1"}},
		{"contradiction", m.CreateSessionWithID("ok", &protocol.SessionConfig{FollowRedirects: &f, MaxRedirects: 3}), ErrInvalidConfig, []string{"maxRedirects 3"}},
		{"not found", second(m.GetSession("nope")), ErrSessionNotFound, []string{"session not found", `"nope"`}},
		{"get bad ID", second(m.GetSession("")), ErrInvalidID, nil},
		{"close not found", m.CloseSession("nope"), ErrSessionNotFound, []string{`"nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("err = %v, want %v", tt.err, tt.want)
			}
			for _, part := range tt.message {
				if !strings.Contains(tt.err.Error(), part) {
					t.Errorf("message %q does not contain %q", tt.err, part)
				}
			}
		})
	}
	if got := m.SessionCount(); got != 1 {
		t.Errorf("failed creates left SessionCount = %d, want 1", got)
	}
	mustCreate(t, m)
	_, err := m.CreateSession(nil)
	if !errors.Is(err, ErrMaxSessions) || !strings.Contains(err.Error(), "maximum sessions limit reached (2)") {
		t.Errorf("at the cap: %v", err)
	}
	if st := m.Stats(); st.Rejected != 1 {
		t.Errorf("Rejected = %d, want 1", st.Rejected)
	}
	m.Shutdown()
	if _, err := m.CreateSession(nil); !errors.Is(err, ErrManagerClosed) {
		t.Errorf("create after Shutdown: %v", err)
	}
	if err := m.CreateSessionWithID("late", nil); !errors.Is(err, ErrManagerClosed) {
		t.Errorf("create with ID after Shutdown: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCloseFreesSlotAndID(t *testing.T) {
	for _, how := range []string{"CloseSession", "Session.Close"} {
		t.Run(how, func(t *testing.T) {
			m, _ := newTestManager(t, WithMaxSessions(1))
			if err := m.CreateSessionWithID("a", nil); err != nil {
				t.Fatal(err)
			}
			s, _ := m.GetSession("a")
			if how == "CloseSession" {
				if err := m.CloseSession("a"); err != nil {
					t.Fatal(err)
				}
			} else if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s.IsActive() {
				t.Error("closed session still active")
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := m.GetSession("a"); !errors.Is(err, ErrSessionNotFound) {
				t.Errorf("GetSession after close: %v", err)
			}
			if m.SessionCount() != 0 {
				t.Errorf("SessionCount = %d after close", m.SessionCount())
			}
			// The slot and the ID are free again; the old session's Close
			// must not touch the new one.
			if err := m.CreateSessionWithID("a", nil); err != nil {
				t.Fatalf("re-create: %v", err)
			}
			_ = s.Close()
			if _, err := m.GetSession("a"); err != nil {
				t.Errorf("old Close removed the new session: %v", err)
			}
			if st := m.Stats(); st.Created != 2 || st.Closed != 1 || st.Active != 1 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestListSessionsAndStats(t *testing.T) {
	m, clk := newTestManager(t)
	for _, id := range []string{"b", "a", "c"} {
		if err := m.CreateSessionWithID(id, nil); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	clk.Advance(time.Minute)
	s, _ := m.GetSession("a")
	clk.Advance(10 * time.Second)
	list := m.ListSessions()
	var ids []string
	for _, st := range list {
		ids = append(ids, st.ID)
	}
	if strings.Join(ids, ",") != "b,a,c" {
		t.Fatalf("ListSessions order %v, want creation order b,a,c", ids)
	}
	st := s.Stats()
	want := SessionStats{
		ID: "a", Preset: protocol.DefaultPreset, Active: true,
		CreatedAt: clk.Now().Add(-72 * time.Second), LastUsed: clk.Now().Add(-10 * time.Second),
		Age: 72 * time.Second, IdleTime: 10 * time.Second,
	}
	if !st.CreatedAt.Equal(want.CreatedAt) || !st.LastUsed.Equal(want.LastUsed) {
		t.Errorf("times: created %v last used %v, want %v %v", st.CreatedAt, st.LastUsed, want.CreatedAt, want.LastUsed)
	}
	st.CreatedAt, st.LastUsed, want.CreatedAt, want.LastUsed = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if s.IdleTime() != 10*time.Second {
		t.Errorf("IdleTime = %v", s.IdleTime())
	}
	s.Touch()
	if s.IdleTime() != 0 {
		t.Errorf("IdleTime after Touch = %v", s.IdleTime())
	}
}

// TestCapUnderConcurrency: 256 goroutines race to create against a cap of
// 100; exactly 100 win and an observer never sees more than the cap.
func TestCapUnderConcurrency(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(100))
	var ok, full atomic.Int64
	var over atomic.Int64
	stop := make(chan struct{})
	var obs sync.WaitGroup
	obs.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := m.SessionCount(); n > 100 {
				over.Store(int64(n))
			}
		}
	})
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			<-start
			_, err := m.CreateSession(nil)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrMaxSessions):
				full.Add(1)
			default:
				t.Errorf("CreateSession: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	obs.Wait()
	if ok.Load() != 100 || full.Load() != 156 {
		t.Errorf("%d created, %d refused; want 100 and 156", ok.Load(), full.Load())
	}
	if over.Load() != 0 {
		t.Errorf("observer saw SessionCount %d above the cap", over.Load())
	}
	if n := m.SessionCount(); n != 100 {
		t.Errorf("SessionCount = %d", n)
	}
}

func TestSetMaxSessions(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(3))
	for range 3 {
		mustCreate(t, m)
	}
	m.SetMaxSessions(1) // lowering closes nothing
	if m.SessionCount() != 3 || m.MaxSessions() != 1 {
		t.Fatalf("count %d cap %d", m.SessionCount(), m.MaxSessions())
	}
	if _, err := m.CreateSession(nil); !errors.Is(err, ErrMaxSessions) {
		t.Fatalf("create over a lowered cap: %v", err)
	}
	for _, st := range m.ListSessions()[:2] {
		_ = m.CloseSession(st.ID)
	}
	if _, err := m.CreateSession(nil); !errors.Is(err, ErrMaxSessions) {
		t.Fatalf("create at the lowered cap: %v", err)
	}
	m.SetMaxSessions(0) // no cap
	for range 50 {
		mustCreate(t, m)
	}
	m.SetMaxSessions(-5)
	if m.MaxSessions() != 0 {
		t.Errorf("negative cap stored as %d, want 0", m.MaxSessions())
	}
}

func TestCreateSessionWait(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(1))
	first := mustCreate(t, m)

	// A waiter whose context ends gets the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.CreateSessionWait(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}

	// Waiters are served in arrival order, before a plain create.
	const n = 3
	results := make(chan string, n)
	for i := range n {
		go func() {
			id, err := m.CreateSessionWait(context.Background(), nil)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
			}
			results <- fmt.Sprintf("%d:%s", i, id)
		}()
		waitFor(t, func() bool { return m.Stats().Waiting == int64(i+1) })
	}
	if _, err := m.CreateSession(nil); !errors.Is(err, ErrMaxSessions) {
		t.Fatalf("plain create jumped the queue: %v", err)
	}
	prev := first
	for i := range n {
		if err := m.CloseSession(prev); err != nil {
			t.Fatal(err)
		}
		got := <-results
		if !strings.HasPrefix(got, fmt.Sprintf("%d:", i)) {
			t.Fatalf("slot %d went to %s", i, got)
		}
		prev = strings.SplitN(got, ":", 2)[1]
	}

	// Shutdown wakes a waiter with ErrManagerClosed.
	errc := make(chan error)
	go func() { _, err := m.CreateSessionWait(context.Background(), nil); errc <- err }()
	waitFor(t, func() bool { return m.Stats().Waiting == 1 })
	m.Shutdown()
	if err := <-errc; !errors.Is(err, ErrManagerClosed) {
		t.Errorf("waiter at Shutdown: %v", err)
	}
}

func TestCreateSessionWaitRaisedCap(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(1))
	mustCreate(t, m)
	errc := make(chan error)
	go func() { _, err := m.CreateSessionWait(context.Background(), nil); errc <- err }()
	waitFor(t, func() bool { return m.Stats().Waiting == 1 })
	m.SetMaxSessions(2)
	if err := <-errc; err != nil {
		t.Fatalf("waiter after raising the cap: %v", err)
	}
	if m.SessionCount() != 2 {
		t.Errorf("SessionCount = %d", m.SessionCount())
	}
}

// waitFor polls cond, for state another goroutine reaches without a
// signal we can wait on (a goroutine parking in a queue).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
