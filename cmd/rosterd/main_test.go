package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// envOf returns a getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func defaults() config {
	return config{
		listen:            "127.0.0.1:8899",
		maxSessions:       100,
		sessionTimeout:    30 * time.Minute,
		cleanupInterval:   time.Minute,
		shutdownTimeout:   30 * time.Second,
		logLevel:          slog.LevelInfo,
		maxConns:          daemon.DefaultMaxConns,
		maxHeaderBytes:    daemon.DefaultMaxHeaderBytes,
		idleTimeout:       daemon.DefaultIdleTimeout,
		maxTunnels:        daemon.DefaultMaxTunnels,
		maxTunnelsPerSess: daemon.DefaultMaxTunnelsPerSession,
		tunnelIdleTimeout: daemon.DefaultTunnelIdleTimeout,
		fleet:             fleetConfig{leaseTTL: session.DefaultLeaseTTL, saveEvery: defaultSaveInterval},
	}
}

// Tokens of the tests: 16 bytes or more.
const (
	envTok  = "envtok-0123456789"
	flagTok = "flagtok-0123456789"
)

func TestParseConfig(t *testing.T) {
	with := func(f func(*config)) config {
		c := defaults()
		f(&c)
		return c
	}
	allEnv := map[string]string{
		"ROSTER_LISTEN":           "127.0.0.1:9000",
		"ROSTER_TOKEN":            envTok,
		"ROSTER_MAX_SESSIONS":     "7",
		"ROSTER_SESSION_TIMEOUT":  "90s",
		"ROSTER_CLEANUP_INTERVAL": "5s",
		"ROSTER_SHUTDOWN_TIMEOUT": "2s",
		"ROSTER_LOG_LEVEL":        "debug",
	}
	fromEnv := with(func(c *config) {
		*c = config{fleet: defaults().fleet, listen: "127.0.0.1:9000", token: envTok, maxSessions: 7, sessionTimeout: 90 * time.Second,
			cleanupInterval: 5 * time.Second, shutdownTimeout: 2 * time.Second, logLevel: slog.LevelDebug,
			maxConns: c.maxConns, maxHeaderBytes: c.maxHeaderBytes, idleTimeout: c.idleTimeout, maxTunnels: c.maxTunnels,
			maxTunnelsPerSess: c.maxTunnelsPerSess, tunnelIdleTimeout: c.tunnelIdleTimeout}
	})
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, defaults()},
		{"empty env is unset", nil, map[string]string{"ROSTER_MAX_SESSIONS": "", "ROSTER_LISTEN": ""}, defaults()},
		{"every flag", []string{"-listen", "127.0.0.1:0", "-token", flagTok, "-max-sessions", "3", "-session-timeout", "15m",
			"-cleanup-interval", "10s", "-shutdown-timeout", "1m", "-log-level", "warn", "-max-conns", "9", "-max-header-bytes", "4096",
			"-idle-timeout", "7s", "-max-tunnels", "5", "-max-tunnels-per-session", "2", "-tunnel-idle-timeout", "0"},
			nil, config{fleet: defaults().fleet, listen: "127.0.0.1:0", token: flagTok, maxSessions: 3, sessionTimeout: 15 * time.Minute,
				cleanupInterval: 10 * time.Second, shutdownTimeout: time.Minute, logLevel: slog.LevelWarn,
				maxConns: 9, maxHeaderBytes: 4096, idleTimeout: 7 * time.Second, maxTunnels: 5, maxTunnelsPerSess: 2}},
		{"limits from env", nil, map[string]string{"ROSTER_MAX_CONNS": "0", "ROSTER_IDLE_TIMEOUT": "1m", "ROSTER_MAX_TUNNELS_PER_SESSION": "4"},
			with(func(c *config) { c.maxConns = 0; c.idleTimeout = time.Minute; c.maxTunnelsPerSess = 4 })},
		{"--flag=value", []string{"--max-sessions=4", "--log-level=ERROR"}, nil,
			with(func(c *config) { c.maxSessions = 4; c.logLevel = slog.LevelError })},
		{"every env var", nil, allEnv, fromEnv},
		{"flags beat env", []string{"-listen", "127.0.0.1:1", "-token", flagTok, "-max-sessions", "0", "-session-timeout", "0",
			"-cleanup-interval", "1s", "-shutdown-timeout", "0s", "-log-level", "info"},
			allEnv, with(func(c *config) {
				c.listen, c.token, c.maxSessions, c.sessionTimeout = "127.0.0.1:1", flagTok, 0, 0
				c.cleanupInterval, c.shutdownTimeout, c.logLevel = time.Second, 0, slog.LevelInfo
			})},
		{"flag beats a bad env var", []string{"-max-sessions", "5"}, map[string]string{"ROSTER_MAX_SESSIONS": "x"},
			with(func(c *config) { c.maxSessions = 5 })},
		{"one flag over env", []string{"-max-sessions", "9"}, allEnv, func() config { c := fromEnv; c.maxSessions = 9; return c }()},
		{"zero means none", []string{"-max-sessions", "0", "-session-timeout", "0"}, nil,
			with(func(c *config) { c.maxSessions = 0; c.sessionTimeout = 0 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := parseConfig(tc.args, envOf(tc.env), &stderr)
			if err != nil {
				t.Fatalf("parseConfig: %v (stderr %q)", err, stderr.String())
			}
			if *c != tc.want {
				t.Fatalf("got  %+v\nwant %+v", *c, tc.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // a part of the error
	}{
		{"max-sessions not a number", []string{"-max-sessions", "lots"}, nil, "-max-sessions"},
		{"max-sessions negative", []string{"-max-sessions", "-1"}, nil, "-max-sessions"},
		{"max-sessions empty", []string{"-max-sessions", ""}, nil, "-max-sessions"},
		{"max-sessions overflow", []string{"-max-sessions", "99999999999999999999999"}, nil, "-max-sessions"},
		{"max-sessions from env", nil, map[string]string{"ROSTER_MAX_SESSIONS": "x"}, `ROSTER_MAX_SESSIONS="x"`},
		{"max-sessions negative from env", nil, map[string]string{"ROSTER_MAX_SESSIONS": "-3"}, `ROSTER_MAX_SESSIONS="-3"`},
		{"max-conns negative", []string{"-max-conns", "-1"}, nil, "-max-conns"},
		{"idle-timeout from env", nil, map[string]string{"ROSTER_IDLE_TIMEOUT": "5"}, `ROSTER_IDLE_TIMEOUT="5"`},
		{"short token", []string{"-token", "short"}, nil, "-token: daemon: bad token: 5 bytes"},
		{"spaced token", []string{"-token", " sixteen-bytes-long "}, nil, "-token: daemon: bad token: it has surrounding white space"},
		{"blank token", []string{"-token", " "}, nil, "-token: daemon: bad token"},
		{"short token from env", nil, map[string]string{"ROSTER_TOKEN": "short"}, "ROSTER_TOKEN: daemon: bad token"},
		{"token file missing", []string{"-token-file", "/nonexistent/tok"}, nil, "-token-file: open /nonexistent/tok"},
		{"token and token file", []string{"-token", flagTok, "-token-file", "/dev/null"}, nil, "give one"},
		{"empty token file", []string{"-token-file", "/dev/null"}, nil, "-token-file /dev/null: the token is empty"},
		{"session-timeout without unit", []string{"-session-timeout", "5"}, nil, "-session-timeout"},
		{"session-timeout negative", []string{"-session-timeout", "-1s"}, nil, "-session-timeout"},
		{"session-timeout from env", nil, map[string]string{"ROSTER_SESSION_TIMEOUT": "soon"}, "ROSTER_SESSION_TIMEOUT"},
		{"cleanup-interval", []string{"-cleanup-interval", "1 minute"}, nil, "-cleanup-interval"},
		{"cleanup-interval from env", nil, map[string]string{"ROSTER_CLEANUP_INTERVAL": "-5m"}, "ROSTER_CLEANUP_INTERVAL"},
		{"shutdown-timeout", []string{"-shutdown-timeout", "x"}, nil, "-shutdown-timeout"},
		{"shutdown-timeout from env", nil, map[string]string{"ROSTER_SHUTDOWN_TIMEOUT": "30"}, "ROSTER_SHUTDOWN_TIMEOUT"},
		{"log-level", []string{"-log-level", "loud"}, nil, "-log-level"},
		{"log-level from env", nil, map[string]string{"ROSTER_LOG_LEVEL": "verbose"}, "ROSTER_LOG_LEVEL"},
		{"unknown flag", []string{"-nope"}, nil, "-nope"},
		{"missing value", []string{"-token"}, nil, "-token"},
		{"extra argument", []string{"serve"}, nil, `unexpected argument "serve"`},
		{"bad value with good env", []string{"-max-sessions", "x"}, map[string]string{"ROSTER_MAX_SESSIONS": "5"}, "-max-sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := parseConfig(tc.args, envOf(tc.env), &stderr)
			if err == nil {
				t.Fatalf("no error; config %+v", *c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to name %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseConfig([]string{"-h"}, envOf(nil), &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"-listen", "-token", "-token-file", "-max-sessions", "-session-timeout", "-cleanup-interval",
		"-shutdown-timeout", "-log-level", "-max-conns", "-max-header-bytes", "-idle-timeout", "-max-tunnels",
		"-max-tunnels-per-session", "-tunnel-idle-timeout", "-version", "ROSTER_TOKEN", "process list",
		// types and defaults
		"-max-sessions int", "(default 100)", "-session-timeout timeout", "(default 30m0s)", "-max-conns int", "(default 512)",
		"-max-header-bytes bytes", "(default 65536)", "-idle-timeout duration", "(default 1m0s)"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("usage lacks %q:\n%s", name, stderr.String())
		}
	}
	// -h is a success.
	var out bytes.Buffer
	if err := run(context.Background(), nil, []string{"-h"}, envOf(nil), &out, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h: %v, want flag.ErrHelp (main exits 0 on it)", err)
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), nil, []string{"-version"}, envOf(nil), &stdout, io.Discard); err != nil {
		t.Fatalf("-version: %v", err)
	}
	if want := "rosterd " + daemon.Version() + " (go"; !strings.HasPrefix(stdout.String(), want) {
		t.Fatalf("-version printed %q, want %q...", stdout.String(), want)
	}
}

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(path, []byte(flagTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig([]string{"-token-file", path}, envOf(map[string]string{"ROSTER_TOKEN": ""}), io.Discard)
	if err != nil || c.token != flagTok {
		t.Fatalf("-token-file: %v, token %q", err, c.token)
	}
	if _, err := parseConfig([]string{"-token-file", path}, envOf(map[string]string{"ROSTER_TOKEN": envTok}), io.Discard); err == nil {
		t.Fatal("-token-file with ROSTER_TOKEN set: want an error")
	}
}

// A number followed by junk is not a number.
func TestParseConfigTrailingJunk(t *testing.T) {
	for _, v := range []string{"10abc", "5 6", "1e3", "3.5"} {
		if c, err := parseConfig([]string{"-max-sessions", v}, envOf(nil), io.Discard); err == nil {
			t.Errorf("-max-sessions %q accepted as %d", v, c.maxSessions)
		}
		if c, err := parseConfig(nil, envOf(map[string]string{"ROSTER_MAX_SESSIONS": v}), io.Discard); err == nil {
			t.Errorf("ROSTER_MAX_SESSIONS=%q accepted as %d", v, c.maxSessions)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader, with a
// signal on every write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitMatch waits until re matches the buffer, or fails after 20 s.
func (b *syncBuffer) waitMatch(t *testing.T, re *regexp.Regexp, done <-chan error) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		select {
		case <-b.wrote:
		case err := <-done:
			t.Fatalf("run returned %v before printing %s; output %q", err, re, b.String())
		case <-timeout:
			t.Fatalf("no %s in %q", re, b.String())
		}
	}
}

var (
	readyRe = regexp.MustCompile(`(?m)^rosterd: ready on http://(127\.0\.0\.1:[0-9]+)$`)
	tokenRe = regexp.MustCompile(`(?m)^rosterd: token ([0-9a-f]{48})$`)
)

// startRun runs run in a goroutine; the returned channel yields its error.
func startRun(t *testing.T, args []string, env map[string]string) (cancel func(), done chan error, stdout, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = newSyncBuffer(), newSyncBuffer()
	done = make(chan error, 1)
	go func() { done <- run(ctx, nil, args, envOf(env), stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("run did not return after its context was cancelled")
		}
	})
	return cancel, done, stdout, stderr
}

func TestRunGeneratedToken(t *testing.T) {
	cancel, done, stdout, stderr := startRun(t, []string{"-listen", "127.0.0.1:0"}, nil)
	addr := stdout.waitMatch(t, readyRe, done)[1]
	m := tokenRe.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no token line in %q", stdout.String())
	}
	if strings.Index(stdout.String(), "rosterd: token") > strings.Index(stdout.String(), "rosterd: ready") {
		t.Errorf("the token comes after the ready line:\n%s", stdout.String())
	}
	tok := m[1]

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"Bearer " + tok, http.StatusCreated},
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/sessions", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("POST /v1/sessions with %q: %d, want %d", tc.auth, resp.StatusCode, tc.code)
		}
	}
	tr.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
		done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	for _, want := range []string{"msg=serving", "msg=\"shutting down\"", "msg=stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, stderr.String())
		}
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still listening after run returned")
	}
}

func TestRunGivenToken(t *testing.T) {
	cancel, done, stdout, _ := startRun(t, []string{"-listen", "127.0.0.1:0"}, map[string]string{"ROSTER_TOKEN": envTok})
	addr := stdout.waitMatch(t, readyRe, done)[1]
	if strings.Contains(stdout.String(), "token") {
		t.Errorf("a given token is printed: %q", stdout.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+envTok)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sessions with ROSTER_TOKEN: %d", resp.StatusCode)
	}
	tr.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	done <- nil
}

func TestRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad flag", []string{"-max-sessions", "x"}, "-max-sessions"},
		{"address in use", []string{"-listen", busy.Addr().String(), "-token", flagTok}, "address already in use"},
		{"not an address", []string{"-listen", "nowhere", "-token", flagTok}, "nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), nil, tc.args, envOf(nil), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(stdout.String(), "ready") {
				t.Fatalf("ready printed on failure: %q", stdout.String())
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "LocalHost": true,
		"": false, "0.0.0.0": false, "::": false, "192.168.1.1": false, "example.com": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// Issue 11.14: a second signal during the drain stops at once, and says so.
func TestRunSecondSignal(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	beLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = be.Serve(beLn) }()
	defer be.Close()
	defer close(release)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	force := make(chan struct{})
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, force, []string{"-listen", "127.0.0.1:0", "-token", flagTok, "-shutdown-timeout", "10m"}, envOf(nil), stdout, stderr)
	}()
	addr := stdout.waitMatch(t, readyRe, done)[1]
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+flagTok)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	tr.CloseIdleConnections()

	ptr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr, User: url.UserPassword(created.ID, flagTok)})}
	defer ptr.CloseIdleConnections()
	reqDone := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: ptr}).Get("http://" + beLn.Addr().String() + "/hang")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		reqDone <- err
	}()
	<-arrived
	cancel()
	stderr.waitMatch(t, regexp.MustCompile(`msg="shutting down"`), done)
	select {
	case err := <-done:
		t.Fatalf("run returned with a request in flight and a 10m drain: %v", err)
	default:
	}
	close(force)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run still draining 10 s after the second signal")
	}
	if !strings.Contains(stderr.String(), "second signal: stopping now") {
		t.Errorf("the log does not say why it stopped:\n%s", stderr.String())
	}
	<-reqDone
}
