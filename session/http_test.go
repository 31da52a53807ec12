package session

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/quic-go/quic-go/http3"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
)

// newHTTPBin starts a go-httpbin on 127.0.0.1, plain and with TLS (HTTP/2
// on), and returns both with the PEM of the TLS server's certificate.
func newHTTPBin(t *testing.T) (plain, secure *httptest.Server, caPEM string) {
	t.Helper()
	h := httpbin.New()
	plain = httptest.NewServer(h)
	t.Cleanup(plain.Close)
	secure = httptest.NewUnstartedServer(h)
	secure.EnableHTTP2 = true
	secure.StartTLS()
	t.Cleanup(secure.Close)
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}))
	return plain, secure, caPEM
}

func get(t *testing.T, s *Session, u string) (*http.Response, string) {
	t.Helper()
	resp, err := s.Get(context.Background(), u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}
	return resp, string(b)
}

func newSessionFor(t *testing.T, m *Manager, cfg *protocol.SessionConfig) *Session {
	t.Helper()
	id, err := m.CreateSession(cfg)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	s, err := m.GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCookiesPerSession(t *testing.T) {
	srv, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	a := newSessionFor(t, m, nil)
	b := newSessionFor(t, m, nil)
	get(t, a, srv.URL+"/cookies/set?who=a&n=1")
	get(t, b, srv.URL+"/cookies/set?who=b")

	var seen struct{ Cookies map[string]string }
	_, body := get(t, a, srv.URL+"/cookies")
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatal(err)
	}
	if seen.Cookies["who"] != "a" || seen.Cookies["n"] != "1" || len(seen.Cookies) != 2 {
		t.Errorf("session a sent %v", seen.Cookies)
	}
	_, body = get(t, b, srv.URL+"/cookies")
	seen.Cookies = nil
	_ = json.Unmarshal([]byte(body), &seen)
	if seen.Cookies["who"] != "b" || len(seen.Cookies) != 1 {
		t.Errorf("session b sent %v", seen.Cookies)
	}
	if st := a.Stats(); st.CookieCount != 2 {
		t.Errorf("CookieCount = %d", st.CookieCount)
	}
	a.ClearCookies()
	if len(a.Cookies()) != 0 {
		t.Error("ClearCookies left cookies")
	}
	c := newSessionFor(t, m, &protocol.SessionConfig{WithoutCookieJar: true})
	get(t, c, srv.URL+"/cookies/set?x=1")
	if c.Cookies() != nil || c.SetCookies([]CookieState{{Name: "a"}}) == nil {
		t.Error("a session without a jar kept cookies")
	}
}

func TestPresetHeadersOnTheWire(t *testing.T) {
	srv, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	p, err := preset.Lookup("chrome-latest")
	if err != nil {
		t.Fatal(err)
	}
	s := newSessionFor(t, m, &protocol.SessionConfig{Headers: map[string]string{"X-Session": "s1", "Accept-Language": "de-DE"}})

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/headers", nil)
	req.Header.Set("X-Session", "request wins")
	resp, err := s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Headers map[string][]string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	h := http.Header(got.Headers)
	for _, ph := range p.Headers {
		name := http.CanonicalHeaderKey(ph.Name)
		if name == "Accept-Language" {
			continue
		}
		if slices.Contains(p.OmitOnHTTP1, strings.ToLower(name)) { // this is HTTP/1.1
			if v := h.Get(name); v != "" {
				t.Errorf("%s = %q on HTTP/1.1, which the browser sends only over HTTP/2", name, v)
			}
			continue
		}
		if h.Get(name) != ph.Value {
			t.Errorf("%s = %q on the wire, want the preset's %q", name, h.Get(name), ph.Value)
		}
	}
	if h.Get("Accept-Language") != "de-DE" {
		t.Errorf("config header lost to the preset: %q", h.Get("Accept-Language"))
	}
	if h.Get("X-Session") != "request wins" {
		t.Errorf("request header lost: %q", h.Get("X-Session"))
	}
	if req.Header.Get("User-Agent") != "" {
		t.Error("Do modified the caller's request headers")
	}
}

func TestUnknownPreset(t *testing.T) {
	m, _ := newTestManager(t)
	_, err := m.CreateSession(&protocol.SessionConfig{Preset: "netscape-4"})
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, preset.ErrUnknownPreset) {
		t.Fatalf("unknown preset: %v", err)
	}
	if !strings.Contains(err.Error(), "chrome-latest") {
		t.Errorf("error does not list the known presets: %v", err)
	}
	if m.SessionCount() != 0 || m.Stats().Created != 0 {
		t.Error("a failed create left a session")
	}
	if _, err := m.CreateSession(nil); err != nil {
		t.Errorf("slot not given back: %v", err)
	}
}

func TestContentCodings(t *testing.T) {
	srv, _, _ := newHTTPBin(t)
	// go-httpbin serves gzip and deflate; br and zstd come from here.
	coded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		coding := strings.TrimPrefix(r.URL.Path, "/")
		if !strings.Contains(r.Header.Get("Accept-Encoding"), coding) {
			http.Error(w, "not accepted: "+coding, http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Encoding", coding)
		var enc io.WriteCloser
		switch coding {
		case "br":
			enc = brotli.NewWriter(w)
		case "zstd":
			zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Error(err)
				return
			}
			enc = zw
		}
		_, _ = io.WriteString(enc, `{"coding": "`+coding+`"}`)
		_ = enc.Close()
	}))
	defer coded.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, nil)
	for _, u := range []string{srv.URL + "/gzip", srv.URL + "/deflate", coded.URL + "/br", coded.URL + "/zstd"} {
		t.Run(u[strings.LastIndex(u, "/")+1:], func(t *testing.T) {
			resp, body := get(t, s, u)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("body is not decoded JSON: %v: %.60q", err, body)
			}
			if ce := resp.Header.Get("Content-Encoding"); ce != "" || !resp.Uncompressed {
				t.Errorf("Content-Encoding %q, Uncompressed %v after decoding", ce, resp.Uncompressed)
			}
		})
	}
	// A request that asks for an encoding itself gets the raw body.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/gzip", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("explicit Accept-Encoding: body decoded anyway")
	}
}

func TestRedirects(t *testing.T) {
	srv, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	off := false
	tests := []struct {
		name   string
		cfg    *protocol.SessionConfig
		path   string
		status int
		err    string
	}{
		{"default follows", nil, "/redirect/5", 200, ""},
		{"ten allowed", nil, "/redirect/10", 200, ""},
		{"eleven refused", nil, "/redirect/11", 0, "stopped after 10 redirects"},
		{"off", &protocol.SessionConfig{FollowRedirects: &off}, "/redirect/1", 302, ""},
		{"max 2", &protocol.SessionConfig{MaxRedirects: 2}, "/redirect/3", 0, "stopped after 2 redirects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSessionFor(t, m, tt.cfg)
			resp, err := s.Get(context.Background(), srv.URL+tt.path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// counting wraps a handler and counts the requests it sees.
func counting(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	})
}

func TestRetries(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(counting(httpbin.New(), &hits))
	defer srv.Close()
	m, _ := newTestManager(t)

	retrying := &protocol.SessionConfig{RetryEnabled: true, MaxRetries: 2, RetryWaitMin: 1, RetryWaitMax: 5}
	tests := []struct {
		name   string
		cfg    *protocol.SessionConfig
		method string
		path   string
		body   io.Reader
		hits   int64
		status int
	}{
		{"off by default", nil, "GET", "/status/503", nil, 1, 503},
		{"503 retried", retrying, "GET", "/status/503", nil, 3, 503},
		{"404 not retried", retrying, "GET", "/status/404", nil, 1, 404},
		{"replayable body retried", retrying, "POST", "/status/502", strings.NewReader("x"), 3, 502},
		{"one-shot body not retried", retrying, "POST", "/status/502", io.NopCloser(strings.NewReader("x")), 1, 502},
		{"own list", &protocol.SessionConfig{RetryEnabled: true, MaxRetries: 1, RetryWaitMin: 1, RetryOnStatus: []int{418}}, "GET", "/status/418", nil, 2, 418},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSessionFor(t, m, tt.cfg)
			hits.Store(0)
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, tt.body)
			resp, err := s.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || hits.Load() != tt.hits {
				t.Errorf("status %d after %d requests, want %d after %d", resp.StatusCode, hits.Load(), tt.status, tt.hits)
			}
		})
	}
}

func TestRetryAfterAndContext(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{RetryEnabled: true, RetryWaitMin: 1, RetryWaitMax: 2})

	// Retry-After asks for a second; a context of 100 ms ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Get(ctx, srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("retry past the context: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d requests, want 1", hits.Load())
	}
	// With time enough, the retry waits the second out and succeeds.
	hits.Store(0)
	start := time.Now()
	resp, body := get(t, s, srv.URL)
	if resp.StatusCode != 200 || body != "ok" || hits.Load() != 2 {
		t.Fatalf("status %d body %q after %d requests", resp.StatusCode, body, hits.Load())
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("Retry-After: 1 honoured with a wait of only %v", waited)
	}
}

func TestBaseURLAndTimeout(t *testing.T) {
	srv, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{BaseURL: srv.URL + "/anything/", Timeout: 200})
	_, body := get(t, s, "sub/path?q=1")
	if !strings.Contains(body, `"url": "`+srv.URL+`/anything/sub/path?q=1"`) && !strings.Contains(body, `/anything/sub/path?q=1"`) {
		t.Errorf("relative URL not resolved against BaseURL: %s", body)
	}
	_, err := s.Get(context.Background(), srv.URL+"/delay/2")
	if err == nil || !strings.Contains(err.Error(), "Timeout") && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request past the session's Timeout: %v", err)
	}
}

func TestProtocols(t *testing.T) {
	_, srv, caPEM := newHTTPBin(t)
	m, _ := newTestManager(t)
	tests := []struct {
		name  string
		cfg   *protocol.SessionConfig
		major int
		err   bool
	}{
		{"untrusted", nil, 0, true},
		{"CA certs", &protocol.SessionConfig{CACerts: caPEM}, 2, false},
		{"insecure", &protocol.SessionConfig{InsecureSkipVerify: true}, 2, false},
		{"force HTTP/1", &protocol.SessionConfig{CACerts: caPEM, ForceHTTP1: true}, 1, false},
		{"force HTTP/2", &protocol.SessionConfig{CACerts: caPEM, ForceHTTP2: true}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSessionFor(t, m, tt.cfg)
			resp, err := s.Get(context.Background(), srv.URL+"/get")
			if tt.err {
				if err == nil {
					resp.Body.Close()
					t.Fatal("request to an untrusted server succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != tt.major {
				t.Errorf("protocol %s, want major %d", resp.Proto, tt.major)
			}
		})
	}
}

func TestDialOptions(t *testing.T) {
	var remotes sync.Map
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remotes.Store(r.RemoteAddr, true)
		_, _ = fmt.Fprintf(w, "%s %s", r.Host, r.RemoteAddr)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	m, _ := newTestManager(t)

	// ConnectTo dials the server for a host that does not resolve; the
	// request keeps its Host.
	s := newSessionFor(t, m, &protocol.SessionConfig{ConnectTo: map[string]string{"example.invalid:80": addr}, LocalAddress: "127.0.0.1", PreferIPv4: true})
	_, body := get(t, s, "http://example.invalid/")
	if !strings.HasPrefix(body, "example.invalid 127.0.0.1:") {
		t.Errorf("ConnectTo/LocalAddress: server saw %q", body)
	}

	// Keep-alive reuses one connection; DisableKeepAlives makes one each.
	for _, tt := range []struct {
		off  bool
		want int64
	}{{false, 1}, {true, 3}} {
		s := newSessionFor(t, m, &protocol.SessionConfig{DisableKeepAlives: tt.off})
		conns.Store(0)
		for range 3 {
			get(t, s, srv.URL)
		}
		if conns.Load() != tt.want {
			t.Errorf("DisableKeepAlives=%v: %d connections for 3 requests, want %d", tt.off, conns.Load(), tt.want)
		}
	}

	// Two sessions never share a connection.
	a, b := newSessionFor(t, m, nil), newSessionFor(t, m, nil)
	conns.Store(0)
	get(t, a, srv.URL)
	get(t, b, srv.URL)
	get(t, a, srv.URL)
	if conns.Load() != 2 {
		t.Errorf("%d connections for two sessions, want 2", conns.Load())
	}
}

func TestProxies(t *testing.T) {
	plain, secure, caPEM := newHTTPBin(t)
	httpProxy := newTestProxy(t, "u", "p@ss", false)
	tlsProxy := newTestProxy(t, "u", "p", true)
	socks := newTestSOCKS5(t, "sock", "s3cret")
	// Made last, so shut down first: the proxies' Close waits for the
	// tunnels that the sessions' connections hold open.
	m, _ := newTestManager(t)
	proxyCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsProxy.Certificate().Raw}))

	tests := []struct {
		name    string
		proxy   string
		target  string
		counter func() int64
	}{
		{"http proxy, http target", "http://u:p%40ss@" + httpProxy.Listener.Addr().String(), plain.URL, httpProxy.requests.Load},
		{"http proxy, https target", "http://u:p%40ss@" + httpProxy.Listener.Addr().String(), secure.URL, httpProxy.tunnels.Load},
		{"https proxy", "https://u:p@" + tlsProxy.Listener.Addr().String(), plain.URL, tlsProxy.requests.Load},
		{"socks5", "socks5://sock:s3cret@" + socks.Addr(), secure.URL, socks.conns.Load},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSessionFor(t, m, &protocol.SessionConfig{Proxy: tt.proxy, CACerts: caPEM + proxyCA})
			before := tt.counter()
			tunnels := httpProxy.tunnels.Load() + tlsProxy.tunnels.Load()
			resp, _ := get(t, s, tt.target+"/get")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d through %s", resp.StatusCode, tt.name)
			}
			if tt.counter() != before+1 {
				t.Errorf("the proxy did not carry the request")
			}
			// An http:// target goes to an HTTP(S) proxy as an
			// absolute-form request, never as a tunnel to the proxy
			// itself (which proxies refuse to non-TLS ports).
			if now := httpProxy.tunnels.Load() + tlsProxy.tunnels.Load(); tt.target == plain.URL && now != tunnels {
				t.Errorf("an http:// request opened %d CONNECT tunnels", now-tunnels)
			}
		})
	}

	t.Run("wrong credentials", func(t *testing.T) {
		s := newSessionFor(t, m, &protocol.SessionConfig{Proxy: "http://u:wrong@" + httpProxy.Listener.Addr().String()})
		resp, _ := get(t, s, plain.URL+"/get")
		if resp.StatusCode != http.StatusProxyAuthRequired {
			t.Errorf("status %d, want 407", resp.StatusCode)
		}
		s2 := newSessionFor(t, m, &protocol.SessionConfig{Proxy: "socks5://sock:wrong@" + socks.Addr()})
		if _, err := s2.Get(context.Background(), plain.URL+"/get"); err == nil {
			t.Error("SOCKS5 with wrong credentials succeeded")
		}
	})

	t.Run("SetProxy", func(t *testing.T) {
		s := newSessionFor(t, m, nil)
		get(t, s, plain.URL+"/get") // a direct connection, now idle
		before := httpProxy.requests.Load()
		if err := s.SetProxy("http://u:p%40ss@" + httpProxy.Listener.Addr().String()); err != nil {
			t.Fatal(err)
		}
		get(t, s, plain.URL+"/get")
		if httpProxy.requests.Load() != before+1 {
			t.Error("request after SetProxy did not go through the new proxy")
		}
		if got := s.Config().Proxy; !strings.Contains(got, httpProxy.Listener.Addr().String()) {
			t.Errorf("Config().Proxy = %q", got)
		}
		if err := s.SetProxy(""); err != nil {
			t.Fatal(err)
		}
		get(t, s, plain.URL+"/get")
		if httpProxy.requests.Load() != before+1 {
			t.Error("request after SetProxy(\"\") went through the proxy")
		}
		if err := s.SetProxy("ftp://x:1"); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("SetProxy(ftp): %v", err)
		}
	})
}

// serveHTTP3 serves h over HTTP/3 on a UDP port of 127.0.0.1 with certs
// until the test ends, and returns the address.
func serveHTTP3(t *testing.T, certs []tls.Certificate, h http.Handler) *net.UDPAddr {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: certs})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(udp) }()
	t.Cleanup(func() {
		_ = srv.Close()
		udp.Close()
		<-served
	})
	return udp.LocalAddr().(*net.UDPAddr)
}

func TestHTTP3(t *testing.T) {
	_, tcpSrv, caPEM := newHTTPBin(t)
	h3 := serveHTTP3(t, tcpSrv.TLS.Certificates, httpbin.New())
	h3URL := "https://" + h3.String()
	m, _ := newTestManager(t)

	// HTTP/3 is Go's stack: a fingerprinted preset refuses it.
	if _, err := m.CreateSession(&protocol.SessionConfig{ForceHTTP3: true}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("ForceHTTP3 with the fingerprinted default preset: %v, want ErrInvalidConfig", err)
	}
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go", CACerts: caPEM, ForceHTTP3: true})
	resp, body := get(t, s, h3URL+"/get")
	if resp.ProtoMajor != 3 || !strings.Contains(body, `"url"`) {
		t.Fatalf("ForceHTTP3: %s, %.80q", resp.Proto, body)
	}

	// Alt-Svc: a TCP response that advertises h3 moves the origin over.
	alt := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", `h3=":`+fmt.Sprint(h3.Port)+`"; ma=60`)
		_, _ = io.WriteString(w, "tcp")
	}))
	alt.TLS = &tls.Config{Certificates: tcpSrv.TLS.Certificates}
	alt.StartTLS()
	defer alt.Close()
	altURL := "https://" + alt.Listener.Addr().String()
	s2 := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go", CACerts: caPEM})
	resp, _ = get(t, s2, altURL+"/get")
	if resp.ProtoMajor == 3 {
		t.Fatal("first request used HTTP/3 before any advertisement")
	}
	// The advertised UDP port differs from the TCP one, and Alt-Svc with
	// only a port means the same host: the request goes to the h3 server.
	h := s2.hs.Load()
	u, _ := url.Parse(altURL)
	if !h.useHTTP3(u) {
		t.Fatal("Alt-Svc h3 not recorded")
	}
	s3 := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go", CACerts: caPEM, DisableHTTP3: true})
	get(t, s3, altURL+"/get")
	if s3.hs.Load().useHTTP3(u) {
		t.Error("DisableHTTP3 session would use HTTP/3")
	}
	// A fingerprinted session stays on TCP whatever the server advertises.
	s4 := newSessionFor(t, m, &protocol.SessionConfig{CACerts: caPEM})
	get(t, s4, altURL+"/get")
	if resp, _ := get(t, s4, altURL+"/get"); resp.ProtoMajor == 3 || s4.hs.Load().useHTTP3(u) {
		t.Error("a fingerprinted session would use HTTP/3 after Alt-Svc")
	}

	// Sessions closed while requests race to start on them leave no QUIC
	// transport behind (goleak in TestMain sees its goroutines).
	for range 20 {
		s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go", CACerts: caPEM, ForceHTTP3: true})
		get(t, s, h3URL+"/get")
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if resp, err := s.Get(context.Background(), h3URL+"/get"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		_ = s.Close()
		wg.Wait()
	}
}

// TestInFlightEndToEnd: a session whose request lasts longer than the idle
// timeout is not evicted under it; Close cancels a request in flight with
// an error that matches ErrSessionClosed.
func TestInFlightEndToEnd(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "head ")
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		select {
		case <-release:
			_, _ = io.WriteString(w, "tail")
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute))

	t.Run("not evicted", func(t *testing.T) {
		s := newSessionFor(t, m, nil)
		resp, err := s.Client().Get(srv.URL) // Client() counts like Do
		if err != nil {
			t.Fatal(err)
		}
		<-started
		if st := s.Stats(); st.InFlight != 1 || st.RequestCount != 1 {
			t.Fatalf("Stats during a request: %+v", st)
		}
		clk.Advance(time.Hour)
		if n := m.Sweep(); n != 0 {
			t.Fatalf("swept %d sessions with a request in flight", n)
		}
		release <- struct{}{}
		b, _ := io.ReadAll(resp.Body) // read to EOF ends the request
		if string(b) != "head tail" {
			t.Fatalf("body %q", b)
		}
		if st := s.Stats(); st.InFlight != 0 {
			t.Fatalf("InFlight = %d after EOF", st.InFlight)
		}
		resp.Body.Close()
		clk.Advance(2 * time.Minute)
		if n := m.Sweep(); n != 1 {
			t.Fatalf("swept %d after the request ended, want 1", n)
		}
	})

	t.Run("Close cancels", func(t *testing.T) {
		s := newSessionFor(t, m, nil)
		resp, err := s.Get(context.Background(), srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		<-started
		_ = s.Close()
		_, err = io.ReadAll(resp.Body)
		if !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("reading after Close: %v, want ErrSessionClosed", err)
		}
		resp.Body.Close()
		if _, err := s.Get(context.Background(), srv.URL); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("request on a closed session: %v", err)
		}
		if m.Stats().InFlight != 0 {
			t.Errorf("InFlight = %d after Close", m.Stats().InFlight)
		}
	})

	// Every way a request is tied to its session: the background context
	// (the session's own context serves), one of the caller's on Go's
	// stack (a child that the session's close cancels), and one of the
	// caller's on the fingerprinted session's own HTTP/1.1 client (which
	// aborts its connections when the session closes).
	type key struct{}
	withValue := context.WithValue(context.Background(), key{}, 1)
	for _, p := range []string{"go", "chrome-latest"} {
		for name, ctx := range map[string]context.Context{"background": context.Background(), "caller's": withValue} {
			t.Run("Close cancels before headers, "+p+", "+name+" context", func(t *testing.T) {
				hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					started <- struct{}{}
					<-r.Context().Done()
				}))
				defer hang.Close()
				s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p})
				errc := make(chan error)
				go func() {
					_, err := s.Get(ctx, hang.URL)
					errc <- err
				}()
				<-started
				_ = s.Close()
				if err := <-errc; !errors.Is(err, ErrSessionClosed) {
					t.Fatalf("request cancelled by Close: %v", err)
				}
			})
			t.Run("Close cancels the body, "+p+", "+name+" context", func(t *testing.T) {
				s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p})
				resp, err := s.Get(ctx, srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				<-started
				_ = s.Close()
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if !errors.Is(err, ErrSessionClosed) {
					t.Fatalf("reading after Close: %v, want ErrSessionClosed", err)
				}
			})
		}
	}
}

func TestSaveAndRestore(t *testing.T) {
	_, srv, caPEM := newHTTPBin(t)
	m, _ := newTestManager(t)
	cfg := &protocol.SessionConfig{CACerts: caPEM, Preset: "chrome-latest", Headers: map[string]string{"X-A": "1"}}
	if err := m.CreateSessionWithID("keeper", cfg); err != nil {
		t.Fatal(err)
	}
	s, _ := m.GetSession("keeper")
	get(t, s, srv.URL+"/cookies/set?k=v&other=2")
	resp, _ := get(t, s, srv.URL+"/get")
	if resp.TLS == nil {
		t.Fatal("no TLS")
	}
	path := filepath.Join(t.TempDir(), "keeper.json")
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var st SessionState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != 1 || st.ID != "keeper" || len(st.Cookies) != 2 || len(st.TLSSessions) == 0 {
		t.Fatalf("state: version %d id %q %d cookies %d TLS sessions", st.Version, st.ID, len(st.Cookies), len(st.TLSSessions))
	}

	// Restoring under a live ID fails; after the session is gone it works.
	if _, err := m.RestoreSession(data); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("restore over a live session: %v", err)
	}
	_ = s.Close()
	id, err := m.RestoreSession(data)
	if err != nil || id != "keeper" {
		t.Fatalf("RestoreSession = %q, %v", id, err)
	}
	r, _ := m.GetSession(id)
	if r == s {
		t.Fatal("restore returned the old session")
	}
	_, body := get(t, r, srv.URL+"/cookies")
	if !strings.Contains(body, `"k": "v"`) && !strings.Contains(body, `"k":"v"`) {
		t.Errorf("restored session sent %s", body)
	}
	resp, _ = get(t, r, srv.URL+"/get")
	if resp.TLS == nil || !resp.TLS.DidResume {
		t.Error("restored session did not resume TLS")
	}
	if r.Config().Headers["X-A"] != "1" {
		t.Errorf("config not restored: %+v", r.Config())
	}

	loaded, err := LoadSession(path)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if loaded.ID() != "keeper" || len(loaded.Cookies()) != 2 {
		t.Errorf("LoadSession: %q with %d cookies", loaded.ID(), len(loaded.Cookies()))
	}
	_, body = get(t, loaded, srv.URL+"/cookies") // a standalone session works too
	if !strings.Contains(body, "other") {
		t.Errorf("loaded session sent %s", body)
	}
}

func TestUnmarshalSessionErrors(t *testing.T) {
	good := `{"version":1,"id":"x","createdAt":"2026-01-01T00:00:00Z","lastUsed":"2026-01-01T00:00:00Z","requestCount":0}`
	tests := []struct{ name, data, want string }{
		{"empty", ``, "invalid session state"},
		{"truncated", good[:30], "unexpected end"},
		{"not JSON", `hello`, "invalid"},
		{"no version", `{"id":"x"}`, "no version"},
		{"future version", `{"version":2,"id":"x"}`, "version 2, this build reads version 1"},
		{"bad ID", strings.Replace(good, `"id":"x"`, `"id":"a b"`, 1), "invalid session ID"},
		{"unknown field", strings.Replace(good, `"requestCount":0`, `"requestCount":0,"extra":1`, 1), "unknown field"},
		{"bad config", strings.Replace(good, `"id":"x"`, `"id":"x","config":{"timeout":-1}`, 1), "timeout -1"},
		{"unknown preset", strings.Replace(good, `"id":"x"`, `"id":"x","config":{"preset":"mosaic-1"}`, 1), "unknown preset"},
		{"bad cookie", strings.Replace(good, `"id":"x"`, `"id":"x","cookies":[{"name":"","value":"v","domain":"a.com","path":"/"}]`, 1), "cookies[0]"},
		{"bad ticket", strings.Replace(good, `"id":"x"`, `"id":"x","tlsSessions":[{"key":"a","ticket":"AA==","state":"AA=="}]`, 1), "tlsSessions[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := UnmarshalSession([]byte(tt.data))
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	s, err := UnmarshalSession([]byte(good))
	if err != nil {
		t.Fatalf("minimal state: %v", err)
	}
	s.Close()
}

func FuzzUnmarshalSession(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"x","createdAt":"2026-01-01T00:00:00Z","lastUsed":"2026-01-01T00:00:00Z","requestCount":3,"cookies":[{"name":"a","value":"b","domain":"example.com","path":"/","created":"2026-01-01T00:00:00Z","lastAccess":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"id":"y","config":{"preset":"chrome-latest","timeout":100}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalSession(data)
		if err != nil {
			return
		}
		defer s.Close()
		again, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := UnmarshalSession(again)
		if err != nil {
			t.Fatalf("re-unmarshal of %s: %v", again, err)
		}
		defer s2.Close()
		if s2.ID() != s.ID() || len(s2.Cookies()) != len(s.Cookies()) {
			t.Fatalf("round trip changed the session")
		}
	})
}

// TestClientIsACopy: a library that reconfigures the Client it was given
// does not reconfigure the session.
func TestClientIsACopy(t *testing.T) {
	srv, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, nil)
	c := s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(srv.URL + "/redirect/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("the library's own policy: status %d", resp.StatusCode)
	}
	resp, _ = get(t, s, srv.URL+"/redirect/1")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the session's policy changed with its Client's: status %d", resp.StatusCode)
	}
}

// TestDialCancelledByClose: closing the session ends a Dial stuck on a
// proxy that never answers the CONNECT.
func TestDialCancelledByClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	accepted := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
			accepted <- struct{}{}
		}
	})
	defer func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Proxy: "http://" + ln.Addr().String()})
	errc := make(chan error)
	go func() {
		_, err := s.Dial(context.Background(), "tcp", "example.com:443")
		errc <- err
	}()
	<-accepted
	_ = s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrSessionClosed) {
			t.Errorf("Dial ended by Close: %v, want ErrSessionClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dial not cancelled by Close")
	}
	if m.Stats().InFlight != 0 {
		t.Errorf("InFlight = %d after the cancelled Dial", m.Stats().InFlight)
	}
}

// TestLastRequestClosesQUIC: Close leaves the QUIC transport to the
// requests still in flight, and the last of them to end, whichever path it
// ends by, closes it.
func TestLastRequestClosesQUIC(t *testing.T) {
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go", ForceHTTP3: true})
	h, err := s.http()
	if err != nil {
		t.Fatal(err)
	}
	h.http3()
	if _, err := h.quicTransport(); err != nil {
		t.Fatal(err)
	}
	if err := s.beginRequest(); err != nil { // a request in flight
		t.Fatal(err)
	}
	_ = s.Close()
	h.mu.Lock()
	kept := h.udp != nil && h.h3 != nil
	h.mu.Unlock()
	if !kept {
		t.Fatal("Close tore QUIC down under a request in flight")
	}
	if err := s.beginRequest(); !errors.Is(err, ErrSessionClosed) { // refused, but counted for a moment
		t.Fatalf("request on a closed session: %v", err)
	}
	s.endRequest() // the last one
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.udp != nil || h.h3 != nil {
		t.Error("the last request to end left the QUIC transport open")
	}
}
