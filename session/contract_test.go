package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/cookies"
	"github.com/rosterhq/roster/protocol"
	"go.uber.org/goleak"
)

// TestCreateChecksBeforeTheCap: at the cap, a create that would fail anyway
// says why (bad config, unknown preset, taken ID), is not counted as
// rejected, and CreateSessionWait with a bad config does not wait.
func TestCreateChecksBeforeTheCap(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(1))
	if err := m.CreateSessionWithID("taken", nil); err != nil {
		t.Fatal(err)
	}
	unknown := &protocol.SessionConfig{Preset: "no-such-browser"}
	bad := &protocol.SessionConfig{Timeout: -1}
	// A context that never ends: a create that waits hangs the test, which
	// is the failure.
	ctx := context.Background()
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"CreateSession, unknown preset", second(m.CreateSession(unknown)), ErrInvalidConfig},
		{"CreateSession, bad config", second(m.CreateSession(bad)), ErrInvalidConfig},
		{"CreateSessionWithID, unknown preset", m.CreateSessionWithID("new", unknown), ErrInvalidConfig},
		{"CreateSessionWithID, taken ID", m.CreateSessionWithID("taken", nil), ErrSessionExists},
		{"CreateSessionWait, unknown preset", second(m.CreateSessionWait(ctx, unknown)), ErrInvalidConfig},
		{"CreateSessionWait, bad config", second(m.CreateSessionWait(ctx, bad)), ErrInvalidConfig},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s at the cap: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if n := m.Stats().Rejected; n != 0 {
		t.Errorf("Rejected = %d after creates that failed for their own reasons, want 0", n)
	}
	if _, err := m.CreateSession(nil); !errors.Is(err, ErrMaxSessions) {
		t.Errorf("a good create at the cap: %v, want ErrMaxSessions", err)
	}
	if n := m.Stats().Rejected; n != 1 {
		t.Errorf("Rejected = %d after one create refused at the cap, want 1", n)
	}
}

// TestRestoreChecksBeforeTheCap: RestoreSession of a live ID at the cap is
// ErrSessionExists, not ErrMaxSessions.
func TestRestoreChecksBeforeTheCap(t *testing.T) {
	m, _ := newTestManager(t, WithMaxSessions(1))
	id := mustCreate(t, m)
	s, _ := m.PeekSession(id)
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RestoreSession(data); !errors.Is(err, ErrSessionExists) {
		t.Errorf("RestoreSession of a live ID at the cap: %v, want ErrSessionExists", err)
	}
}

// TestDroppedManagerKeepsHeldSessions: a program that drops its Manager but
// holds a Session keeps a working session across garbage collections; once
// it lets go of the session too, the Manager's goroutines stop.
func TestDroppedManagerKeepsHeldSessions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	before := goleak.IgnoreCurrent()

	var s *Session
	dropped := make(chan struct{})
	func() {
		m := NewManager(WithCleanupInterval(time.Millisecond))
		s, _ = m.GetSession(mustCreate(t, m))
		runtime.AddCleanup(m, func(ch chan struct{}) { close(ch) }, dropped)
	}()
	for done := false; !done; {
		runtime.GC()
		select {
		case <-dropped:
			done = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The Manager is unreachable and its cleanups are queued; give any
	// cleanup that would close s several chances to run.
	for range 20 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if !s.IsActive() {
		t.Fatal("a held session was closed when its Manager was dropped")
	}
	resp, err := s.Get(context.Background(), srv.URL)
	if err != nil {
		t.Fatalf("request on a held session after its Manager was dropped: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	_ = s.Close()
	s = nil

	// Nothing reaches the Manager any more: its sweeper and clock stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		err := goleak.Find(before)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the goroutines of an unreachable Manager did not stop: %v", err)
		}
	}
}

// TestHookOnClose: Session.Close and CloseSession run the hook once, with
// EvictClosed, on the open session, before it is closed; a second close
// runs nothing.
func TestHookOnClose(t *testing.T) {
	type call struct {
		id     string
		reason EvictReason
		active bool
	}
	var calls []call
	m, _ := newTestManager(t, WithOnEvict(func(s *Session, r EvictReason) {
		calls = append(calls, call{s.ID(), r, s.IsActive()})
	}))
	for _, id := range []string{"a", "b", "c"} {
		if err := m.CreateSessionWithID(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := m.GetSession("a")
	_ = a.Close()
	_ = a.Close()
	_ = m.CloseSession("b")
	_ = m.CloseSession("b")
	m.Shutdown()
	want := []call{{"a", EvictClosed, true}, {"b", EvictClosed, true}, {"c", EvictShutdown, true}}
	if len(calls) != len(want) {
		t.Fatalf("hook calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("hook call %d: %v, want %v", i, calls[i], want[i])
		}
	}
	if st := m.Stats(); st.Closed != 3 || st.Evicted != 0 {
		t.Errorf("stats %+v, want 3 closed", st)
	}
	if EvictClosed.String() != "closed" {
		t.Errorf("EvictClosed.String() = %q", EvictClosed.String())
	}
}

// TestCloseDuringPendingEviction: a sweep has collected two sessions and
// blocks in the hook of the first; the second's holder closes it. Close
// frees the slot before it returns, the hook runs once for it, on the open
// session, with EvictClosed, and it is counted once, as closed.
func TestCloseDuringPendingEviction(t *testing.T) {
	type call struct {
		id     string
		reason EvictReason
		active bool
	}
	var mu sync.Mutex
	var calls []call
	entered := make(chan struct{})
	release := make(chan struct{})
	m, clk := newTestManager(t, WithShards(1), WithMaxSessions(2), WithSessionTimeout(time.Minute),
		WithOnEvict(func(s *Session, r EvictReason) {
			mu.Lock()
			calls = append(calls, call{s.ID(), r, s.IsActive()})
			mu.Unlock()
			if s.ID() == "first" && r == EvictIdle {
				close(entered)
				<-release
			}
		}))
	if err := m.CreateSessionWithID("first", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // "first" is the older: its hook runs first
	if err := m.CreateSessionWithID("second", nil); err != nil {
		t.Fatal(err)
	}
	second, _ := m.PeekSession("second")
	clk.Advance(2 * time.Minute)

	swept := make(chan int)
	go func() { swept <- m.Sweep() }()
	<-entered
	_ = second.Close()
	if second.IsActive() {
		t.Error("session active after Close")
	}
	if err := m.CreateSessionWithID("third", nil); err != nil {
		t.Errorf("Close during a pending eviction did not free the slot: %v", err)
	}
	close(release)
	if n := <-swept; n != 1 {
		t.Errorf("Sweep returned %d, want 1 (the other was closed by its holder)", n)
	}
	want := []call{{"first", EvictIdle, true}, {"second", EvictClosed, true}}
	mu.Lock()
	got := calls
	mu.Unlock()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("hook calls %v, want %v", got, want)
	}
	if st := m.Stats(); st.Evicted != 1 || st.Closed != 1 || st.Active != 1 || st.Created != 3 {
		t.Errorf("stats %+v, want evicted 1, closed 1, active 1, created 3", st)
	}
}

// TestCloseInsideTheHook: a hook that closes the session it is given
// neither deadlocks nor counts it twice.
func TestCloseInsideTheHook(t *testing.T) {
	var reasons []EvictReason
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute), WithOnEvict(func(s *Session, r EvictReason) {
		reasons = append(reasons, r)
		_ = s.Close()
	}))
	mustCreate(t, m)
	clk.Advance(2 * time.Minute)
	if n := m.Sweep(); n != 1 {
		t.Errorf("Sweep = %d, want 1", n)
	}
	if st := m.Stats(); st.Evicted != 1 || st.Closed != 0 || st.Active != 0 {
		t.Errorf("stats %+v, want one eviction", st)
	}
	if len(reasons) != 1 || reasons[0] != EvictIdle {
		t.Errorf("hook reasons %v, want [idle]", reasons)
	}
}

// TestHookSweepsDuringShutdown: an EvictIdle hook that calls Sweep while
// Shutdown waits for the sweep it runs in gets 0 at once, and Shutdown
// completes.
func TestHookSweepsDuringShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	inner := make(chan int, 1)
	var m *Manager
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute), WithOnEvict(func(s *Session, r EvictReason) {
		if r != EvictIdle {
			return
		}
		close(entered)
		<-release
		inner <- m.Sweep()
	}))
	mustCreate(t, m)
	clk.Advance(2 * time.Minute)
	swept := make(chan int)
	go func() { swept <- m.Sweep() }()
	<-entered
	shut := make(chan struct{})
	go func() { m.Shutdown(); close(shut) }()
	waitBlockedIn(t, "(*core).shutdown")
	close(release)
	watchdog := time.After(30 * time.Second)
	select {
	case n := <-inner:
		if n != 0 {
			t.Errorf("Sweep during Shutdown evicted %d", n)
		}
	case <-watchdog:
		t.Fatal("deadlock: a hook's Sweep did not return while Shutdown waited")
	}
	<-swept
	<-shut
}

// waitBlockedIn waits until a goroutine whose stack has fn is blocked (not
// running or runnable).
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			if strings.Contains(g, fn) && !strings.Contains(header, "[running") && !strings.Contains(header, "[runnable") {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no goroutine blocked in %s", fn)
}

// cookieFloodServer sets 1000 cookies on /flood and answers anything else
// with the number of cookies it got. Its header limit is a small server's
// (Go allows MaxHeaderBytes plus 4 KiB, so about 8 KiB), which 1000 cookies
// of 20 bytes overrun with a 431.
func cookieFloodServer(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flood" {
			for i := range 1000 {
				http.SetCookie(w, &http.Cookie{Name: fmt.Sprintf("c%04d", i), Value: "0123456789abcdef"})
			}
			return
		}
		_, _ = fmt.Fprint(w, len(r.Cookies()))
	}))
	srv.Config.MaxHeaderBytes = 4096
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func getBody(t *testing.T, s *Session, url string) (int, string) {
	t.Helper()
	resp, err := s.Get(context.Background(), url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestCookieFloodLeavesAUsableSession: after a response that sets 1000
// cookies, and after a restore of 12,000 cookies, the session's next
// request still goes through.
func TestCookieFloodLeavesAUsableSession(t *testing.T) {
	srv := cookieFloodServer(t)
	m, _ := newTestManager(t)
	s, _ := m.GetSession(mustCreate(t, m))
	if code, _ := getBody(t, s, srv.URL+"/flood"); code != 200 {
		t.Fatalf("flood: %d", code)
	}
	code, body := getBody(t, s, srv.URL+"/count")
	if code != 200 {
		t.Fatalf("the request after a response with 1000 cookies: status %d, want 200", code)
	}
	if n, _ := strconv.Atoi(body); n == 0 || n > cookies.MaxCookiesPerSite {
		t.Errorf("server got %s cookies, want 1 to %d", body, cookies.MaxCookiesPerSite)
	}

	st := s.State()
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	st.Cookies = nil
	for i := range 12000 {
		st.Cookies = append(st.Cookies, protocol.CookieState{
			Name: fmt.Sprintf("r%05d", i), Value: "0123456789abcdef", Domain: host, Path: "/", HostOnly: true,
		})
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	id, err := m.RestoreSession(data)
	if err != nil {
		t.Fatalf("restore of 12,000 cookies: %v", err)
	}
	r, _ := m.GetSession(id)
	if n := len(r.Cookies()); n > cookies.MaxCookiesPerSite {
		t.Errorf("restored session holds %d cookies for one host, want at most %d", n, cookies.MaxCookiesPerSite)
	}
	if code, _ := getBody(t, r, srv.URL+"/count"); code != 200 {
		t.Errorf("the first request of a session restored with 12,000 cookies: status %d, want 200", code)
	}
}

// TestStatsJSONInMilliseconds: durations in JSON are milliseconds, as in
// SessionConfig, and read back.
func TestStatsJSONInMilliseconds(t *testing.T) {
	st := SessionStats{ID: "x", Age: 90 * time.Second, IdleTime: 1500 * time.Millisecond}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ageMs":90000`, `"idleTimeMs":1500`, `"id":"x"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %s", data, want)
		}
	}
	if strings.Contains(string(data), `"age"`) || strings.Contains(string(data), `"idleTime"`) {
		t.Errorf("%s still has a nanosecond field", data)
	}
	var back SessionStats
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back != st {
		t.Errorf("round trip: %+v, want %+v", back, st)
	}
}

// TestManagerCopyKeepsWorking: a copy of a Manager (go vet reports most
// copies, but not this form) shares its state, and the garbage collector
// does not shut it down while the copy is in use.
func TestManagerCopyKeepsWorking(t *testing.T) {
	m := *NewManager(WithCleanupInterval(0))
	defer m.Shutdown()
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if _, err := m.CreateSession(nil); err != nil {
		t.Fatalf("CreateSession on a copied Manager after GC: %v", err)
	}
}
