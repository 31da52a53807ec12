package session

import (
	"bytes"
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/fingerprint"
	"github.com/rosterhq/roster/protocol"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestHTTP2WaitersShareTheConnection: requests that wait under
// MaxConnsPerHost while the first one's connection turns out HTTP/2 go
// over that connection: one handshake for eight concurrent first requests.
func TestHTTP2WaitersShareTheConnection(t *testing.T) {
	for _, limit := range []int{1, 2} {
		m, _ := newTestManager(t)
		srv, cfg := fpServer(t, fingerprint.WithALPN("h2"))
		cfg.Preset = "chrome-latest"
		cfg.MaxConnsPerHost = limit
		s := newSessionFor(t, m, &cfg)
		burst(t, s, srv.URL(), 8)
		if n := len(srv.Hellos()); n > limit {
			t.Errorf("MaxConnsPerHost %d: %d handshakes for 8 concurrent first requests", limit, n)
		}
		h1 := ownH1(t, s)
		h1.mu.Lock()
		if len(h1.hosts) != 0 {
			t.Errorf("MaxConnsPerHost %d: the own client keeps %d hosts", limit, len(h1.hosts))
		}
		h1.mu.Unlock()
	}
}

// TestHTTPSUpperCaseIDN: a name with capitals and non-ASCII letters finds
// its connection again (fhttp files and looks up HTTP/2 connections under
// two punycode forms unless it is given the lower-case one).
func TestHTTPSUpperCaseIDN(t *testing.T) {
	m, _ := newTestManager(t)
	for _, alpn := range []string{"h2", "http/1.1"} {
		srv, cfg := fpServer(t, fingerprint.WithALPN(alpn))
		_, port, _ := net.SplitHostPort(srv.Addr())
		cfg.ConnectTo = map[string]string{"xn--bcher-kva.test:" + port: srv.Addr()}
		cfg.CACerts, cfg.InsecureSkipVerify = "", true
		cfg.Preset = "chrome-latest"
		s := newSessionFor(t, m, &cfg)
		for i := 0; i < 3; i++ {
			// A bounded wait: the bug this guards against dials on and on.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://Bücher.test:"+port+"/", nil)
			resp, err := s.Do(req)
			if err != nil {
				cancel()
				t.Fatalf("%s: GET %d: %v (%d handshakes)", alpn, i, err, len(srv.Hellos()))
			}
			var got fingerprint.Result
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			host := ""
			if got.HTTP2 != nil {
				host = pseudo2(got.HTTP2.Headers, ":authority")
			} else {
				host = got.HTTP1.Headers[0].Value
			}
			if host != "xn--bcher-kva.test:"+port {
				t.Errorf("%s: authority %q, want the lower-case punycode", alpn, host)
			}
		}
		if n := len(srv.Hellos()); n != 1 {
			t.Errorf("%s: %d handshakes for three requests, want 1", alpn, n)
		}
	}
}

func pseudo2(hs []fingerprint.Header, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	mu     sync.Mutex
	closed int
}

func (c *closeCounter) Close() error { c.mu.Lock(); c.closed++; c.mu.Unlock(); return nil }

func (c *closeCounter) count() int { c.mu.Lock(); defer c.mu.Unlock(); return c.closed }

// TestHTTPSRefusalsAlike: a request the session refuses is refused with
// the same error, its body closed, whether or not an HTTP/2 connection to
// the server is open.
func TestHTTPSRefusalsAlike(t *testing.T) {
	m, _ := newTestManager(t)
	srv, cfg := fpServer(t, fingerprint.WithALPN("h2"))
	cfg.Preset = "chrome-latest"
	s := newSessionFor(t, m, &cfg)
	for _, connected := range []bool{false, true} {
		if connected {
			fetchResult(t, s, srv.URL())
		}
		for _, tc := range []struct {
			name  string
			build func(body io.ReadCloser) *http.Request
		}{
			{"a bad method", func(body io.ReadCloser) *http.Request {
				req, _ := http.NewRequest(http.MethodPost, srv.URL(), body)
				req.Method = "BAD METHOD"
				return req
			}},
			{"a line break in a value", func(body io.ReadCloser) *http.Request {
				req, _ := http.NewRequest(http.MethodPost, srv.URL(), body)
				req.Header.Set("X-Bad", "a\nb")
				return req
			}},
		} {
			body := &closeCounter{Reader: strings.NewReader("hello")}
			_, err := s.Do(tc.build(body))
			if !errors.Is(err, errBadHeader) || body.count() == 0 {
				t.Errorf("connected=%t, %s: %v, body closed %d times; want errBadHeader and a closed body", connected, tc.name, err, body.count())
			}
		}
	}
}

// TestHTTP2GoAwayKeepsTheBody: a POST that a server's GOAWAY leaves
// unanswered goes again on a new connection with its whole body.
func TestHTTP2GoAwayKeepsTheBody(t *testing.T) {
	u, cfg, got := goAwayServer(t)
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, cfg)
	get(t, s, u) // connection 1, kept for HTTP/2
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("hello"))
	resp, err := s.Do(req)
	if err != nil {
		t.Fatalf("POST: %v (the server saw %q)", err, got())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" {
		t.Errorf("the answer %q; the server saw %q; want the body on connection 2", b, got())
	}
}

// goAwayServer is an HTTP/2 server whose first connection answers a
// request with a body by GOAWAY naming the stream before it, as a server
// closing an idle connection races the request; later connections answer
// with the body they got. got lists what each connection received.
func goAwayServer(t *testing.T) (url string, cfg *protocol.SessionConfig, got func() []string) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS() // for a certificate
	certs := ts.TLS.Certificates
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certs, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		seen  []string
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serveGoAway(c, n, func(s string) { mu.Lock(); seen = append(seen, s); mu.Unlock() }) })
		}
	})
	return "https://" + ln.Addr().String() + "/", &protocol.SessionConfig{Preset: "chrome-latest", CACerts: string(ca)},
		func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func serveGoAway(c net.Conn, n int, saw func(string)) {
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	_ = fr.WriteSettings()
	bodies := map[uint32]*bytes.Buffer{}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	respond := func(id uint32, s string) {
		hb.Reset()
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		_ = enc.WriteField(hpack.HeaderField{Name: "content-length", Value: fmt.Sprint(len(s))})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
		_ = fr.WriteData(id, true, []byte(s))
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			bodies[f.StreamID] = new(bytes.Buffer)
			if f.StreamEnded() {
				respond(f.StreamID, "ok")
			}
		case *http2.DataFrame:
			b := bodies[f.StreamID]
			if b == nil {
				return
			}
			b.Write(f.Data())
			if f.StreamEnded() {
				saw(fmt.Sprintf("connection %d stream %d body %q", n, f.StreamID, b))
				if n == 1 {
					_ = fr.WriteGoAway(f.StreamID-2, http2.ErrCodeNo, nil)
				} else {
					respond(f.StreamID, b.String())
				}
			}
		}
	}
}
