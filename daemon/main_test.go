package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// token is the daemon's secret in every test.
const token = "t0k-of-sixteen-bytes"

// fakeClock is a manual session.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

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

// env is a daemon behind an httptest server, on a fake clock with no
// background sweeper, and a backend: go-httpbin plus a few handlers of the
// tests' own.
type env struct {
	t       *testing.T
	srv     *daemon.Server
	ts      *httptest.Server // the daemon
	addr    string           // the daemon's host:port
	clock   *fakeClock
	backend *httptest.Server
	hits    atomic.Int64 // requests the backend has seen
	direct  *http.Client // to the daemon's API, no proxy
}

// quietLog drops the server error logs (TLS handshake failures the tests
// cause on purpose).
var quietLog = log.New(io.Discard, "", 0)

// backendHandler is go-httpbin with extra endpoints:
//
//	/whoami  JSON: tls, user-agent, headers
//	/slow    waits on release (if given), then answers
func backendHandler(hits *atomic.Int64, extra map[string]http.HandlerFunc) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", httpbin.New())
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(whoami{TLS: r.TLS != nil, UserAgent: r.Header.Get("User-Agent"), Headers: r.Header})
	})
	for p, h := range extra {
		mux.HandleFunc(p, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mux.ServeHTTP(w, r)
	})
}

type whoami struct {
	TLS       bool        `json:"tls"`
	UserAgent string      `json:"userAgent"`
	Headers   http.Header `json:"headers"`
}

// newEnv starts a daemon with opts after the test defaults (fake clock,
// no background sweeper) and a plain-http backend.
func newEnv(t *testing.T, extra map[string]http.HandlerFunc, opts ...session.Option) *env {
	t.Helper()
	return newEnvOpts(t, daemon.Options{}, extra, opts...)
}

// newEnvOpts is newEnv with daemon options (the token, logger and Manager
// options are the tests'). The daemon is served by its own HTTPServer on
// its own Listener, with their limits.
func newEnvOpts(t *testing.T, o daemon.Options, extra map[string]http.HandlerFunc, opts ...session.Option) *env {
	t.Helper()
	e := &env{t: t, clock: &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	o.Token = token
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.ManagerOptions = append([]session.Option{session.WithClock(e.clock), session.WithCleanupInterval(0)}, opts...)
	srv, err := daemon.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.backend = httptest.NewUnstartedServer(backendHandler(&e.hits, extra))
	e.backend.Config.ErrorLog = quietLog
	e.backend.Start()
	e.ts = httptest.NewUnstartedServer(srv)
	e.ts.Config = srv.HTTPServer()
	e.ts.Listener = srv.Listener(e.ts.Listener)
	e.ts.Start()
	e.addr = e.ts.Listener.Addr().String()
	tr := &http.Transport{}
	e.direct = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		e.ts.Close()
		e.backend.Close()
	})
	return e
}

// tlsBackend starts an https backend and returns it with its certificate
// in PEM.
func (e *env) tlsBackend() (*httptest.Server, string) {
	e.t.Helper()
	ts := httptest.NewUnstartedServer(backendHandler(&e.hits, nil))
	ts.Config.ErrorLog = quietLog
	ts.StartTLS()
	e.t.Cleanup(ts.Close)
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
	return ts, certPEM
}

// api sends a request to the daemon's API; auth is the Authorization
// header ("" for none).
func (e *env) api(method, path, auth string, body io.Reader) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.direct.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, b, resp.Header
}

// call is api with the right token.
func (e *env) call(method, path, body string) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	code, b, _ := e.api(method, path, "Bearer "+token, r)
	return code, b
}

// create makes a session over the API and returns its ID.
func (e *env) create(config string) string {
	e.t.Helper()
	code, b := e.call(http.MethodPost, "/v1/sessions", config)
	if code != http.StatusCreated {
		e.t.Fatalf("POST /v1/sessions %s: %d %s", config, code, b)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(b, &out); err != nil || out.ID == "" {
		e.t.Fatalf("POST /v1/sessions: body %s: %v", b, err)
	}
	return out.ID
}

// errorText decodes {"error": ...}.
func errorText(t *testing.T, b []byte) string {
	t.Helper()
	var out struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Error == "" {
		t.Fatalf("want {\"error\": ...}, got %q (%v)", b, err)
	}
	return out.Error
}

// proxyTransport routes through the daemon with the given credentials
// (none when id and tok are both empty).
func (e *env) proxyTransport(id, tok string) *http.Transport {
	u := &url.URL{Scheme: "http", Host: e.addr}
	if id != "" || tok != "" {
		u.User = url.UserPassword(id, tok)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	e.t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func (e *env) proxyClient(id, tok string) *http.Client {
	return &http.Client{Transport: e.proxyTransport(id, tok), Timeout: 30 * time.Second}
}

// get sends GET url with c and returns the status and body.
func get(t *testing.T, c *http.Client, url string, header http.Header) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, b, resp.Header
}

// cookiesVia reads httpbin's /cookies (or /cookies/set?...) through c.
func cookiesVia(t *testing.T, c *http.Client, url string) map[string]string {
	t.Helper()
	code, b, _ := get(t, c, url, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, b)
	}
	var out struct {
		Cookies map[string]string `json:"cookies"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET %s: %s: %v", url, b, err)
	}
	return out.Cookies
}

// stats returns the session's stats as the API reports them in the list
// (which, unlike GET /v1/sessions/{id}, does not touch the session).
func (e *env) stats(id string) session.SessionStats {
	e.t.Helper()
	for _, s := range e.srv.Manager().ListSessions() {
		if s.ID == id {
			return s
		}
	}
	e.t.Fatalf("session %s not listed", id)
	return session.SessionStats{}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metrics scrapes /metrics into "name{labels}" → value text.
func (e *env) metrics() map[string]string {
	e.t.Helper()
	code, b := e.call(http.MethodGet, "/metrics", "")
	if code != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d %s", code, b)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			e.t.Fatalf("metrics line %q", line)
		}
		out[line[:i]] = line[i+1:]
	}
	return out
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
