package session_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// The basic cycle: create a session, fetch it by ID, close it.
func ExampleManager() {
	m := session.NewManager()
	defer m.Shutdown()

	id, err := m.CreateSession(nil) // nil: the defaults
	if err != nil {
		panic(err)
	}
	s, err := m.GetSession(id)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.ID() == id, s.Preset(), m.SessionCount())

	_ = m.CloseSession(id)
	_, err = m.GetSession(id)
	fmt.Println(errors.Is(err, session.ErrSessionNotFound))
	// Output:
	// true chrome-latest 1
	// true
}

// A hard cap: creates fail with ErrMaxSessions, whose message gives the cap.
func ExampleManager_CreateSession_cap() {
	m := session.NewManager(session.WithMaxSessions(2))
	defer m.Shutdown()
	for range 3 {
		if _, err := m.CreateSession(nil); err != nil {
			fmt.Println(err)
		}
	}
	// Output: maximum sessions limit reached (2)
}

// Sessions under IDs of the caller's choosing, one per tenant.
func ExampleManager_CreateSessionWithID() {
	m := session.NewManager()
	defer m.Shutdown()
	for _, tenant := range []string{"acme", "globex"} {
		cfg := &protocol.SessionConfig{Preset: "firefox-latest", Headers: map[string]string{"X-Tenant": tenant}}
		if err := m.CreateSessionWithID("tenant:"+tenant, cfg); err != nil {
			panic(err)
		}
	}
	err := m.CreateSessionWithID("tenant:acme", nil)
	fmt.Println(err)
	// Output: session already exists: "tenant:acme"
}

// Waiting for a slot instead of failing at the cap.
func ExampleManager_CreateSessionWait() {
	m := session.NewManager(session.WithMaxSessions(1))
	defer m.Shutdown()
	first, _ := m.CreateSession(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		time.Sleep(10 * time.Millisecond)
		_ = m.CloseSession(first) // frees the slot the waiter gets
	}()
	if _, err := m.CreateSessionWait(ctx, nil); err != nil {
		panic(err)
	}
	fmt.Println(m.SessionCount())
	// Output: 1
}

// Idle eviction with a hook that can save a session before it is closed.
// A manual clock and Sweep make it deterministic.
func ExampleWithOnEvict() {
	clock := &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := session.NewManager(
		session.WithClock(clock),
		session.WithCleanupInterval(0), // no background sweeper: Sweep below
		session.WithSessionTimeout(15*time.Minute),
		session.WithOnEvict(func(s *session.Session, reason session.EvictReason) {
			fmt.Printf("evicted %s (%s) after %v idle\n", s.ID(), reason, s.IdleTime())
		}),
	)
	defer m.Shutdown()
	_ = m.CreateSessionWithID("idle", nil)
	_ = m.CreateSessionWithID("busy", nil)

	clock.t = clock.t.Add(10 * time.Minute)
	_, _ = m.GetSession("busy") // a Get counts as a use
	clock.t = clock.t.Add(6 * time.Minute)
	fmt.Println("swept:", m.Sweep())
	// Output:
	// evicted idle (idle) after 16m0s idle
	// swept: 1
	// evicted busy (shutdown) after 6m0s idle
}

// manualClock is a Clock that moves only when told. It is not safe for
// concurrent use, which is enough with no background sweeper.
type manualClock struct{ t time.Time }

func (c *manualClock) Now() time.Time { return c.t }

// The worker pool: sessions built up front, each handed by ID to one
// worker goroutine, and Shutdown guarded so that it runs once.
func ExampleManager_workerPool() {
	m := session.NewManager()
	m.SetMaxSessions(50)
	m.SetSessionTimeout(15 * time.Minute)
	var shutdown sync.Once
	defer shutdown.Do(m.Shutdown)

	ids := make([]string, 10)
	for i := range ids {
		id, err := m.CreateSession(nil)
		if err != nil {
			panic(err)
		}
		ids[i] = id
	}
	var wg sync.WaitGroup
	results := make([]string, len(ids))
	for w, id := range ids {
		wg.Go(func() {
			s, err := m.GetSession(id)
			if err != nil {
				results[w] = err.Error()
				return
			}
			s.Touch()
			results[w] = fmt.Sprintf("worker %d has a %s session", w, s.Preset())
		})
	}
	wg.Wait()
	fmt.Println(results[0])
	fmt.Println(results[9])
	shutdown.Do(m.Shutdown)
	fmt.Println("sessions after shutdown:", m.SessionCount())
	// Output:
	// worker 0 has a chrome-latest session
	// worker 9 has a chrome-latest session
	// sessions after shutdown: 0
}

// A session in use: a request that sets a cookie, the cookie read back,
// and the session saved and restored under the same ID with its cookies.
func ExampleSession() {
	srv := httptest.NewServer(httpbin.New()) // a local go-httpbin
	defer srv.Close()

	m := session.NewManager()
	defer m.Shutdown()
	id, _ := m.CreateSession(&protocol.SessionConfig{BaseURL: srv.URL})
	s, _ := m.GetSession(id)

	resp, err := s.Get(context.Background(), "/cookies/set?theme=dark")
	if err != nil {
		panic(err)
	}
	_ = resp.Body.Close() // the request is in flight until its body is closed
	for _, c := range s.Cookies() {
		fmt.Printf("%s=%s for %s\n", c.Name, c.Value, c.Domain)
	}

	data, _ := s.Marshal()
	_ = s.Close() // gone from the Manager...
	restored, err := m.RestoreSession(data)
	if err != nil {
		panic(err)
	}
	r, _ := m.GetSession(restored) // ...and back, with its cookies
	fmt.Println(restored == id, len(r.Cookies()))
	// Output:
	// theme=dark for 127.0.0.1
	// true 1
}
