package session

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rosterhq/roster/protocol"
)

// countingServer counts the connections it accepts; its handler waits until
// n requests are in at once when barrier is set.
func countingServer(t *testing.T, n int, barrier bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	var mu sync.Mutex
	arrived, release := 0, make(chan struct{})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if barrier {
			mu.Lock()
			if arrived++; arrived%n == 0 {
				close(release)
				release = make(chan struct{})
				mu.Unlock()
			} else {
				ch := release
				mu.Unlock()
				<-ch
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, &conns
}

func burst(t *testing.T, s *Session, url string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := s.Get(t.Context(), url)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
}

// Issue 14.1: by default a session keeps enough idle connections that a
// burst of 32 requests at once, repeated, dials no new ones (the old
// default of 16 idle per host dialled 16 per burst).
func TestPoolNoChurn(t *testing.T) {
	for _, name := range []string{"chrome-latest", "go"} { // both transports
		t.Run(name, func(t *testing.T) {
			const n = 32
			ts, conns := countingServer(t, n, true)
			m, _ := newTestManager(t)
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: name})
			burst(t, s, ts.URL, n)
			if got := conns.Load(); got != n {
				t.Fatalf("first burst: %d connections, want %d", got, n)
			}
			for i := range 3 {
				burst(t, s, ts.URL, n)
				if got := conns.Load(); got != n {
					t.Fatalf("burst %d: %d connections in all, want %d (none new)", i+2, got, n)
				}
			}
		})
	}
}

// Issue 14.1: MaxConnsPerHost and MaxIdleConnsPerHost apply, on Go's
// transport and on the fingerprinted one.
func TestPoolSettingsApplied(t *testing.T) {
	for _, name := range []string{"chrome-latest", "go"} {
		t.Run(name, func(t *testing.T) {
			ts, conns := countingServer(t, 0, false)
			m, _ := newTestManager(t)
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: name, MaxConnsPerHost: 1})
			burst(t, s, ts.URL, 8)
			if got := conns.Load(); got != 1 {
				t.Fatalf("MaxConnsPerHost 1: %d connections for 8 requests at once", got)
			}

			const n = 8
			ts, conns = countingServer(t, n, true)
			s = newSessionFor(t, m, &protocol.SessionConfig{Preset: name, MaxIdleConnsPerHost: 2})
			burst(t, s, ts.URL, n)
			burst(t, s, ts.URL, n)
			if got := conns.Load(); got != n+n-2 {
				t.Fatalf("MaxIdleConnsPerHost 2: %d connections after two bursts of %d, want %d", got, n, n+n-2)
			}
		})
	}
}
