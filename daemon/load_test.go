package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
)

// loadClients is how many clients run at once in TestLoad.
const loadClients = 32

// TestLoad measures requests/s and latency through rosterd against a
// direct client, in the same run, on the same tiny local handler: 32
// concurrent clients with keep-alive, each through its own session. It runs
// only with ROSTER_LOAD=1 (make load); ROSTER_LOAD_DURATION sets how long
// each mode runs (default 5s).
func TestLoad(t *testing.T) {
	if os.Getenv("ROSTER_LOAD") != "1" {
		t.Skip("a load test: set ROSTER_LOAD=1 (make load)")
	}
	dur := 5 * time.Second
	if v := os.Getenv("ROSTER_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("ROSTER_LOAD_DURATION=%q: want a positive Go duration", v)
		}
		dur = d
	}

	payload := []byte(`{"ok":true}` + "\n")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(payload)
	}))
	defer backend.Close()

	srv, err := daemon.New(daemon.Options{
		Token:          token,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ManagerOptions: []session.Option{session.WithMaxSessions(loadClients)},
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(srv)
	defer func() {
		front.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()

	direct := make([]*http.Transport, loadClients)
	proxied := make([]*http.Transport, loadClients)
	for i := range loadClients {
		id, err := srv.Manager().CreateSession(nil)
		if err != nil {
			t.Fatal(err)
		}
		direct[i] = &http.Transport{MaxIdleConnsPerHost: 1}
		proxied[i] = &http.Transport{MaxIdleConnsPerHost: 1, Proxy: http.ProxyURL(&url.URL{
			Scheme: "http", User: url.UserPassword(id, token), Host: front.Listener.Addr().String(),
		})}
	}
	defer func() {
		for i := range loadClients {
			direct[i].CloseIdleConnections()
			proxied[i].CloseIdleConnections()
		}
	}()

	d := runLoad(t, "direct", backend.URL, direct, dur)
	p := runLoad(t, "rosterd", backend.URL, proxied, dur)
	fmt.Printf("load: ratio rosterd/direct: throughput %.2f, p50 %.1fx, p99 %.1fx\n",
		p.rps/d.rps, float64(p.p50)/float64(d.p50), float64(p.p99)/float64(d.p99))
	if got := srv.Manager().Stats().InFlight; got != 0 {
		t.Errorf("%d requests still in flight after the run", got)
	}
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

// runLoad runs one client per transport against target for dur and prints
// a summary line.
func runLoad(t *testing.T, mode, target string, trs []*http.Transport, dur time.Duration) loadResult {
	t.Helper()
	lat := make([][]time.Duration, len(trs))
	errs := make([]error, len(trs))
	var wg sync.WaitGroup
	// Each client opens its connection (and its session's) first, so the
	// run measures steady state.
	for _, tr := range trs {
		if err := loadOnce(&http.Client{Transport: tr}, target); err != nil {
			t.Fatalf("%s: warm-up: %v", mode, err)
		}
	}
	start := time.Now()
	stop := start.Add(dur)
	for i, tr := range trs {
		wg.Go(func() {
			c := &http.Client{Transport: tr}
			l := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if t0.After(stop) {
					break
				}
				if err := loadOnce(c, target); err != nil {
					errs[i] = err
					break
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		t.Fatalf("%s: no request completed", mode)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	r := loadResult{rps: float64(len(all)) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}
	fmt.Printf("load: %-7s %d clients, %v: %8.0f req/s, p50 %v, p99 %v (%d requests)\n",
		mode, len(trs), dur, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), len(all))
	return r
}

// loadOnce sends one GET and reads the whole response.
func loadOnce(c *http.Client, target string) error {
	resp, err := c.Get(target)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
