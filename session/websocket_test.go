package session

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/rosterhq/roster/internal/fingerprint"
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
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
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
