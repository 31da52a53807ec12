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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/fingerprint"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
)

// fpServer starts the project's fingerprinting server and returns it with
// a config that reaches it as https://localhost:PORT (so SNI is sent, as a
// browser sends it) and trusts its certificate.
func fpServer(t *testing.T, opts ...fingerprint.Option) (*fingerprint.Server, protocol.SessionConfig) {
	t.Helper()
	srv, err := fingerprint.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(srv.Addr())
	return srv, protocol.SessionConfig{
		CACerts:   string(srv.CertPEM()),
		ConnectTo: map[string]string{"localhost:" + port: srv.Addr()},
	}
}

// fetchResult makes one request through s and returns what the server saw,
// as it answered it.
func fetchResult(t *testing.T, s *Session, url string) fingerprint.Result {
	t.Helper()
	resp, body := get(t, s, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var r fingerprint.Result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("fingerprint answer: %v\n%.200s", err, body)
	}
	return r
}

func loadCapture(t *testing.T, name string) *fingerprint.Capture {
	t.Helper()
	c, err := fingerprint.LoadCapture(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// engineCapture is the capture whose TLS and HTTP/2 each shipped browser
// preset carries.
var engineCapture = map[string]string{"chrome": "chromium-156-linux", "firefox": "firefox-153-esr-linux"}

// TestPresetsMatchCaptures: a session is the browser its preset names, as
// the fingerprinting server sees it. The presets copied from Debian's
// browsers (and chrome-latest) match the captures in everything that
// identifies a client: JA4, sorted JA3, the Akamai HTTP/2 string, the
// HEADERS priority and the header order. Every other chrome-* and
// firefox-* preset carries its engine's TLS and HTTP/2.
func TestPresetsMatchCaptures(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	whole := map[string]string{
		"chrome-156-linux":      "chromium-156-linux",
		"chrome-latest":         "chromium-156-linux",
		"firefox-153-esr-linux": "firefox-153-esr-linux",
	}
	for _, name := range preset.Names() {
		p, _ := preset.Lookup(name)
		captureName, ok := engineCapture[p.Browser]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			want := loadCapture(t, captureName).Connections[0]
			cfg := base
			cfg.Preset = name
			s := newSessionFor(t, m, &cfg)
			got := fetchResult(t, s, srv.URL())
			if _, ok := whole[name]; ok {
				for _, d := range fingerprint.Compare(want, got) {
					t.Error(d)
				}
				return
			}
			if got.TLS.JA4 != want.TLS.JA4 || got.TLS.JA3SortedHash != want.TLS.JA3SortedHash {
				t.Errorf("TLS: JA4 %s, sorted JA3 %s; want %s's %s, %s", got.TLS.JA4, got.TLS.JA3SortedHash, captureName, want.TLS.JA4, want.TLS.JA3SortedHash)
			}
			if got.HTTP2 == nil || got.HTTP2.Akamai != want.HTTP2.Akamai {
				t.Errorf("HTTP/2: got %+v, want Akamai %s", got.HTTP2, want.HTTP2.Akamai)
			}
		})
	}
}

// TestPresetHeaderValuesMatchCaptures: the copied presets send the values
// the browser sent, but for the User-Agent, which is the headful
// browser's (headless Chromium says HeadlessChrome). Both the first
// request to a server and the next (which, the server known to speak
// HTTP/2, goes over the cached connection) send the same.
func TestPresetHeaderValuesMatchCaptures(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	for name, captureName := range map[string]string{"chrome-156-linux": "chromium-156-linux", "firefox-153-esr-linux": "firefox-153-esr-linux"} {
		cfg := base
		cfg.Preset = name
		s := newSessionFor(t, m, &cfg)
		for _, nth := range []string{"first", "second"} {
			t.Run(name+"/"+nth, func(t *testing.T) {
				checkHeaderValues(t, loadCapture(t, captureName).Connections[0].HTTP2.Headers, fetchResult(t, s, srv.URL()).HTTP2.Headers)
			})
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func checkHeaderValues(t *testing.T, want, got []fingerprint.Header) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d header fields, want %d:\n%v\n%v", len(got), len(want), got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		switch {
		case w.Name == ":authority":
			continue // the port differs
		case w.Name == "user-agent":
			w.Value = strings.Replace(w.Value, "HeadlessChrome/", "Chrome/", 1)
		}
		if w != g {
			t.Errorf("field %d: got %s: %q, want %s: %q", i, g.Name, g.Value, w.Name, w.Value)
		}
	}
}

// TestPresetsMatchHTTP1Captures: over HTTP/1.1 (a server that offers only
// http/1.1, as the captures' was) the session is the browser: the same
// JA4 (it offers h2 too, and the server's ALPN picks http/1.1), and the
// header order with each name in the browser's case, on the first request
// (dialled before the protocol is known) and the next (the server known to
// speak HTTP/1.1), both over one connection. Under forceHTTP1 only JA4's
// ALPN part differs.
func TestPresetsMatchHTTP1Captures(t *testing.T) {
	srv, base := fpServer(t, fingerprint.WithALPN("http/1.1"))
	m, _ := newTestManager(t)
	for name, captureName := range map[string]string{"chrome-156-linux": "chromium-156-linux", "firefox-153-esr-linux": "firefox-153-esr-linux"} {
		c := loadCapture(t, captureName)
		if len(c.HTTP1Connections) == 0 {
			t.Fatalf("%s has no HTTP/1.1 capture", captureName)
		}
		want := c.HTTP1Connections[0]
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/forceHTTP1=%t", name, force), func(t *testing.T) {
				cfg := base
				cfg.Preset = name
				cfg.ForceHTTP1 = force
				s := newSessionFor(t, m, &cfg)
				for _, nth := range []string{"first", "second"} {
					got := fetchResult(t, s, srv.URL())
					g, w := got.TLS.JA4, want.TLS.JA4
					if force {
						if g[:8] != w[:8] || g[10:] != w[10:] || g[8:10] != "h1" {
							t.Errorf("%s: JA4 %s, want %s with ALPN h1", nth, g, w)
						}
					} else if g != w {
						t.Errorf("%s: JA4 %s, want %s", nth, g, w)
					}
					if got.HTTP1 == nil {
						t.Fatalf("%s: got %s, want HTTP/1.1", nth, got.Protocol)
					}
					if !slices.Equal(got.HTTP1.HeaderOrder, want.HTTP1.HeaderOrder) {
						t.Errorf("%s: HTTP/1.1 header order\n got %q\nwant %q", nth, got.HTTP1.HeaderOrder, want.HTTP1.HeaderOrder)
					}
					if nth == "second" && got.Request != 2 {
						t.Errorf("second request was request %d on its connection, want 2 (one connection)", got.Request)
					}
				}
				if d := ownH1(t, s).dials.Load(); d != 1 {
					t.Errorf("the own HTTP/1.1 client holds %d connections, want the one dialled first", d)
				}
			})
		}
	}
}

// TestFirstContactOneConnection: the first https request to a server
// dials before the protocol is known; when the server picks h2, fhttp
// carries the request, and the next, on that connection: the server sees
// one handshake, as from the browser.
func TestFirstContactOneConnection(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "chrome-latest"
	s := newSessionFor(t, m, &cfg)
	for i := 1; i <= 2; i++ {
		got := fetchResult(t, s, srv.URL())
		if got.Protocol != "h2" || got.Conn != 1 {
			t.Fatalf("request %d: %s on connection %d, want h2 on connection 1", i, got.Protocol, got.Conn)
		}
	}
	if n := len(srv.Hellos()); n != 1 {
		t.Errorf("%d handshakes, want 1", n)
	}
	if d := ownH1(t, s).dials.Load(); d != 0 {
		t.Errorf("the own HTTP/1.1 client holds %d connections, want none", d)
	}
}

// switchingServer is an https server whose first connection offers only
// http/1.1 in ALPN and every later one h2 as well, as a server that moved
// to HTTP/2 (or a load balancer with mixed backends). handshakes counts
// its connections; body records what each request carried.
type switchingServer struct {
	*httptest.Server
	handshakes atomic.Int32
}

func newSwitchingServer(t *testing.T, h http.HandlerFunc) (*switchingServer, *protocol.SessionConfig) {
	ss := &switchingServer{Server: httptest.NewUnstartedServer(h)}
	ss.EnableHTTP2 = true
	ss.TLS = &tls.Config{}
	ss.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := ss.TLS.Clone()
		c.GetConfigForClient = nil
		if ss.handshakes.Add(1) == 1 {
			c.NextProtos = []string{"http/1.1"}
		} else {
			c.NextProtos = []string{"h2", "http/1.1"}
		}
		return c, nil
	}
	ss.StartTLS()
	t.Cleanup(ss.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ss.Certificate().Raw})
	return ss, &protocol.SessionConfig{Preset: "chrome-latest", CACerts: string(ca)}
}

// TestHTTP1ServerNowPicksH2: when the connection the own client dials to
// a server it spoke HTTP/1.1 with picks h2, the request goes over HTTP/2
// on that connection (no second handshake), and the next one too.
func TestHTTP1ServerNowPicksH2(t *testing.T) {
	ss, cfg := newSwitchingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, cfg)
	if resp, body := get(t, s, ss.URL); body != "HTTP/1.1" || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("first GET: %q over %q, want HTTP/1.1", body, resp.TLS.NegotiatedProtocol)
	}
	ownH1(t, s).closeIdle()
	for i := 2; i <= 3; i++ {
		if resp, body := get(t, s, ss.URL); body != "HTTP/2.0" || resp.ProtoMajor != 2 {
			t.Fatalf("GET %d: %q, response %s; want HTTP/2", i, body, resp.Proto)
		}
	}
	if n := ss.handshakes.Load(); n != 2 {
		t.Errorf("%d handshakes, want 2: the connection the own client dialled was not handed over", n)
	}
}

// TestReplayThenPickedH2: a request replayed after its kept-alive
// connection turned out closed, whose new connection picks h2, goes over
// HTTP/2 with the body the replay made, not the spent one.
func TestReplayThenPickedH2(t *testing.T) {
	var mu sync.Mutex
	perConn := map[string]int{}
	ss, cfg := newSwitchingServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		perConn[r.RemoteAddr]++
		n := perConn[r.RemoteAddr]
		mu.Unlock()
		if r.ProtoMajor == 1 && n == 2 {
			c, _, _ := http.NewResponseController(w).Hijack()
			_ = c.Close() // closed as the request came, as if while idle
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %q", r.Proto, b)
	})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, cfg)
	get(t, s, ss.URL)
	req, _ := http.NewRequest(http.MethodPost, ss.URL, strings.NewReader("hello"))
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := s.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `HTTP/2.0 "hello"` {
		t.Errorf("the server got %s, want the body over HTTP/2", b)
	}
}

// TestHTTP1OverTLSResponse: a response the own client read over TLS says
// so, as net/http's would: TLS state with the negotiated protocol, the
// same state for every response on the connection.
func TestHTTP1OverTLSResponse(t *testing.T) {
	srv, base := fpServer(t, fingerprint.WithALPN("http/1.1"))
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "firefox-latest"
	s := newSessionFor(t, m, &cfg)
	r1, _ := get(t, s, srv.URL())
	r2, _ := get(t, s, srv.URL())
	if r1.TLS == nil || r1.TLS.NegotiatedProtocol != "http/1.1" || r1.TLS.ServerName != "localhost" || !r1.TLS.HandshakeComplete {
		t.Fatalf("TLS %+v, want http/1.1 to localhost", r1.TLS)
	}
	if r2.TLS != r1.TLS {
		t.Error("two responses on one connection have two TLS states")
	}
}

// TestShuffledExtensions: Chrome's presets permute the ClientHello's
// extensions on every connection, as Chrome does, while JA4 stays put;
// Firefox's keep one order.
func TestShuffledExtensions(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	for _, tc := range []struct {
		preset  string
		shuffle bool
	}{{"chrome-156-linux", true}, {"firefox-153-esr-linux", false}} {
		t.Run(tc.preset, func(t *testing.T) {
			var results []fingerprint.Result
			for range 4 { // 4 connections: 15! orders make a repeat negligible
				cfg := base
				cfg.Preset = tc.preset
				cfg.DisableKeepAlives = true
				results = append(results, fetchResult(t, newSessionFor(t, m, &cfg), srv.URL()))
			}
			differs := false
			for _, r := range results[1:] {
				if r.TLS.JA4 != results[0].TLS.JA4 {
					t.Errorf("JA4 changed between connections: %s, %s", results[0].TLS.JA4, r.TLS.JA4)
				}
				differs = differs || fingerprint.ExtensionOrderDiffers(results[0], r)
			}
			if differs != tc.shuffle {
				t.Errorf("extension order changed between connections: %v, want %v", differs, tc.shuffle)
			}
		})
	}
}

// TestCallerHeaderOrderWins: a request's own order (HeaderOrderKey) beats
// the preset's, and the key itself is never sent.
func TestCallerHeaderOrderWins(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "chrome-156-linux"
	s := newSessionFor(t, m, &cfg)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL(), nil)
	req.Header.Set("X-First", "1")
	req.Header[HeaderOrderKey] = []string{"x-first", "accept", "user-agent"}
	resp, err := s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r fingerprint.Result
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	order := r.HTTP2.HeaderOrder
	if len(order) < 3 || !slices.Equal(order[:3], []string{"x-first", "accept", "user-agent"}) {
		t.Errorf("header order %q, want x-first, accept, user-agent first", order)
	}
	for _, n := range order {
		if strings.HasPrefix(strings.ToLower(n), "header-order") {
			t.Errorf("the order key was sent: %q", order)
		}
	}

	// On Go's stack the key is dropped, not refused.
	goCfg := base
	goCfg.Preset = "go"
	g := newSessionFor(t, m, &goCfg)
	req, _ = http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL(), nil)
	req.Header[HeaderOrderKey] = []string{"accept"}
	resp, err = g.Do(req)
	if err != nil {
		t.Fatalf("go preset with an order key: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestGoPresetIsGo: preset "go" keeps Go's handshake and HTTP/2.
func TestGoPresetIsGo(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "go"
	got := fetchResult(t, newSessionFor(t, m, &cfg), srv.URL())
	if got.HTTP2 == nil || got.HTTP2.Akamai != "2:0;4:4194304;5:16384;6:10485760|1073741824|0|a,m,p,s" {
		t.Errorf("go preset HTTP/2: %+v, want Go's Akamai string", got.HTTP2)
	}
	if !strings.HasPrefix(got.TLS.JA4, "t13d13") {
		t.Errorf("go preset JA4 %s, want Go's (t13d13...)", got.TLS.JA4)
	}
}

// TestFingerprintedResumption: a fingerprinted session resumes TLS with
// the tickets it saved, across Marshal and RestoreSession, through uTLS.
func TestFingerprintedResumption(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "chrome-156-linux"
	s := newSessionFor(t, m, &cfg)
	first := fetchResult(t, s, srv.URL())
	if first.TLS.PreSharedKey {
		t.Fatal("a first connection offered a pre_shared_key: the capture has none")
	}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CloseSession(s.ID()); err != nil {
		t.Fatal(err)
	}
	id, err := m.RestoreSession(data)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := m.GetSession(id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL(), nil)
	resp, err := r.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.TLS == nil || !resp.TLS.DidResume {
		t.Fatalf("restored session did not resume TLS: %+v", resp.TLS)
	}
	last, _ := srv.Last()
	if !last.TLS.PreSharedKey || last.TLS.JA4[:3] != first.TLS.JA4[:3] {
		t.Errorf("resumed hello: psk %v, JA4 %s (first %s)", last.TLS.PreSharedKey, last.TLS.JA4, first.TLS.JA4)
	}
}

// TestRootPoolShared: sessions with the same CACerts share one pool,
// built once; another CA set gets its own.
func TestRootPoolShared(t *testing.T) {
	srv, base := fpServer(t)
	other, otherBase := fpServer(t)
	a, err := rootsWith(base.CACerts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := rootsWith(base.CACerts)
	c, _ := rootsWith(otherBase.CACerts)
	if a != b || a == c {
		t.Fatalf("same PEM: shared %v; other PEM: shared %v", a == b, a == c)
	}
	m, _ := newTestManager(t)
	for _, tc := range []struct {
		url string
		cfg protocol.SessionConfig
	}{{srv.URL(), base}, {other.URL(), otherBase}} {
		fetchResult(t, newSessionFor(t, m, &tc.cfg), tc.url) // each trusts its own server
	}
	if _, err := rootsWith("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"); err == nil {
		t.Error("a bad PEM was accepted")
	}
}

// TestH2LowercaseKeysKeepTheWire: requests over HTTP/2 build their header
// with lowercase keys; what goes on the wire is what the browser's
// spelling would have sent: the order (with a request's own
// HeaderOrderKey and with extra headers) and one Content-Length.
// (Upgrades do not go over HTTP/2: see TestWebSocketOverTLS.)
func TestH2LowercaseKeysKeepTheWire(t *testing.T) {
	srv, base := fpServer(t)
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "chrome-156-linux"
	s := newSessionFor(t, m, &cfg)
	type result struct {
		order []string
		err   string
	}
	h, _ := s.http()
	ft := h.tcp.Load().tcpTransport.(*fpTransport)
	send := func(build func() *http.Request, lower bool) result {
		var resp *http.Response
		var err error
		if lower {
			resp, err = s.Do(build())
		} else { // fhttp with the browser's spelling
			req := build()
			fresp, ferr := ft.t1.RoundTrip(ft.request(req.Context(), req, false, false))
			resp, err = ft.response(req, fresp, ferr)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // as Do reports it
		}
		if err != nil {
			return result{err: err.Error()}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r fingerprint.Result
		if err := json.Unmarshal(b, &r); err != nil || r.HTTP2 == nil {
			t.Fatalf("%v: %.300s", err, b)
		}
		return result{order: r.HTTP2.HeaderOrder}
	}
	for _, tc := range []struct {
		name  string
		build func() *http.Request
	}{
		{"own order", func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, srv.URL(), nil)
			req.Header[HeaderOrderKey] = []string{"user-agent", "accept"}
			return req
		}},
		{"a POST with extra headers and Content-Length in the header", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, srv.URL(), strings.NewReader("a=1"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://localhost")
			req.Header.Set("X-Zeta", "1")
			req.Header.Set("Content-Length", "3") // as rosterd forwards it
			return req
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := send(tc.build, false)
			second := send(tc.build, true)
			if !slices.Equal(first.order, second.order) || first.err != second.err {
				t.Fatalf("browser's spelling: %q %s\nlower case: %q %s", first.order, first.err, second.order, second.err)
			}
			if n := strings.Count(strings.Join(first.order, " "), "content-length"); n > 1 {
				t.Fatalf("content-length %d times: %q", n, first.order)
			}
		})
	}
}

// TestForceHTTP2ToAnHTTP1Server: under ForceHTTP2 an https server that
// ignores ALPN answers over HTTP/1.1, and the header keeps the browser's
// spelling there, request after request. The first request, to a server
// not known yet, also carries Chrome's HTTP/2-only priority; the next,
// the server known to speak HTTP/1.1, leaves it out as Chrome does.
func TestForceHTTP2ToAnHTTP1Server(t *testing.T) {
	srv, base := fpServer(t, fingerprint.WithALPN())
	m, _ := newTestManager(t)
	cfg := base
	cfg.Preset = "chrome-156-linux"
	cfg.ForceHTTP2 = true
	s := newSessionFor(t, m, &cfg)
	want := loadCapture(t, "chromium-156-linux").HTTP1Connections[0].HTTP1.HeaderOrder
	for i := range 2 {
		r := fetchResult(t, s, srv.URL())
		if r.HTTP1 == nil {
			t.Fatalf("request %d over %s, want HTTP/1.1", i, r.Protocol)
		}
		var got []string
		for _, n := range r.HTTP1.HeaderOrder {
			if n == "accept-encoding" {
				n = "Accept-Encoding" // fhttp's path (see fpTransport.wireName)
			}
			if n == "Priority" && i == 0 {
				continue
			}
			got = append(got, n)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("request %d: %q\nwant %q", i, got, want)
		}
	}
}

// TestPresetsMatchPlainHTTPCaptures: to a plain http:// origin that is not
// the loopback, a fingerprinted session sends what the browser sent there
// (Chrome: no client hints or Sec-Fetch-*; Firefox: no Sec-Fetch-*; both:
// Accept-Encoding without br and zstd), over its own HTTP/1.1 client and
// over fhttp through an HTTP proxy; to http://localhost it sends the full
// set, as the browser does, the loopback being potentially trustworthy.
func TestPresetsMatchPlainHTTPCaptures(t *testing.T) {
	srv, err := fingerprint.NewServer(fingerprint.WithoutTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(srv.Addr())
	const site = "roster-fingerprint.test" // as the capture named it
	direct := protocol.SessionConfig{ConnectTo: map[string]string{
		site + ":" + port: srv.Addr(), "localhost:" + port: srv.Addr(),
	}}
	proxied := protocol.SessionConfig{Proxy: "http://" + srv.Addr()}
	m, _ := newTestManager(t)
	for name, captureName := range map[string]string{"chrome-156-linux": "chromium-156-linux", "firefox-153-esr-linux": "firefox-153-esr-linux"} {
		c := loadCapture(t, captureName)
		if len(c.InsecureHTTP1Connections) == 0 || len(c.LoopbackHTTP1Connections) == 0 {
			t.Fatalf("%s has no plain http:// capture", captureName)
		}
		for _, tc := range []struct {
			how  string
			cfg  protocol.SessionConfig
			url  string
			want fingerprint.Result
			// fhttp writes accept-encoding in lower case (see wireName).
			lowerAE bool
		}{
			{"direct", direct, srv.URLFor(site), c.InsecureHTTP1Connections[0], false},
			{"direct to localhost", direct, srv.URL(), c.LoopbackHTTP1Connections[0], false},
			{"through an HTTP proxy", proxied, srv.URLFor(site), c.InsecureHTTP1Connections[0], true},
		} {
			t.Run(name+"/"+tc.how, func(t *testing.T) {
				cfg := tc.cfg
				cfg.Preset = name
				got := fetchResult(t, newSessionFor(t, m, &cfg), tc.url)
				if got.HTTP1 == nil {
					t.Fatalf("got %s, want HTTP/1.1", got.Protocol)
				}
				checkHTTP1Head(t, tc.want.HTTP1.Headers, got.HTTP1.Headers, tc.lowerAE)
			})
		}
	}
}

// checkHTTP1Head compares HTTP/1.1 header fields, names with their case,
// in order, and values, but for the Host's port and the headless
// User-Agent.
func checkHTTP1Head(t *testing.T, want, got []fingerprint.Header, lowerAE bool) {
	t.Helper()
	names := func(hs []fingerprint.Header) []string {
		var n []string
		for _, h := range hs {
			n = append(n, h.Name)
		}
		return n
	}
	if len(got) != len(want) {
		t.Fatalf("header fields\n got %q\nwant %q", names(got), names(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		switch w.Name {
		case "Host":
			w.Value, _, _ = strings.Cut(w.Value, ":")
			g.Value, _, _ = strings.Cut(g.Value, ":")
		case "User-Agent":
			w.Value = strings.Replace(w.Value, "HeadlessChrome/", "Chrome/", 1)
		case "Accept-Encoding":
			if lowerAE {
				w.Name = "accept-encoding"
			}
		}
		if w != g {
			t.Errorf("field %d: got %s: %q, want %s: %q", i, g.Name, g.Value, w.Name, w.Value)
		}
	}
}

// TestTrustworthy: the origins a browser counts as potentially
// trustworthy, for which it keeps its secure-context headers.
func TestTrustworthy(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://example.com/", true},
		{"wss://example.com/", true},
		{"http://example.com/", false},
		{"ws://example.com/", false},
		{"http://10.0.0.1:8080/", false},
		{"http://[2001:db8::1]/", false},
		{"http://127.0.0.1:8080/", true},
		{"http://127.5.6.7/", true},
		{"http://[::1]:80/", true},
		{"http://localhost/", true},
		{"http://LocalHost.:81/", true},
		{"http://app.localhost/", true},
		{"http://notlocalhost/", false},
		{"http://localhost.example.com/", false},
	} {
		if got := trustworthy(mustURL(t, tc.url)); got != tc.want {
			t.Errorf("trustworthy(%s) = %t, want %t", tc.url, got, tc.want)
		}
	}
}

// TestPlainHTTPKeepsConfigHeaders: headers the session's config sets are
// sent to a plain http:// origin too; only the preset's give way.
func TestPlainHTTPKeepsConfigHeaders(t *testing.T) {
	srv, err := fingerprint.NewServer(fingerprint.WithoutTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(srv.Addr())
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{
		Preset:    "chrome-156-linux",
		ConnectTo: map[string]string{"example.test:" + port: srv.Addr()},
		Headers:   map[string]string{"sec-fetch-site": "same-origin", "Accept-Encoding": "gzip, br"},
	})
	got := fetchResult(t, s, srv.URLFor("example.test"))
	have := map[string]string{}
	for _, h := range got.HTTP1.Headers {
		have[strings.ToLower(h.Name)] = h.Value
	}
	for name, want := range map[string]string{"sec-fetch-site": "same-origin", "accept-encoding": "gzip, br", "sec-fetch-mode": "", "sec-ch-ua": ""} {
		if have[name] != want {
			t.Errorf("%s: %q, want %q", name, have[name], want)
		}
	}
}

// TestHTTPSConnections: the session opens the connections the browser
// would: one for requests to one origin however its port is written,
// within MaxConnsPerHost for concurrent first requests to an HTTP/1.1
// server, and none for a request it refuses.
func TestHTTPSConnections(t *testing.T) {
	m, _ := newTestManager(t)
	t.Run("default port written or not", func(t *testing.T) {
		srv, cfg := fpServer(t)
		cfg.ConnectTo = map[string]string{"localhost:443": srv.Addr()}
		cfg.Preset = "chrome-latest"
		s := newSessionFor(t, m, &cfg)
		fetchResult(t, s, "https://localhost/")
		fetchResult(t, s, "https://localhost:443/")
		if n := len(srv.Hellos()); n != 1 {
			t.Errorf("%d handshakes, want 1", n)
		}
	})
	t.Run("MaxConnsPerHost on first contact", func(t *testing.T) {
		srv, cfg := fpServer(t, fingerprint.WithALPN("http/1.1"))
		cfg.Preset = "chrome-latest"
		cfg.MaxConnsPerHost = 1
		s := newSessionFor(t, m, &cfg)
		burst(t, s, srv.URL(), 8)
		if n := len(srv.Hellos()); n != 1 {
			t.Errorf("%d connections under MaxConnsPerHost 1", n)
		}
	})
	t.Run("a refused request", func(t *testing.T) {
		for _, opt := range []fingerprint.Option{fingerprint.WithALPN("http/1.1"), fingerprint.WithALPN("h2")} {
			srv, cfg := fpServer(t, opt)
			cfg.Preset = "chrome-latest"
			s := newSessionFor(t, m, &cfg)
			req, _ := http.NewRequest(http.MethodGet, srv.URL()+"?a=b c", nil)
			if _, err := s.Do(req); !errors.Is(err, errBadHeader) {
				t.Errorf("a space in the query: %v, want errBadHeader", err)
			}
			if n := len(srv.Hellos()); n != 0 {
				t.Errorf("%d handshakes for a refused request", n)
			}
			fetchResult(t, s, srv.URL()) // a connection, HTTP/2 or not
			if _, err := s.Do(req); !errors.Is(err, errBadHeader) {
				t.Errorf("a space in the query, connected: %v, want errBadHeader", err)
			}
		}
	})
}

// TestHTTPSInternationalHost: an internationalised name is dialled, looked
// up in ConnectTo and sent as SNI in its punycode form, over HTTP/1.1 and
// HTTP/2, as net/http sends it.
func TestHTTPSInternationalHost(t *testing.T) {
	m, _ := newTestManager(t)
	for _, alpn := range []string{"http/1.1", "h2"} {
		t.Run(alpn, func(t *testing.T) {
			srv, cfg := fpServer(t, fingerprint.WithALPN(alpn))
			_, port, _ := net.SplitHostPort(srv.Addr())
			cfg.ConnectTo = map[string]string{"xn--bcher-kva.test:" + port: srv.Addr()}
			cfg.CACerts, cfg.InsecureSkipVerify = "", true // the certificate is for localhost
			cfg.Preset = "chrome-latest"
			s := newSessionFor(t, m, &cfg)
			for i := 0; i < 2; i++ {
				got := fetchResult(t, s, "https://bücher.test:"+port+"/")
				if got.TLS.ServerName != "xn--bcher-kva.test" || got.Protocol != alpn {
					t.Errorf("SNI %q over %s, want xn--bcher-kva.test over %s", got.TLS.ServerName, got.Protocol, alpn)
				}
			}
		})
	}
}

// TestCloseDuringFirstDial: closing the session while its first https
// request is in the handshake ends the request with ErrSessionClosed.
func TestCloseDuringFirstDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c // never answers the ClientHello
	}()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest", InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Get(context.Background(), "https://"+ln.Addr().String()+"/")
		errc <- err
	}()
	c, ok := <-accepted
	if !ok {
		t.Fatal("no connection")
	}
	defer c.Close()
	s.Close()
	if err := <-errc; !errors.Is(err, ErrSessionClosed) {
		t.Errorf("%v, want ErrSessionClosed", err)
	}
}
