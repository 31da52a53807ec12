package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// envOf returns a getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func defaults() config {
	return config{
		listen:          "127.0.0.1:8899",
		maxSessions:     100,
		sessionTimeout:  30 * time.Minute,
		cleanupInterval: time.Minute,
		shutdownTimeout: 30 * time.Second,
		logLevel:        slog.LevelInfo,
	}
}

func TestParseConfig(t *testing.T) {
	with := func(f func(*config)) config {
		c := defaults()
		f(&c)
		return c
	}
	allEnv := map[string]string{
		"ROSTER_LISTEN":           "127.0.0.1:9000",
		"ROSTER_TOKEN":            "envtok",
		"ROSTER_MAX_SESSIONS":     "7",
		"ROSTER_SESSION_TIMEOUT":  "90s",
		"ROSTER_CLEANUP_INTERVAL": "5s",
		"ROSTER_SHUTDOWN_TIMEOUT": "2s",
		"ROSTER_LOG_LEVEL":        "debug",
	}
	fromEnv := config{listen: "127.0.0.1:9000", token: "envtok", maxSessions: 7, sessionTimeout: 90 * time.Second,
		cleanupInterval: 5 * time.Second, shutdownTimeout: 2 * time.Second, logLevel: slog.LevelDebug}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{"defaults", nil, nil, defaults()},
		{"empty env is unset", nil, map[string]string{"ROSTER_MAX_SESSIONS": "", "ROSTER_LISTEN": ""}, defaults()},
		{"every flag", []string{"-listen", "127.0.0.1:0", "-token", "T", "-max-sessions", "3", "-session-timeout", "15m",
			"-cleanup-interval", "10s", "-shutdown-timeout", "1m", "-log-level", "warn"},
			nil, config{listen: "127.0.0.1:0", token: "T", maxSessions: 3, sessionTimeout: 15 * time.Minute,
				cleanupInterval: 10 * time.Second, shutdownTimeout: time.Minute, logLevel: slog.LevelWarn}},
		{"--flag=value", []string{"--max-sessions=4", "--log-level=ERROR"}, nil,
			with(func(c *config) { c.maxSessions = 4; c.logLevel = slog.LevelError })},
		{"every env var", nil, allEnv, fromEnv},
		{"flags beat env", []string{"-listen", "127.0.0.1:1", "-token", "flagtok", "-max-sessions", "0", "-session-timeout", "0",
			"-cleanup-interval", "1s", "-shutdown-timeout", "0s", "-log-level", "info"},
			allEnv, config{listen: "127.0.0.1:1", token: "flagtok", maxSessions: 0, sessionTimeout: 0,
				cleanupInterval: time.Second, shutdownTimeout: 0, logLevel: slog.LevelInfo}},
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
		{"max-sessions from env", nil, map[string]string{"ROSTER_MAX_SESSIONS": "x"}, "-max-sessions"},
		{"session-timeout without unit", []string{"-session-timeout", "5"}, nil, "-session-timeout"},
		{"session-timeout negative", []string{"-session-timeout", "-1s"}, nil, "-session-timeout"},
		{"session-timeout from env", nil, map[string]string{"ROSTER_SESSION_TIMEOUT": "soon"}, "-session-timeout"},
		{"cleanup-interval", []string{"-cleanup-interval", "1 minute"}, nil, "-cleanup-interval"},
		{"cleanup-interval from env", nil, map[string]string{"ROSTER_CLEANUP_INTERVAL": "-5m"}, "-cleanup-interval"},
		{"shutdown-timeout", []string{"-shutdown-timeout", "x"}, nil, "-shutdown-timeout"},
		{"shutdown-timeout from env", nil, map[string]string{"ROSTER_SHUTDOWN_TIMEOUT": "30"}, "-shutdown-timeout"},
		{"log-level", []string{"-log-level", "loud"}, nil, "-log-level"},
		{"log-level from env", nil, map[string]string{"ROSTER_LOG_LEVEL": "verbose"}, "-log-level"},
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
	for _, name := range []string{"-listen", "-token", "-max-sessions", "-session-timeout", "-cleanup-interval", "-shutdown-timeout", "-log-level", "ROSTER_TOKEN"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("usage lacks %s:\n%s", name, stderr.String())
		}
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
	go func() { done <- run(ctx, args, envOf(env), stdout, stderr) }()
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
	cancel, done, stdout, _ := startRun(t, []string{"-listen", "127.0.0.1:0"}, map[string]string{"ROSTER_TOKEN": "envtok"})
	addr := stdout.waitMatch(t, readyRe, done)[1]
	if strings.Contains(stdout.String(), "token") {
		t.Errorf("a given token is printed: %q", stdout.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/sessions", nil)
	req.Header.Set("Authorization", "Bearer envtok")
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
		{"address in use", []string{"-listen", busy.Addr().String(), "-token", "T"}, "address already in use"},
		{"not an address", []string{"-listen", "nowhere", "-token", "T"}, "nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, envOf(nil), &stdout, &stderr)
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
