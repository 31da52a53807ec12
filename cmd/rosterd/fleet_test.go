package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rosterhq/roster/internal/redistest"
	"github.com/rosterhq/roster/session"
)

func TestParseFleetConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want fleetConfig
		err  string
	}{
		{"none", nil, nil, fleetConfig{leaseTTL: session.DefaultLeaseTTL, saveEvery: defaultSaveInterval}, ""},
		{"flags", []string{"-redis", "redis://127.0.0.1:6379/0", "-fleet-max-sessions", "5", "-lease-ttl", "2s", "-save-interval", "1s"}, nil,
			fleetConfig{redisURL: "redis://127.0.0.1:6379/0", maxSessions: 5, leaseTTL: 2 * time.Second, saveEvery: time.Second}, ""},
		{"env with password", nil, map[string]string{"ROSTER_REDIS": "rediss://h:6380", "ROSTER_REDIS_PASSWORD": "pw", "ROSTER_FLEET_MAX_SESSIONS": "3"},
			fleetConfig{redisURL: "rediss://h:6380", password: "pw", maxSessions: 3, leaseTTL: session.DefaultLeaseTTL, saveEvery: defaultSaveInterval}, ""},
		{"bad env names the variable", nil, map[string]string{"ROSTER_FLEET_MAX_SESSIONS": "x"}, fleetConfig{}, "ROSTER_FLEET_MAX_SESSIONS"},
		{"cap without redis", []string{"-fleet-max-sessions", "5"}, nil, fleetConfig{}, "needs -redis"},
		{"bad scheme", []string{"-redis", "http://x"}, nil, fleetConfig{}, "redis:// or rediss://"},
		{"password redacted", []string{"-redis", "http://u:secret@x"}, nil, fleetConfig{}, "xxxxx"},
		{"bad cap", []string{"-redis", "redis://x", "-fleet-max-sessions", "-1"}, nil, fleetConfig{}, "-fleet-max-sessions"},
		{"short lease", []string{"-redis", "redis://x", "-lease-ttl", "1ms"}, nil, fleetConfig{}, "-lease-ttl"},
		{"bad save interval", []string{"-redis", "redis://x", "-save-interval", "0"}, nil, fleetConfig{}, "-save-interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, envOf(tc.env), io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("error %v, want one with %q and no password", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.fleet != tc.want {
				t.Fatalf("got %+v, want %+v", c.fleet, tc.want)
			}
		})
	}
}

// TestBinaryFleet runs two rosterd processes on one redis-server: a
// session's cookies set through one come back through the other after a
// close, after SIGTERM, and after SIGKILL once the lease has expired; while
// one holds a session the other answers 423.
func TestBinaryFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rosterd: not in -short mode")
	}
	srv := redistest.Start(t)
	be := backend(t, nil)
	bin := buildRosterd(t, t.TempDir())
	const tok = "T0K-fleet-0123456789"
	start := func(extra ...string) *daemonProc {
		return startDaemon(t, bin, append([]string{"-listen", "127.0.0.1:0", "-token", tok, "-redis", srv.URL(),
			"-lease-ttl", "1s", "-save-interval", "100ms"}, extra...)...)
	}
	a, b := start(), start()

	api := func(d *daemonProc, method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+d.addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return resp.StatusCode, c.ID
	}
	create := func(d *daemonProc) string {
		t.Helper()
		code, id := api(d, "POST", "/v1/sessions")
		if code != http.StatusCreated || id == "" {
			t.Fatalf("create: %d", code)
		}
		return id
	}
	// through sends GET path through d's proxy as session id and returns
	// the status and the cookies httpbin saw.
	through := func(d *daemonProc, id, path string) (int, map[string]string) {
		t.Helper()
		proxy, _ := url.Parse("http://" + id + ":" + tok + "@" + d.addr)
		tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(be.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c struct{ Cookies map[string]string }
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return resp.StatusCode, c.Cookies
	}
	want := func(d *daemonProc, id, who string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, c := through(d, id, "/cookies")
			if code == http.StatusOK && c["who"] == who {
				return
			}
			if code != http.StatusLocked || time.Now().After(deadline) {
				t.Fatalf("cookies of %s: %d %v, want who=%s", id, code, c, who)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	id := create(a)
	if code, _ := through(a, id, "/cookies/set?who=a"); code != http.StatusOK {
		t.Fatalf("set cookie: %d", code)
	}
	if code, _ := through(b, id, "/cookies"); code != http.StatusLocked {
		t.Fatalf("B on A's session: %d, want 423", code)
	}
	// Hand-over after a close.
	req, _ := http.NewRequest("DELETE", "http://"+a.addr+"/v1/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	want(b, id, "a")
	// Hand-over after SIGTERM.
	if code, _ := through(b, id, "/cookies/set?who=b"); code != http.StatusOK {
		t.Fatalf("set cookie through B: %d", code)
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := b.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("B exit %d\n%s", code, b.stderr.String())
	}
	want(a, id, "b")
	// Hand-over after SIGKILL: the last periodic save, once the lease
	// expires.
	if code, _ := through(a, id, "/cookies/set?who=a2"); code != http.StatusOK {
		t.Fatalf("set cookie through A: %d", code)
	}
	// Wait for the periodic save to reach Redis, as a client would.
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	for deadline := time.Now().Add(15 * time.Second); ; {
		st, _ := rc.Get(context.Background(), "roster:{"+id+"}:s").Result()
		if strings.Contains(st, `"value":"a2"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("periodic save never wrote who=a2; state %s", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.waitExit(t, 10*time.Second)
	c := start()
	want(c, id, "a2")

	// Hand-over after idle eviction (Redis database 1: a fleet of its own).
	evicting := func() *daemonProc {
		return startDaemon(t, bin, "-listen", "127.0.0.1:0", "-token", tok, "-redis", "redis://"+srv.Addr()+"/1",
			"-session-timeout", "300ms", "-cleanup-interval", "100ms")
	}
	e1, e2 := evicting(), evicting()
	id = create(e1)
	if code, _ := through(e1, id, "/cookies/set?who=idle"); code != http.StatusOK {
		t.Fatalf("set cookie: %d", code)
	}
	want(e2, id, "idle") // 423 until e1 evicts it

	// A fleet cap of 3 across two rosterd (database 2).
	capped := func() *daemonProc {
		return startDaemon(t, bin, "-listen", "127.0.0.1:0", "-token", tok, "-redis", "redis://"+srv.Addr()+"/2",
			"-fleet-max-sessions", "3")
	}
	f1, f2 := capped(), capped()
	var ids []string
	for i, d := range []*daemonProc{f1, f2, f1} {
		if code, id := api(d, "POST", "/v1/sessions"); code != http.StatusCreated {
			t.Fatalf("create %d under the fleet cap: %d", i, code)
		} else {
			ids = append(ids, id)
		}
	}
	for _, d := range []*daemonProc{f1, f2} {
		if code, _ := api(d, "POST", "/v1/sessions"); code != http.StatusTooManyRequests {
			t.Fatalf("create over the fleet cap: %d, want 429", code)
		}
	}
	if code, _ := api(f1, "DELETE", "/v1/sessions/"+ids[0]); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := api(f2, "POST", "/v1/sessions"); code != http.StatusCreated {
		t.Fatalf("create after a slot was freed: %d", code)
	}
}
