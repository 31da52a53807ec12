package session

import (
	"bufio"
	"bytes"
	"compress/zlib"
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
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/fingerprint"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
)

// TestWebSocketOverTLS: an Upgrade over https to a server that speaks
// HTTP/2 gets a connection of its own that offers http/1.1 only (the
// browsers' rule for WebSockets), and the 101 response's body is the
// connection, readable and writable, for fingerprinted sessions and Go's
// stack alike.
func TestWebSocketOverTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			return // the first, plain GET
		}
		c, brw, ok := switchProtocols(w)
		if !ok {
			return
		}
		defer c.Close()
		line, _ := brw.ReadString('\n') // echo one line
		_, _ = io.WriteString(c, "echo "+line)
	}))
	ts.EnableHTTP2 = true
	var mu sync.Mutex
	var offered [][]string // each connection's ALPN list
	ts.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		offered = append(offered, h.SupportedProtos)
		mu.Unlock()
		return nil, nil
	}}
	ts.StartTLS()
	defer ts.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	m, _ := newTestManager(t)
	for _, p := range []string{"chrome-latest", "firefox-latest", "go"} {
		t.Run(p, func(t *testing.T) {
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p, CACerts: string(ca)})
			get(t, s, ts.URL) // an HTTP/2 connection to the server first
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/ws", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			resp, err := s.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s: %s", resp.Status, b)
			}
			rw, ok := resp.Body.(io.ReadWriteCloser)
			if !ok {
				t.Fatalf("the 101 body %T is not an io.ReadWriteCloser", resp.Body)
			}
			if _, err := io.WriteString(rw, "hello\n"); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(rw).ReadString('\n')
			if err != nil || line != "echo hello\n" {
				t.Fatalf("read %q, %v; want the echo", line, err)
			}
			mu.Lock()
			last := offered[len(offered)-1]
			mu.Unlock()
			if p != "go" && !slices.Equal(last, []string{"http/1.1"}) {
				t.Errorf("the WebSocket's connection offered ALPN %q, want http/1.1 only", last)
			}
		})
	}
}

// TestWebSocketHelloMatchesCapture: the connection a fingerprinted
// session opens for a WebSocket says hello as Debian's chromium 156 did
// for one (http/1.1 only in ALPN, no ALPS): the same JA4 and sorted JA3.
// (firefox-esr's captured WebSocket resumed an earlier session, so its
// hello is not a first connection's and is not compared.)
func TestWebSocketHelloMatchesCapture(t *testing.T) {
	c := loadCapture(t, "chromium-156-linux")
	if len(c.WebSocketConnections) == 0 {
		t.Fatal("the capture has no WebSocket")
	}
	want := c.WebSocketConnections[0].TLS
	srv, cfg := fpServer(t)
	cfg.Preset = "chrome-156-linux"
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &cfg)
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := s.Do(req) // the server answers 200: no switch
	if err != nil {
		t.Fatal(err)
	}
	var got fingerprint.Result
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got.TLS.JA4 != want.JA4 || got.TLS.JA3SortedHash != want.JA3SortedHash || !slices.Equal(got.TLS.ALPN, want.ALPN) {
		t.Errorf("WebSocket hello: JA4 %s, sorted JA3 %s, ALPN %q; want chromium's %s, %s, %q",
			got.TLS.JA4, got.TLS.JA3SortedHash, got.TLS.ALPN, want.JA4, want.JA3SortedHash, want.ALPN)
	}
}

// upgradeReq is an Upgrade request for u: a WebSocket's, or (up not
// "websocket") another protocol's, with the Connection header given.
func upgradeReq(u, conn, up string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if conn != "" {
		req.Header.Set("Connection", conn)
	}
	req.Header.Set("Upgrade", up)
	if up == "websocket" {
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	return req
}

// doResult makes req and returns what the fingerprinting server saw.
func doResult(t *testing.T, s *Session, req *http.Request) fingerprint.Result {
	t.Helper()
	resp, err := s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r fingerprint.Result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUpgradesKeepToThemselves: every kind of Upgrade request, refused by
// the server (200), goes over a connection of its own offering http/1.1
// only, also when an HTTP/2 connection to the server exists, and leaves
// no connection behind for the requests that follow, which go over
// HTTP/2; the upgrade's header is HTTP/1.1's (no priority).
func TestUpgradesKeepToThemselves(t *testing.T) {
	m, _ := newTestManager(t)
	for _, tc := range []struct{ conn, up string }{
		{"Upgrade", "websocket"}, {"", "websocket"}, {"Upgrade", "h2c"}, {"Upgrade", "SPDY/3.1"}, {"keep-alive", "websocket"},
	} {
		for _, h2First := range []bool{false, true} {
			srv, cfg := fpServer(t)
			cfg.Preset = "chrome-latest"
			s := newSessionFor(t, m, &cfg)
			if h2First {
				get(t, s, srv.URL())
			}
			up := doResult(t, s, upgradeReq(srv.URL()+"up", tc.conn, tc.up))
			if up.Protocol != "http/1.1" || !slices.Equal(up.TLS.ALPN, []string{"http/1.1"}) {
				t.Errorf("%+v, h2 first %t: the upgrade went over %s offering %q, want http/1.1 only", tc, h2First, up.Protocol, up.TLS.ALPN)
				continue
			}
			if slices.Contains(up.HTTP1.HeaderOrder, "Priority") || slices.Contains(up.HTTP1.HeaderOrder, "priority") {
				t.Errorf("%+v: the upgrade carries priority, which Chrome sends over HTTP/2 only", tc)
			}
			plain, _ := http.NewRequest(http.MethodGet, srv.URL()+"plain", nil)
			next := doResult(t, s, plain)
			if next.Conn == up.Conn || next.Protocol != "h2" {
				t.Errorf("%+v, h2 first %t: the next GET went on connection %d over %s, want HTTP/2 on another", tc, h2First, next.Conn, next.Protocol)
			}
		}
	}
}

// switchProtocols takes over w's connection and answers 101 Switching
// Protocols to a WebSocket on it; ok is false if it cannot.
func switchProtocols(w http.ResponseWriter) (c net.Conn, brw *bufio.ReadWriter, ok bool) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, false
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	_ = brw.Flush()
	return c, brw, true
}

// wsEchoServer answers an Upgrade with 101 and echoes the connection
// until the client closes it; it speaks HTTP/2 to other requests.
func wsEchoServer(t *testing.T) (url, caPEM string) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			return
		}
		if c, brw, ok := switchProtocols(w); ok {
			defer c.Close()
			_, _ = io.Copy(c, brw)
		}
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts.URL, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
}

// TestCloseEndsWebSocket: closing the session closes its open WebSockets,
// whose reads then fail with ErrSessionClosed; closing the body ends the
// request, as for any other.
func TestCloseEndsWebSocket(t *testing.T) {
	for _, p := range []string{"chrome-latest", "go"} {
		t.Run(p, func(t *testing.T) {
			u, ca := wsEchoServer(t)
			m, _ := newTestManager(t)
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p, CACerts: ca})
			resp, err := s.Do(upgradeReq(u+"/ws", "Upgrade", "websocket"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatal(resp.Status)
			}
			if n := s.inFlight.Load(); n != 1 {
				t.Fatalf("%d requests in flight with the WebSocket open, want 1", n)
			}
			_ = s.Close()
			read := make(chan error, 1)
			go func() { _, err := resp.Body.Read(make([]byte, 10)); read <- err }()
			select {
			case err := <-read:
				if !errors.Is(err, ErrSessionClosed) {
					t.Errorf("read after Close: %v, want ErrSessionClosed", err)
				}
			case <-time.After(10 * time.Second): // a bound on the failure, not a wait
				resp.Body.Close()
				<-read
				t.Fatal("a read on the WebSocket still blocks after the session's Close")
			}
			resp.Body.Close()
			if n := s.inFlight.Load(); n != 0 {
				t.Errorf("%d requests in flight after the body's Close", n)
			}
		})
	}
}

// TestWebSocketSkipsHTTP3: on Go's stack, an upgrade to a server that
// advertised HTTP/3 (Alt-Svc) still goes over TCP, where it can switch;
// HTTP/3 would drop the Upgrade header and answer as to a plain GET.
func TestWebSocketSkipsHTTP3(t *testing.T) {
	_, tcpSrv, caPEM := newHTTPBin(t)
	h3 := serveHTTP3(t, tcpSrv.TLS.Certificates, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "h3 saw Upgrade=%q", r.Header.Get("Upgrade"))
	}))
	alt := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", `h3=":`+fmt.Sprint(h3.Port)+`"; ma=60`)
		if r.Header.Get("Upgrade") == "" {
			return
		}
		if c, _, ok := switchProtocols(w); ok {
			c.Close()
		}
	}))
	alt.TLS = &tls.Config{Certificates: tcpSrv.TLS.Certificates}
	alt.StartTLS()
	defer alt.Close()
	u := "https://" + alt.Listener.Addr().String()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go", CACerts: caPEM})
	get(t, s, u+"/get") // learns the Alt-Svc
	resp, err := s.Do(upgradeReq(u+"/ws", "Upgrade", "websocket"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("%s %s %q, want 101 over TCP", resp.Proto, resp.Status, b)
	}
}

// TestWebSocketHeadersMatchCapture: a fingerprinted session's WebSocket
// handshake carries what chromium's did, in its order and spelling (but
// accept-encoding, in lower case for fhttp's sake): the navigation's
// client hints, Accept and Sec-Fetch-* left out, Pragma and Cache-Control
// added, the caller's Sec-WebSocket-* in place.
func TestWebSocketHeadersMatchCapture(t *testing.T) {
	want := loadCapture(t, "chromium-156-linux").WebSocketConnections[0].HTTP1.Headers
	value := func(name string) string {
		for _, h := range want {
			if h.Name == name {
				return h.Value
			}
		}
		return ""
	}
	srv, cfg := fpServer(t)
	cfg.Preset = "chrome-156-linux"
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &cfg)
	// What a WebSocket library sets, in its own order and spelling.
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", value("Sec-WebSocket-Key"))
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Extensions", value("Sec-WebSocket-Extensions"))
	req.Header.Set("Origin", value("Origin"))
	got := doResult(t, s, req)
	if got.HTTP1 == nil {
		t.Fatalf("got %s, want HTTP/1.1", got.Protocol)
	}
	checkHTTP1Head(t, want, got.HTTP1.Headers, true) // accept-encoding: see wsShape.name
}

// TestWebSocketKeepsConfigHeaders: a header the session's config sets is
// sent on a handshake too, even one the preset's WebSocket leaves out.
func TestWebSocketKeepsConfigHeaders(t *testing.T) {
	srv, cfg := fpServer(t)
	cfg.Preset = "chrome-latest"
	cfg.Headers = map[string]string{"Accept": "application/x-mine", "Sec-Fetch-Mode": "websocket"}
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &cfg)
	got := doResult(t, s, upgradeReq(srv.URL()+"ws", "Upgrade", "websocket"))
	have := map[string]string{}
	for _, h := range got.HTTP1.Headers {
		have[h.Name] = h.Value
	}
	for name, want := range map[string]string{"Accept": "application/x-mine", "Sec-Fetch-Mode": "websocket", "Pragma": "no-cache", "Sec-Fetch-Dest": "", "sec-ch-ua": ""} {
		if have[name] != want {
			t.Errorf("%s: %q, want %q", name, have[name], want)
		}
	}
}

// TestWebSocketRefusals: a refused handshake comes back as the server
// answered it, a deflate-coded body included (fhttp decodes a response
// whose request's Accept-Encoding it recognises, and hangs on a deflate
// one); a profile that spells the keys fhttp acts on in lower case still
// sends one Connection header; a profile on Go's stack is applied too.
func TestWebSocketRefusals(t *testing.T) {
	var zb bytes.Buffer
	zw := zlib.NewWriter(&zb)
	_, _ = io.WriteString(zw, "no sockets here")
	_ = zw.Close()
	var mu sync.Mutex
	var seen http.Header
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Encoding", "deflate")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write(zb.Bytes())
	}))
	defer ts.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))

	base, _ := preset.Lookup("chrome-latest")
	lower := *base
	lower.Name = "test-ws-lowercase-keys"
	lower.WebSocket = &preset.WebSocket{HeaderOrder: []string{"host", "connection", "upgrade", "user-agent"}}
	goStack := preset.Preset{Name: "test-ws-go-stack", Headers: []preset.Header{{Name: "Accept", Value: "text/html"}, {Name: "User-Agent", Value: "x"}},
		WebSocket: &preset.WebSocket{Omit: []string{"accept"}, Headers: []preset.Header{{Name: "Pragma", Value: "no-cache"}}}}
	for _, p := range []preset.Preset{lower, goStack} {
		if err := preset.Register(p); err != nil && !errors.Is(err, preset.ErrPresetExists) {
			t.Fatal(err)
		}
	}
	m, _ := newTestManager(t)
	for _, p := range []string{"chrome-latest", "firefox-latest", lower.Name, goStack.Name} {
		t.Run(p, func(t *testing.T) {
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p, CACerts: ca})
			// A bound on the failure this guards against (a hang), not a wait.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := upgradeReq(ts.URL+"/ws", "Upgrade", "websocket").WithContext(ctx)
			resp, err := s.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := "no sockets here"
			if p == goStack.Name {
				want = zb.String() // its preset asked for no coding: the body as it came
			}
			if err != nil || resp.StatusCode != http.StatusForbidden || string(b) != want {
				t.Fatalf("%d %q %v, want the 403's %q", resp.StatusCode, b, err, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if n := len(seen.Values("Connection")); n != 1 {
				t.Errorf("%d Connection headers: %q", n, seen.Values("Connection"))
			}
			if p == goStack.Name && (seen.Get("Accept") != "" || seen.Get("Pragma") != "no-cache") {
				t.Errorf("Go's stack: Accept %q, Pragma %q; want the profile applied", seen.Get("Accept"), seen.Get("Pragma"))
			}
		})
	}
}
