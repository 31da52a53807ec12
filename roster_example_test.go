package roster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/rosterhq/roster"
	rstore "github.com/rosterhq/roster/store/redis"
)

// The README's examples are these functions, copied: go test compiles and
// runs each (but Example_fleet, which needs Redis). They talk only to a
// server on 127.0.0.1.

// A session in use: a request that sets a cookie, the session saved to a
// file, closed, and restored later under the same ID with its cookies.
func Example_sessionInUse() {
	// A local stand-in for https://example.com: /login sets a cookie.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cr3t", Path: "/"})
		_, _ = io.WriteString(w, "welcome")
	}))
	defer srv.Close()
	ctx := context.Background()

	m := roster.NewManager()
	defer m.Shutdown()
	id, err := m.CreateSession(nil)
	if err != nil {
		panic(err)
	}

	s, err := m.GetSession(id)
	if err != nil {
		panic(err)
	}
	resp, err := s.Get(ctx, srv.URL+"/login") // cookies, preset headers, proxy, retries
	if err != nil {
		panic(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close() // the request counts as in flight until the body is closed
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.StatusCode, string(body))

	for _, c := range s.Cookies() { // every cookie with all its attributes
		fmt.Println(c.Name, c.Value, c.Path, c.HostOnly)
	}

	dir, err := os.MkdirTemp("", "sessions")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, id+".json")
	if err := s.Save(path); err != nil { // atomic: a temporary file, then a rename
		panic(err)
	}
	_ = s.Close() // its ID is free again

	// Later, in this process or another:
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	restored, err := m.RestoreSession(data) // same ID, same cookies; TLS resumes
	if err != nil {
		panic(err)
	}
	r, err := m.GetSession(restored)
	if err != nil {
		panic(err)
	}
	fmt.Println(restored == id, len(r.Cookies()))

	// Restoring an ID that is live fails.
	_, err = m.RestoreSession(data)
	fmt.Println(errors.Is(err, roster.ErrSessionExists))

	// Outside any Manager: LoadSession (or UnmarshalSession for bytes).
	alone, err := roster.LoadSession(path)
	if err != nil {
		panic(err)
	}
	defer alone.Close()
	fmt.Println(alone.ID() == id)
	// Output:
	// 200 welcome
	// session s3cr3t / true
	// true 1
	// true
	// true
}

// Errors are values: match them with errors.Is. Bad input is reported as
// such even at the cap.
func Example_errors() {
	m := roster.NewManager(roster.WithMaxSessions(1))
	defer m.Shutdown()
	if err := m.CreateSessionWithID("tenant:acme", nil); err != nil {
		panic(err)
	}
	_, err := m.CreateSession(nil)
	fmt.Println(errors.Is(err, roster.ErrMaxSessions), err)
	err = m.CreateSessionWithID("tenant:acme", nil)
	fmt.Println(errors.Is(err, roster.ErrSessionExists), err)
	_, err = m.CreateSession(&roster.SessionConfig{Timeout: -1})
	fmt.Println(errors.Is(err, roster.ErrInvalidConfig), err)
	_, err = m.GetSession("a b")
	fmt.Println(errors.Is(err, roster.ErrInvalidID))
	_, err = roster.UnmarshalSession([]byte(`{"version":1,"id":"x","requestCount":-1}`))
	fmt.Println(errors.Is(err, roster.ErrInvalidState), err)
	// Output:
	// true maximum sessions limit reached (1)
	// true session already exists: "tenant:acme"
	// true invalid session config: timeout -1 ms: must not be negative
	// true
	// true invalid session state: requestCount -1: must not be negative
}

// An eviction hook runs once for every session that leaves the Manager,
// with the reason, before the session is closed: the place to save it.
func Example_onEvict() {
	m := roster.NewManager(
		roster.WithSessionTimeout(time.Minute),
		roster.WithOnEvict(func(s *roster.Session, reason roster.EvictReason) {
			fmt.Println("leaving:", s.ID(), reason, s.IsActive())
		}),
	)
	for _, id := range []string{"a", "b"} {
		if err := m.CreateSessionWithID(id, nil); err != nil {
			panic(err)
		}
	}
	_ = m.CloseSession("a") // leaving: a closed true
	m.Shutdown()            // leaving: b shutdown true
	// Output:
	// leaving: a closed true
	// leaving: b shutdown true
}

// Configs arrive as JSON from other programs: DecodeConfig reads and
// validates one, strictly.
func Example_decodeConfig() {
	cfg, err := roster.DecodeConfig([]byte(`{"preset":"firefox-latest","timeout":30000,"retryEnabled":true}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.PresetName(), cfg.Timeout, roster.DefaultPreset)
	_, err = roster.DecodeConfig([]byte(`{"Timeout":30000}`))
	fmt.Println(err)
	// Output:
	// firefox-latest 30000 chrome-latest
	// invalid session config: key "Timeout": field names are case-sensitive, want "timeout"
}

// Example_fleet is the README's Fleets snippet: a Manager that shares its
// sessions with other processes through Redis. It is compiled, not run (it
// needs a redis-server on 6379); session's store tests run the same calls
// against a real one.
func Example_fleet() {
	ctx := context.Background()
	client, _ := rstore.Dial(ctx, "redis://127.0.0.1:6379/0", "", 2*time.Second) // rstore = roster/store/redis
	st, _ := rstore.New(client, rstore.Options{Prefix: "myapp:"})
	m := roster.NewManager(roster.WithStore(st), roster.WithFleetMaxSessions(500))
	defer client.Close() // after m.Shutdown, which saves every session
	defer m.Shutdown()
}
