package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
)

// rawRequest writes req (a whole request head, and any body bytes) on a
// new connection to addr and returns the connection and the response,
// read within 10 s.
func rawRequest(t *testing.T, addr, req string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to %q: %v", firstLine(req), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, resp
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

// closedWithin reports whether the peer closes c within d (it may send
// bytes first).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil // EOF
}

// Issue 11.1: an idle keep-alive connection is closed after IdleTimeout.
func TestIdleConnectionClosed(t *testing.T) {
	e := newEnvOpts(t, daemon.Options{IdleTimeout: 50 * time.Millisecond}, nil)
	c, resp := rawRequest(t, e.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /healthz: %d close=%v", resp.StatusCode, resp.Close)
	}
	if !closedWithin(c, 10*time.Second) {
		t.Fatal("an idle keep-alive connection was still open after 10 s, IdleTimeout 50ms")
	}
}

// Issue 11.1: a request with a trickling body and no token gets its 401 or
// 407 at once, and the connection closes (net/http would otherwise read up
// to 256 KiB of the body first).
func TestRefusalDoesNotWaitForBody(t *testing.T) {
	e := newEnv(t, nil)
	for _, head := range []string{
		"POST http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n",
		"POST /v1/sessions HTTP/1.1\r\nHost: x\r\n",
		"PUT /v1/nothing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n",
	} {
		c, resp := rawRequest(t, e.addr, head+"Content-Length: 100000\r\n\r\n0123456789")
		if resp.StatusCode < 400 || resp.StatusCode > 499 || !resp.Close {
			t.Fatalf("%q: %d close=%v, want a 4xx with Connection: close", firstLine(head), resp.StatusCode, resp.Close)
		}
		if !closedWithin(c, 10*time.Second) {
			t.Fatalf("%q: connection still open", firstLine(head))
		}
	}
}

// Issue 11.1: an API body that does not arrive within BodyTimeout ends the
// request.
func TestAPIBodyTimeout(t *testing.T) {
	e := newEnvOpts(t, daemon.Options{BodyTimeout: 50 * time.Millisecond}, nil)
	c, resp := rawRequest(t, e.addr, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
		"\r\nContent-Length: 100\r\n\r\n{\"pre")
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Fatalf("slow body: %d close=%v, want 400 and Connection: close", resp.StatusCode, resp.Close)
	}
	if !closedWithin(c, 10*time.Second) {
		t.Fatal("connection still open")
	}
	if n := e.srv.Manager().SessionCount(); n != 0 {
		t.Fatalf("%d sessions", n)
	}
}

// Issue 11.1: at MaxConns connections, the next waits until one closes.
func TestMaxConns(t *testing.T) {
	e := newEnvOpts(t, daemon.Options{MaxConns: 2}, nil)
	var held []net.Conn
	for range 2 {
		c, _ := rawRequest(t, e.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		held = append(held, c)
	}
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	held[0].Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the third connection after one closed: %v", err)
	}
	resp.Body.Close()
}

// Issue 11.2: headers are capped (64 KiB by default) before the token is
// checked.
func TestMaxHeaderBytes(t *testing.T) {
	for _, tc := range []struct {
		max, size int
		want      int
	}{
		{0, 100 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{0, 40 << 10, http.StatusProxyAuthRequired},
		{8 << 10, 20 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		e := newEnvOpts(t, daemon.Options{MaxHeaderBytes: tc.max}, nil)
		_, resp := rawRequest(t, e.addr, "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Pad: "+
			strings.Repeat("a", tc.size)+"\r\n\r\n")
		if resp.StatusCode != tc.want {
			t.Errorf("MaxHeaderBytes %d, %d bytes of headers: %d, want %d", tc.max, tc.size, resp.StatusCode, tc.want)
		}
	}
}

// Issue 11.3: an upstream body that breaks off reaches the client as a
// broken body, not a complete one.
func TestTruncatedUpstreamBody(t *testing.T) {
	e := newEnv(t, map[string]http.HandlerFunc{
		"/truncated": func(w http.ResponseWriter, r *http.Request) {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			_ = brw.Flush()
		},
	})
	id := e.create("")
	resp, err := e.proxyClient(id, token).Get(e.backend.URL + "/truncated")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the client read %q and a clean end of a truncated body", b)
	}
	waitFor(t, "no request in flight", func() bool { return e.stats(id).InFlight == 0 })
}

// Issue 11.4: a session whose upstream proxy is the daemon itself is
// refused at create and restore, and a request that comes back anyway (a
// session made through the library) is stopped by the Via token.
func TestSelfProxyLoop(t *testing.T) {
	e := newEnv(t, nil)
	_, port, _ := net.SplitHostPort(e.addr)
	for _, p := range []string{"http://" + e.addr, "http://localhost:" + port, "http://x:y@" + e.addr} {
		code, b := e.call(http.MethodPost, "/v1/sessions", `{"proxy":"`+p+`"}`)
		if code != http.StatusBadRequest || !strings.Contains(errorText(t, b), "is this rosterd") {
			t.Fatalf("create with proxy %s: %d %s", p, code, b)
		}
	}
	// Restore: state of a session with the loop.
	self := "http://" + url.UserPassword("x", token).String() + "@" + e.addr
	id, err := e.srv.Manager().CreateSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := e.srv.Manager().PeekSession(id)
	if err := sess.SetProxy(self); err != nil {
		t.Fatal(err)
	}
	state, _ := sess.Marshal()
	_ = e.srv.Manager().CloseSession(id)
	created := e.srv.Manager().Stats().Created
	if code, b := e.call(http.MethodPost, "/v1/sessions/restore", string(state)); code != http.StatusBadRequest {
		t.Fatalf("restore with a self proxy: %d %s", code, b)
	}
	if n := e.srv.Manager().SessionCount(); n != 0 {
		t.Fatalf("%d sessions after the refused restore", n)
	}
	// Refused before restoring: no slot taken, no hook, nothing stored.
	if c := e.srv.Manager().Stats().Created; c != created {
		t.Fatalf("the refused restore registered a session (created %d -> %d)", created, c)
	}

	// Through the library, where no check runs: the Via token ends it.
	id, err = e.srv.Manager().CreateSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, _ = e.srv.Manager().PeekSession(id)
	if err := sess.SetProxy("http://" + url.UserPassword(id, token).String() + "@" + e.addr); err != nil {
		t.Fatal(err)
	}
	code, b, _ := get(t, e.proxyClient(id, token), e.backend.URL+"/get", nil)
	if code != http.StatusLoopDetected || e.hits.Load() != 0 {
		t.Fatalf("GET through a looping session: %d %s, backend hits %d", code, b, e.hits.Load())
	}
	if resp := rawConnect(t, e.addr, e.backend.Listener.Addr().String(), id, token); !strings.Contains(resp, " 502 ") {
		t.Fatalf("CONNECT through a looping session: %q, want 502 (the inner CONNECT got 508)", resp)
	}
	_, resp := rawRequest(t, e.addr, "CONNECT "+e.backend.Listener.Addr().String()+" HTTP/1.1\r\nHost: x\r\nVia: 1.1 other, 1.1 "+
		daemonVia(t, e)+"\r\n\r\n")
	if resp.StatusCode != http.StatusLoopDetected {
		t.Fatalf("CONNECT with our Via: %d", resp.StatusCode)
	}
	waitFor(t, "no request in flight", func() bool { return e.srv.Manager().Stats().InFlight == 0 })
}

// daemonVia learns the daemon's Via pseudonym from a request it forwards
// through a session whose proxy is a recorder.
func daemonVia(t *testing.T, e *env) string {
	t.Helper()
	via := make(chan string, 1)
	rec := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case via <- r.Header.Get("Via"):
		default:
		}
	}), ErrorLog: quietLog}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rec.Serve(ln) }()
	defer rec.Close()
	id := e.create(`{"proxy":"http://` + ln.Addr().String() + `"}`)
	get(t, e.proxyClient(id, token), "http://127.0.0.1:1/", nil)
	v := <-via
	if !strings.HasPrefix(v, "1.1 rosterd-") {
		t.Fatalf("Via %q", v)
	}
	return strings.TrimPrefix(v, "1.1 ")
}

// Issue 11.5: the client's Connection: close is its own hop's.
func TestConnectionCloseNotForwarded(t *testing.T) {
	e := newEnv(t, map[string]http.HandlerFunc{"/close": func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Close)
	}})
	id := e.create("")
	req, _ := http.NewRequest(http.MethodGet, e.backend.URL+"/close", nil)
	req.Close = true
	resp, err := e.proxyClient(id, token).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "false" {
		t.Fatalf("the upstream saw Connection: close (r.Close = %s)", b)
	}
}

// Issue 11.6: the server's error log reaches slog at WARN, panics at ERROR.
func TestErrorLogLevels(t *testing.T) {
	var buf bytes.Buffer
	srv, err := daemon.New(daemon.Options{Token: token, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	hs := srv.HTTPServer()
	hs.ErrorLog.Printf("http: Accept error: accept tcp 127.0.0.1:8899: accept4: too many open files; retrying in 5ms")
	hs.ErrorLog.Printf("http: panic serving 127.0.0.1:1234: boom")
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "too many open files") {
		t.Errorf("accept error not at WARN:\n%s", out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "boom") {
		t.Errorf("panic not at ERROR:\n%s", out)
	}
}

// Issue 11.6, 11.29: runtime and process metrics, and the build.
func TestMetricsRuntimeAndBuild(t *testing.T) {
	e := newEnv(t, nil)
	m := e.metrics()
	want := []string{"go_goroutines", "go_memstats_heap_alloc_bytes"}
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		want = append(want, "process_open_fds", "process_resident_memory_bytes")
	}
	for _, name := range want {
		if _, ok := m[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	found := false
	for k, v := range m {
		if strings.HasPrefix(k, "roster_build_info{") && strings.Contains(k, `version="`+daemon.Version()+`"`) && v == "1" {
			found = true
		}
	}
	if !found {
		t.Errorf("no roster_build_info with version %q", daemon.Version())
	}
	_, b, _ := e.api(http.MethodGet, "/healthz", "", nil)
	if !strings.Contains(string(b), `"version": "`+daemon.Version()+`"`) {
		t.Errorf("/healthz lacks the version: %s", b)
	}
}

// Issue 11.7: CONNECT targets must be host:port, port 1-65535; client
// mistakes on the proxy path are 400.
func TestProxyClientMistakes(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("")
	auth := "Proxy-Authorization: Basic " + basic(id, token) + "\r\n"
	backend := e.backend.Listener.Addr().String()
	for _, tc := range []struct{ name, req string }{
		{"CONNECT origin form", "CONNECT /path HTTP/1.1\r\nHost: " + backend + "\r\n" + auth + "\r\n"},
		{"CONNECT absolute form", "CONNECT http://" + backend + " HTTP/1.1\r\nHost: " + backend + "\r\n" + auth + "\r\n"},
		{"CONNECT port 0", "CONNECT 127.0.0.1:0 HTTP/1.1\r\nHost: 127.0.0.1:0\r\n" + auth + "\r\n"},
		{"CONNECT port 99999", "CONNECT 127.0.0.1:99999 HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n" + auth + "\r\n"},
		{"CONNECT port name", "CONNECT 127.0.0.1:http HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"},
		{"CONNECT no port", "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"},
		{"CONNECT userinfo", "CONNECT u@127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"},
		{"ftp", "GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n"},
		{"no host", "GET http:///x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n"},
		{"bad chunk", "POST http://" + backend + "/post HTTP/1.1\r\nHost: " + backend + "\r\n" + auth +
			"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{"short body", "POST http://" + backend + "/post HTTP/1.1\r\nHost: " + backend + "\r\n" + auth +
			"Content-Length: 10\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "bad chunk" && e.hits.Load() != 0 {
				// (A broken body may reach the backend before it breaks.)
				t.Fatalf("backend hit %d times by requests it should never see", e.hits.Load())
			}
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, tc.req)
			if tc.name == "short body" {
				closeWriteConn(c)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%d, want 400", resp.StatusCode)
			}
		})
	}
}

func closeWriteConn(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Issue 11.7: tunnels are bounded per session and in total.
func TestTunnelLimits(t *testing.T) {
	e := newEnvOpts(t, daemon.Options{MaxTunnels: 2, MaxTunnelsPerSession: 1}, nil)
	target := e.backend.Listener.Addr().String()
	a, b, c := e.create(""), e.create(""), e.create("")
	ta := openTunnel(t, e.addr, target, a)
	defer ta.Close()
	if resp := rawConnect(t, e.addr, target, a, token); !strings.Contains(resp, " 429 ") {
		t.Fatalf("a second tunnel for one session: %q, want 429", resp)
	}
	tb := openTunnel(t, e.addr, target, b)
	defer tb.Close()
	if resp := rawConnect(t, e.addr, target, c, token); !strings.Contains(resp, " 503 ") {
		t.Fatalf("a third tunnel in all: %q, want 503", resp)
	}
	ta.Close()
	waitFor(t, "a's tunnel to end", func() bool { return e.stats(a).InFlight == 0 })
	tc := openTunnel(t, e.addr, target, c)
	tc.Close()
}

// Issue 11.7: a tunnel with no bytes either way for TunnelIdleTimeout
// closes.
func TestTunnelIdleTimeout(t *testing.T) {
	e := newEnvOpts(t, daemon.Options{TunnelIdleTimeout: 50 * time.Millisecond}, nil)
	id := e.create("")
	c := openTunnel(t, e.addr, e.backend.Listener.Addr().String(), id)
	defer c.Close()
	if !closedWithin(c, 10*time.Second) {
		t.Fatal("an idle tunnel was still open after 10 s, TunnelIdleTimeout 50ms")
	}
	waitFor(t, "no request in flight", func() bool { return e.stats(id).InFlight == 0 })
}

// Issue 11.8: a known path with the wrong method is 405 with Allow.
func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodDelete, "/v1/sessions", "GET, HEAD, POST"},
		{http.MethodGet, "/v1/sessions/restore", "GET, HEAD, POST, DELETE"},
		{http.MethodPost, "/v1/sessions/01JNZ5V6X0AAAAAAAAAAAAAAAA/state", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, e.ts.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := e.direct.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if tc.path == "/v1/sessions/restore" {
			continue // GET reaches /v1/sessions/{id}: routed, not 405
		}
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
	}
}

var _ = errors.New

// Issue 14.3: the proxy passes a 3xx on as it came; its cookies stay in the
// session.
func TestProxyPassesRedirects(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("")
	c := e.proxyClient(id, token)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	code, _, h := get(t, c, e.backend.URL+"/cookies/set?k=v", nil)
	if code != http.StatusFound || h.Get("Location") != "/cookies" {
		t.Fatalf("through the proxy: %d Location %q, want 302 /cookies", code, h.Get("Location"))
	}
	if e.hits.Load() != 1 {
		t.Fatalf("backend hit %d times: the proxy followed the redirect", e.hits.Load())
	}
	if got := cookiesVia(t, e.proxyClient(id, token), e.backend.URL+"/cookies"); got["k"] != "v" {
		t.Fatalf("the 302's cookie is not in the session: %v", got)
	}
}
