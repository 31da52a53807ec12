package daemon_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/internal/fingerprint"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// ienv is a daemon with interception on, and an https backend (go-httpbin
// and the tests' handlers, HTTP/2 on) that sessions reach as example.com
// through connectTo, so that clients ask for a name, as they would.
type ienv struct {
	*env
	ca      *daemon.CA
	caPath  string
	pool    *x509.CertPool // the roster CA only
	tlsb    *httptest.Server
	tlsPEM  string // the backend's certificate
	backend string // "127.0.0.1:port" of tlsb
	origin  string // https://example.com:port
}

func newInterceptEnv(t *testing.T, extra map[string]http.HandlerFunc, opts *daemon.InterceptOptions) *ienv {
	t.Helper()
	dir := t.TempDir()
	ca, _, err := daemon.LoadOrCreateCA(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts == nil {
		opts = &daemon.InterceptOptions{}
	}
	opts.CA = ca
	e := &env{t: t, clock: &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	srv, err := daemon.New(daemon.Options{
		Token:          token,
		Logger:         slog.New(slog.NewTextHandler(testLogOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ManagerOptions: []session.Option{session.WithClock(e.clock), session.WithCleanupInterval(0), session.WithSessionTimeout(time.Minute)},
		Intercept:      opts,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewUnstartedServer(srv)
	e.ts.Config.ErrorLog = quietLog
	e.ts.Start()
	e.addr = e.ts.Listener.Addr().String()
	tr := &http.Transport{}
	e.direct = &http.Client{Transport: tr, Timeout: 30 * time.Second}

	ie := &ienv{env: e, ca: ca, caPath: ca.CertPath(), pool: x509.NewCertPool()}
	ie.pool.AddCert(ca.Certificate())
	ie.tlsb = httptest.NewUnstartedServer(backendHandler(&e.hits, extra))
	ie.tlsb.Config.ErrorLog = quietLog
	ie.tlsb.EnableHTTP2 = true
	ie.tlsb.StartTLS()
	ie.tlsPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ie.tlsb.Certificate().Raw}))
	ie.backend = ie.tlsb.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(ie.backend)
	ie.origin = "https://example.com:" + port
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		e.ts.Close()
		ie.tlsb.Close()
	})
	return ie
}

// session creates a session that trusts the backend and reaches it as
// example.com; extra is more JSON fields ("" for none).
func (ie *ienv) session(extra string) string {
	ie.t.Helper()
	_, port, _ := net.SplitHostPort(ie.backend)
	cfg := map[string]any{
		"caCerts":   ie.tlsPEM,
		"connectTo": map[string]string{"example.com:" + port: ie.backend},
	}
	if extra != "" {
		if err := json.Unmarshal([]byte(extra), &cfg); err != nil {
			ie.t.Fatal(err)
		}
	}
	return ie.create(jsonBody(ie.t, cfg))
}

// client is a Go client through the daemon that trusts roots (the roster
// CA when nil), HTTP/2 to the daemon when it can, redirects not followed.
func (ie *ienv) client(id string, roots *x509.CertPool) *http.Client {
	if roots == nil {
		roots = ie.pool
	}
	tr := ie.proxyTransport(id, token)
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	tr.ForceAttemptHTTP2 = true
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func presetHeader(t *testing.T, name, key string) string {
	t.Helper()
	p, err := preset.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	p.Apply(h)
	return h.Get(key)
}

// Over HTTP/2 both ways, the session's cookies, headers and redirects
// (passed back, not followed) apply to https.
func TestInterceptGoClientHTTP2(t *testing.T) {
	ie := newInterceptEnv(t, map[string]http.HandlerFunc{"/proto": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}}, nil)
	id := ie.session("")
	c := ie.client(id, nil)

	resp, err := c.Get(ie.origin + "/cookies/set?k=v")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("cookies/set: status %d, want the 302 passed back", resp.StatusCode)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Fatalf("client to rosterd: %s, want HTTP/2.0", resp.Proto)
	}
	if issuer := resp.TLS.PeerCertificates[0].Issuer.CommonName; issuer != daemon.CAName {
		t.Fatalf("leaf issued by %q, want %q", issuer, daemon.CAName)
	}
	// The Go client has no cookie jar: the cookie comes from the session.
	if got := cookiesVia(t, c, ie.origin+"/cookies"); got["k"] != "v" {
		t.Fatalf("cookies %v, want k=v from the session's jar", got)
	}
	if _, b, _ := get(t, c, ie.origin+"/proto", nil); string(b) != "HTTP/2.0" {
		t.Fatalf("rosterd to the backend: %s, want HTTP/2.0", b)
	}
	_, b, _ := get(t, c, ie.origin+"/whoami", http.Header{"X-Mine": {"1"}})
	var who whoami
	if err := json.Unmarshal(b, &who); err != nil {
		t.Fatal(err)
	}
	if want := presetHeader(t, "chrome-latest", "User-Agent"); who.UserAgent != want || want == "" {
		t.Fatalf("User-Agent %q, want the preset's %q", who.UserAgent, want)
	}
	if who.Headers.Get("X-Mine") != "1" || who.Headers.Get("Proxy-Authorization") != "" {
		t.Fatalf("headers %v: want the client's own, and no proxy credentials", who.Headers)
	}
	if want := presetHeader(t, "chrome-latest", "Sec-Ch-Ua"); want != "" && who.Headers.Get("Sec-Ch-Ua") != want {
		t.Fatalf("Sec-Ch-Ua %q, want the preset's %q", who.Headers.Get("Sec-Ch-Ua"), want)
	}
	// The client hanging up ends the tunnel, which then stops counting.
	c.CloseIdleConnections()
	waitFor(t, "the HTTP/2 tunnel to end", func() bool { return ie.stats(id).InFlight == 0 })
}

// A session that opts out keeps the plain tunnel: the client talks TLS with
// the backend itself.
func TestInterceptOptOutAndSkip(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		skip        []string
		intercepted bool
	}{
		{"default", "", nil, true},
		{"opt-out", `{"intercept": false}`, nil, false},
		{"opt-in", `{"intercept": true}`, nil, true},
		{"skipped", "", []string{"*.test", "EXAMPLE.com"}, false},
		{"other skip", "", []string{"*.example.com"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ie := newInterceptEnv(t, nil, &daemon.InterceptOptions{Skip: tc.skip})
			id := ie.session(tc.extra)
			roots := ie.pool.Clone()
			roots.AppendCertsFromPEM([]byte(ie.tlsPEM))
			// A plain tunnel goes where the session's Dial goes: through
			// connectTo to the backend.
			resp, err := ie.client(id, roots).Get(ie.origin + "/get")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.TLS.PeerCertificates[0].Issuer.CommonName == daemon.CAName
			if got != tc.intercepted {
				t.Fatalf("intercepted = %v, want %v (issuer %q)", got, tc.intercepted, resp.TLS.PeerCertificates[0].Issuer)
			}
		})
	}
}

// A client whose SNI is skipped gets a plain tunnel even when the CONNECT
// target is an address: the ClientHello already read is replayed.
func TestInterceptSkipBySNI(t *testing.T) {
	ie := newInterceptEnv(t, nil, &daemon.InterceptOptions{Skip: []string{"example.com"}})
	id := ie.session("")
	c := openTunnel(t, ie.addr, ie.backend, id)
	defer c.Close()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(ie.tlsPEM))
	tc := tls.Client(c, &tls.Config{ServerName: "example.com", RootCAs: roots})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake through a skipped tunnel: %v", err)
	}
	if issuer := tc.ConnectionState().PeerCertificates[0].Issuer.CommonName; issuer == daemon.CAName {
		t.Fatal("a skipped SNI was intercepted")
	}
}

// A client that does not trust the CA fails its handshake, and nothing
// reaches the backend.
func TestInterceptUntrustedClientFails(t *testing.T) {
	ie := newInterceptEnv(t, nil, nil)
	id := ie.session("")
	_, err := ie.client(id, x509.NewCertPool()).Get(ie.origin + "/get")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("untrusting client: %v, want x509.UnknownAuthorityError", err)
	}
	if n := ie.hits.Load(); n != 0 {
		t.Fatalf("the backend saw %d requests", n)
	}
	waitFor(t, "no request in flight", func() bool { return ie.srv.Manager().Stats().InFlight == 0 })
}

// Responses stream through an intercepted tunnel.
func TestInterceptStreaming(t *testing.T) {
	release := make(chan struct{})
	ie := newInterceptEnv(t, map[string]http.HandlerFunc{"/stream": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	}}, nil)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	id := ie.session("")
	resp, err := ie.client(id, nil).Get(ie.origin + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "first\n" {
			t.Fatalf("first chunk %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first chunk did not arrive before the backend finished: the tunnel buffers")
	}
	close(release)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// An intercepted tunnel counts in flight while it is open, keeps its session
// from eviction, and closing the session cuts it, idle or busy.
func TestInterceptTunnelLifetime(t *testing.T) {
	started := make(chan struct{}, 1)
	ie := newInterceptEnv(t, map[string]http.HandlerFunc{"/hang": func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}}, nil)
	id := ie.session("")
	c := ie.client(id, nil)
	if code, _, _ := get(t, c, ie.origin+"/get", nil); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	// The keep-alive tunnel is open and idle.
	waitFor(t, "the tunnel to count", func() bool { return ie.stats(id).InFlight == 1 })
	ie.clock.Advance(10 * time.Minute)
	if n := ie.srv.Manager().Sweep(); n != 0 {
		t.Fatalf("Sweep evicted %d sessions with an open tunnel", n)
	}
	resp, err := c.Get(ie.origin + "/hang")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	if code, _ := ie.call(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a request in an intercepted tunnel outlived its session")
	}
	waitFor(t, "no request in flight", func() bool { return ie.srv.Manager().Stats().InFlight == 0 })
	// The tunnel itself is gone: the next request needs a new one, which
	// the closed session cannot have.
	if _, err := c.Get(ie.origin + "/get"); err == nil {
		t.Fatal("a request went through the tunnel of a deleted session")
	}
}

// Bytes that are not TLS pass through raw: plain HTTP inside CONNECT, and a
// protocol in which the server speaks first.
func TestInterceptPassesNonTLSThrough(t *testing.T) {
	ie := newInterceptEnv(t, nil, &daemon.InterceptOptions{PeekTimeout: time.Millisecond})
	id := ie.session("")
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "plain "+r.Header.Get("User-Agent"))
	}))
	defer plain.Close()
	c := openTunnel(t, ie.addr, plain.Listener.Addr().String(), id)
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: raw\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "plain raw" {
		t.Fatalf("body %q: want the client's bytes passed unchanged", b)
	}

	// The server speaks first; the client waits for it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = io.WriteString(s, "220 hello\r\n")
		_, _ = io.Copy(s, s)
	}()
	c2 := openTunnel(t, ie.addr, ln.Addr().String(), id)
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c2).ReadString('\n')
	if err != nil || line != "220 hello\r\n" {
		t.Fatalf("banner %q, %v", line, err)
	}
}

// A WebSocket upgrade inside an intercepted tunnel goes to the server as
// the session's (its browser's handshake headers, its cookies), with the
// client's Sec-WebSocket-*, and the connection is spliced after.
func TestInterceptWebSocket(t *testing.T) {
	var sawCookie atomic.Value
	ie := newInterceptEnv(t, map[string]http.HandlerFunc{"/ws": func(w http.ResponseWriter, r *http.Request) {
		sawCookie.Store(r.Header.Get("Cookie") + "|" + r.Header.Get("Sec-WebSocket-Key") + "|" + r.Header.Get("User-Agent") + "|" + r.Header.Get("Pragma"))
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_, _ = io.Copy(c, brw) // echo
	}}, nil)
	id := ie.session("")
	setter := ie.client(id, nil)
	get(t, setter, ie.origin+"/cookies/set?ws=1", nil)
	setter.CloseIdleConnections()

	tc := ie.tlsTunnel(t, id)
	if _, err := io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: example.com\r\nUser-Agent: ws-client\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	if _, err := io.WriteString(tc, "ping"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(br, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo %q, %v", b, err)
	}
	p, _ := preset.Lookup(protocol.DefaultPreset)
	ua := ""
	for _, h := range p.Headers {
		if h.Name == "User-Agent" {
			ua = h.Value
		}
	}
	if got, want := sawCookie.Load(), "ws=1|abc|"+ua+"|no-cache"; got != want {
		t.Fatalf("server saw %q, want %q: the session's cookie, the client's key, the preset's handshake", got, want)
	}
	tc.Close()
	waitFor(t, "no request in flight", func() bool { return ie.stats(id).InFlight == 0 })
}

// GET /v1/ca.pem serves the CA's certificate, with the token only.
func TestCAPEMEndpoint(t *testing.T) {
	ie := newInterceptEnv(t, nil, nil)
	if code, _, _ := ie.api(http.MethodGet, "/v1/ca.pem", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	code, b := ie.call(http.MethodGet, "/v1/ca.pem", "")
	if code != http.StatusOK || string(b) != string(ie.ca.CertPEM()) {
		t.Fatalf("with the token: %d %q", code, b)
	}
	if strings.Contains(string(b), "PRIVATE") {
		t.Fatal("the CA key was served")
	}
	plain := newEnv(t, nil)
	if code, _ := plain.call(http.MethodGet, "/v1/ca.pem", ""); code != http.StatusNotFound {
		t.Fatalf("without interception: %d, want 404", code)
	}
}

// curl, as a user runs it: -x with the session in the proxy URL, --cacert
// with the printed path.
func TestInterceptCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	ie := newInterceptEnv(t, nil, nil)
	id := ie.session("")
	proxy := "http://" + id + ":" + token + "@" + ie.addr
	curl := func(args ...string) (string, error) {
		cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "20", "-x", proxy}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := curl("--cacert", ie.caPath, ie.origin+"/cookies/set?c=curl"); err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	out, err := curl("--cacert", ie.caPath, "--http2", "-w", "\n%{http_version}", ie.origin+"/headers")
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	body, version := out, ""
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		body, version = out[:i], out[i+1:]
	}
	if version != "2" {
		t.Fatalf("curl spoke HTTP %q to rosterd, want 2", version)
	}
	var hb struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &hb); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if ua := strings.Join(hb.Headers["User-Agent"], ","); ua != presetHeader(t, "chrome-latest", "User-Agent") {
		t.Fatalf("server saw User-Agent %q, want the preset's", ua)
	}
	if ck := strings.Join(hb.Headers["Cookie"], ","); ck != "c=curl" {
		t.Fatalf("server saw Cookie %q, want the session's c=curl", ck)
	}
	// Without --cacert: a TLS error (curl's exit code 60), nothing else.
	out, err = curl(ie.origin + "/get")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 60 {
		t.Fatalf("curl without the CA: %v, want exit code 60 (certificate problem): %s", err, out)
	}
}

// Python requests with verify= the CA: a requests.Session's cookies come
// back from the roster session, and the preset's headers show.
func TestInterceptPythonRequests(t *testing.T) {
	if err := exec.Command("python3", "-c", "import requests").Run(); err != nil {
		t.Skip("python3 with requests is not installed (Debian: python3-requests)")
	}
	ie := newInterceptEnv(t, nil, nil)
	id := ie.session("")
	script := `
import json, sys, requests
proxy, origin, ca = sys.argv[1:4]
s = requests.Session()
s.trust_env = False
s.proxies = {"https": proxy}
s.verify = ca
s.get(origin + "/cookies/set?py=1", timeout=20)
# A fresh client: only the roster session remembers the cookie.
r = requests.get(origin + "/headers", proxies={"https": proxy}, verify=ca, timeout=20)
print(json.dumps(r.json()))
try:
    requests.get(origin + "/get", proxies={"https": proxy}, verify=True, timeout=20)
    print("UNTRUSTED-OK")
except requests.exceptions.SSLError:
    print("SSLERROR")
`
	path := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", path, "http://"+id+":"+token+"@"+ie.addr, ie.origin, ie.caPath)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE=", "CURL_CA_BUNDLE=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[1] != "SSLERROR" {
		t.Fatalf("output %q: want the headers, then SSLERROR for the client that does not trust the CA", out)
	}
	var hb struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &hb); err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	if ua := strings.Join(hb.Headers["User-Agent"], ","); ua != presetHeader(t, "chrome-latest", "User-Agent") {
		t.Fatalf("server saw User-Agent %q, want the preset's, not python-requests", ua)
	}
	if ck := strings.Join(hb.Headers["Cookie"], ","); ck != "py=1" {
		t.Fatalf("server saw Cookie %q, want py=1 from the session", ck)
	}
}

// testLogOut receives the intercepting daemons' debug logs; os.Stderr to see them.
var testLogOut io.Writer = io.Discard

// Through interception the server sees the session's browser on the wire:
// the same JA4 and HTTP/2 fingerprint as the session's own Do, not the
// client's.
func TestInterceptWireIdentity(t *testing.T) {
	fp, err := fingerprint.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	ie := newInterceptEnv(t, nil, nil)
	u, _ := url.Parse(fp.URL())
	cfg := jsonBody(t, map[string]any{"caCerts": string(fp.CertPEM()), "connectTo": map[string]string{u.Host: fp.Addr()}})
	id := ie.create(cfg)
	sess, err := ie.srv.Manager().GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sess.Get(context.Background(), fp.URL()+"direct")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	direct, _ := fp.Last()

	roots := ie.pool.Clone()
	roots.AppendCertsFromPEM(fp.CertPEM())
	c := ie.client(id, roots)
	if code, b, _ := get(t, c, fp.URL()+"proxied", nil); code != http.StatusOK {
		t.Fatalf("through rosterd: %d %s", code, b)
	}
	proxied, _ := fp.Last()
	if proxied.Path != "/proxied" || direct.Path != "/direct" {
		t.Fatalf("paths %q %q", direct.Path, proxied.Path)
	}
	if proxied.TLS.JA4 != direct.TLS.JA4 || proxied.TLS.JA4 == "" {
		t.Fatalf("JA4 through rosterd %q, the session's own %q", proxied.TLS.JA4, direct.TLS.JA4)
	}
	if proxied.HTTP2 == nil || direct.HTTP2 == nil || proxied.HTTP2.Akamai != direct.HTTP2.Akamai {
		t.Fatalf("HTTP/2 through rosterd %+v, the session's own %+v", proxied.HTTP2, direct.HTTP2)
	}

	// The same client through a plain tunnel shows its own TLS.
	plainID := ie.create(cfg[:len(cfg)-2] + `,"intercept":false}`)
	pc := ie.client(plainID, roots)
	if code, b, _ := get(t, pc, fp.URL()+"plain", nil); code != http.StatusOK {
		t.Fatalf("through a plain tunnel: %d %s", code, b)
	}
	plain, _ := fp.Last()
	if plain.TLS.JA4 == direct.TLS.JA4 {
		t.Fatalf("a Go client shows the browser's JA4 %q: the check proves nothing", plain.TLS.JA4)
	}
	pc.CloseIdleConnections()
	c.CloseIdleConnections()
}

// The client's own identity headers give way to the preset's, and the
// session's cookies to the client's of the same name.
func TestInterceptHeaderMerge(t *testing.T) {
	ie := newInterceptEnv(t, nil, nil)
	id := ie.session("")
	c := ie.client(id, nil)
	get(t, c, ie.origin+"/cookies/set?k=session", nil)
	_, b, _ := get(t, c, ie.origin+"/whoami", http.Header{
		"Accept":          {"*/*"},
		"Accept-Encoding": {"identity"},
		"Cookie":          {"k=client; mine=1"},
		"User-Agent":      {"python-requests/2.34.2"},
	})
	var who whoami
	if err := json.Unmarshal(b, &who); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"User-Agent", "Accept", "Accept-Encoding"} {
		if got, want := who.Headers.Get(k), presetHeader(t, "chrome-latest", k); got != want {
			t.Errorf("%s %q, want the preset's %q", k, got, want)
		}
	}
	if got := strings.Join(who.Headers.Values("Cookie"), "; "); got != "mine=1; k=session" {
		t.Errorf("Cookie %q, want the client's mine=1 and the session's k", got)
	}
	// An Accept the client means stays.
	_, b, _ = get(t, c, ie.origin+"/whoami", http.Header{"Accept": {"application/json"}})
	if err := json.Unmarshal(b, &who); err != nil {
		t.Fatal(err)
	}
	if got := who.Headers.Get("Accept"); got != "application/json" {
		t.Errorf("Accept %q, want the client's application/json", got)
	}
}

// Interception is for authenticated clients of live sessions only: the
// others get the proxy's refusal, before any TLS.
func TestInterceptNeedsAuth(t *testing.T) {
	ie := newInterceptEnv(t, nil, nil)
	id := ie.session("")
	_, port, _ := net.SplitHostPort(ie.backend)
	target := "example.com:" + port
	for _, tc := range []struct{ user, pw, want string }{
		{id, "wrong", "HTTP/1.1 407 "},
		{"", "", "HTTP/1.1 407 "},
		{"01JNZ5V6X0AAAAAAAAAAAAAAAA", token, "HTTP/1.1 404 "},
	} {
		if head := rawConnect(t, ie.addr, target, tc.user, tc.pw); !strings.HasPrefix(head, tc.want) {
			t.Errorf("CONNECT as %q:%q: %q, want %s", tc.user, tc.pw, head, tc.want)
		}
	}
	if daemon.CachedLeaves(ie.ca) != 0 {
		t.Fatalf("%d leaves minted for refused clients", daemon.CachedLeaves(ie.ca))
	}
}

// A WebSocket upgrade the server refuses comes back to the client as the
// server answered it, one that carries a body too (sent without it), and
// the request ends.
func TestInterceptWebSocketRefused(t *testing.T) {
	ie := newInterceptEnv(t, map[string]http.HandlerFunc{"/ws": func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no sockets here", http.StatusForbidden)
	}}, nil)
	id := ie.session("")
	for _, head := range []string{
		"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"POST /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nhi",
	} {
		tc := ie.tlsTunnel(t, id)
		if _, err := io.WriteString(tc, head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "no sockets here") {
			t.Fatalf("%.20q: %d %q, want the server's 403", head, resp.StatusCode, b)
		}
		tc.Close()
		waitFor(t, "no request in flight", func() bool { return ie.stats(id).InFlight == 0 })
	}
}

// tlsTunnel opens a tunnel for session id to the backend under the name
// example.com and speaks TLS in it (http/1.1, rosterd's CA trusted), with
// ten seconds for the test.
func (ie *ienv) tlsTunnel(t *testing.T, id string) *tls.Conn {
	t.Helper()
	_, port, _ := net.SplitHostPort(ie.backend)
	c := openTunnel(t, ie.addr, "example.com:"+port, id)
	t.Cleanup(func() { c.Close() })
	tc := tls.Client(c, &tls.Config{ServerName: "example.com", RootCAs: ie.pool, NextProtos: []string{"http/1.1"}})
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc
}
