// Command workerpool is the worker-pool use case of roster's README: a
// Manager with a cap of 50 and a 15-minute idle timeout, ten sessions built
// up front, each handed by ID to its own worker goroutine, and a Shutdown
// that runs once however the program ends.
//
// Each worker is its own identity: it logs in to an embedded go-httpbin
// server on 127.0.0.1 (a cookie), then checks what the server sees of it.
// No internet is needed.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/rosterhq/roster"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workerpool:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	// The embedded server the workers talk to.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: httpbin.New(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	m := roster.NewManager()
	m.SetMaxSessions(50)
	m.SetSessionTimeout(15 * time.Minute)

	var shutdownOnce sync.Once
	shutdown := func() { shutdownOnce.Do(m.Shutdown) }
	defer shutdown()

	// Shut down on Ctrl-C too, without racing the deferred call.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	defer func() { signal.Stop(sig); close(done) }()
	go func() {
		select {
		case <-sig:
			shutdown()
			os.Exit(130)
		case <-done:
		}
	}()

	presets := []string{"chrome-latest", "firefox-latest", "safari-latest-ios"}
	ids := make([]string, 10)
	for i := range ids {
		id, err := m.CreateSession(&roster.SessionConfig{Preset: presets[i%len(presets)], BaseURL: base})
		if err != nil {
			return err
		}
		ids[i] = id
	}

	var wg sync.WaitGroup
	report := make([]string, len(ids))
	for w, id := range ids {
		wg.Go(func() { report[w] = work(m, w, id) })
	}
	wg.Wait()
	for _, line := range report {
		fmt.Fprintln(out, line)
	}
	st := m.Stats()
	fmt.Fprintf(out, "manager: %d active, %d created, cap %d, idle timeout %v\n",
		st.Active, st.Created, m.MaxSessions(), m.SessionTimeout())
	return nil
}

// work is one worker: it fetches its session by ID, as a worker holding only
// the ID would, and uses it: a login that sets a cookie, then a look at what
// the server sees.
func work(m *roster.Manager, w int, id string) string {
	s, err := m.GetSession(id)
	if err != nil {
		return fmt.Sprintf("worker %d: %v", w, err)
	}
	// The login answers with a redirect to /cookies, which the session
	// follows with the new cookie.
	var seen struct {
		Cookies map[string]string `json:"cookies"`
	}
	if err := getJSON(s, fmt.Sprintf("/cookies/set?worker=%d", w), &seen); err != nil {
		return fmt.Sprintf("worker %d: login: %v", w, err)
	}
	var ua struct {
		UserAgent string `json:"user-agent"`
	}
	if err := getJSON(s, "/user-agent", &ua); err != nil {
		return fmt.Sprintf("worker %d: %v", w, err)
	}
	st := s.Stats()
	return fmt.Sprintf("worker %d: session %s, %d requests, server sees cookie worker=%s, user agent %.40s...",
		w, st.ID, st.RequestCount, seen.Cookies["worker"], ua.UserAgent)
}

// getJSON fetches path (relative to the session's BaseURL) and decodes the
// JSON answer into v.
func getJSON(s *roster.Session, path string, v any) error {
	resp, err := s.Get(context.Background(), path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
