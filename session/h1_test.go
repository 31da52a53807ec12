package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/protocol"
)

// ownH1 returns the session's own HTTP/1.1 client (the session must have a
// fingerprinted preset and have made a request or been built).
func ownH1(t *testing.T, s *Session) *h1Transport {
	t.Helper()
	h, err := s.http()
	if err != nil {
		t.Fatal(err)
	}
	ft, ok := h.tcp.Load().tcpTransport.(*fpTransport)
	if !ok {
		t.Fatalf("preset %s: not a fingerprinted transport", s.preset.Name)
	}
	return ft.h1
}

// rawServer accepts connections on 127.0.0.1 and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); serve(c) })
		}
	})
	return "http://" + ln.Addr().String()
}

// headField is a header line as it came on the wire.
type headField struct{ name, value string }

// TestOwnHTTP1MatchesCapture: over http:// a fingerprinted session writes
// the browser's HTTP/1.1 header: its names in its spelling (Accept-Encoding
// too, which fhttp's path lowercases), in its order, with its values.
func TestOwnHTTP1MatchesCapture(t *testing.T) {
	heads := make(chan []headField, 1)
	addr := rawServer(t, func(c net.Conn) {
		r := textproto.NewReader(bufio.NewReader(c))
		if _, err := r.ReadLine(); err != nil {
			return
		}
		var fields []headField
		for {
			l, err := r.ReadLine()
			if err != nil || l == "" {
				break
			}
			name, value, _ := strings.Cut(l, ": ")
			fields = append(fields, headField{name, value})
		}
		heads <- fields
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	m, _ := newTestManager(t)
	for name, captureName := range map[string]string{"chrome-156-linux": "chromium-156-linux", "firefox-153-esr-linux": "firefox-153-esr-linux"} {
		t.Run(name, func(t *testing.T) {
			want := loadCapture(t, captureName).HTTP1Connections[0].HTTP1.Headers
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: name})
			if _, body := get(t, s, addr); body != "ok" {
				t.Fatalf("body %q", body)
			}
			got := <-heads
			if n := ownH1(t, s).dials.Load(); n != 1 {
				t.Fatalf("own HTTP/1.1 client dialled %d connections, want 1", n)
			}
			if len(got) != len(want) {
				t.Fatalf("%d header fields, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			for i, w := range want {
				g := got[i]
				switch w.Name {
				case "Host":
					w.Value = g.value // the port differs
				case "User-Agent":
					w.Value = strings.Replace(w.Value, "HeadlessChrome/", "Chrome/", 1)
				}
				if g.name != w.Name || g.value != w.Value {
					t.Errorf("field %d: got %s: %q, want %s: %q", i, g.name, g.value, w.Name, w.Value)
				}
			}
		})
	}
}

// TestOwnHTTP1RequestOrder: a request's own HeaderOrderKey wins over the
// preset's; names it leaves out follow, sorted by their lower case; the
// key is never sent.
func TestOwnHTTP1RequestOrder(t *testing.T) {
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ts.Close()
	addr := rawServer(t, func(c net.Conn) {
		r := textproto.NewReader(bufio.NewReader(c))
		_, _ = r.ReadLine()
		for {
			l, err := r.ReadLine()
			if err != nil || l == "" {
				break
			}
			name, _, _ := strings.Cut(l, ":")
			got = append(got, name)
		}
		_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
	})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-156-linux", Headers: map[string]string{"X-Config": "1"}})
	req, _ := http.NewRequest(http.MethodGet, addr, nil)
	req.Header.Set("X-Mine", "1")
	req.Header[HeaderOrderKey] = []string{"x-mine", "User-Agent", "accept"}
	resp, err := s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) < 6 {
		t.Fatalf("header %q", got)
	}
	if want := []string{"Host", "Connection", "X-Mine", "User-Agent", "Accept"}; !slices.Equal(got[:5], want) {
		t.Errorf("first names %q, want %q", got[:5], want)
	}
	rest := got[5:]
	for i := 1; i < len(rest); i++ {
		if strings.ToLower(rest[i-1]) > strings.ToLower(rest[i]) {
			t.Errorf("names the order leaves out are not sorted by their lower case: %q", rest)
		}
	}
	for _, n := range got {
		if strings.EqualFold(n, HeaderOrderKey) {
			t.Errorf("%s was sent", n)
		}
	}
}

// TestOwnHTTP1StaleRetry: the server closes each kept-alive connection
// after one answer. A GET meets the closed connection, fails before any
// byte of a response and is sent again on a new one. A POST, which must
// not be sent twice, never meets it: the client sees the close before
// writing (alive) and dials. Every request is answered, each once.
func TestOwnHTTP1StaleRetry(t *testing.T) {
	var served atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		served.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	h1 := ownH1(t, s)
	for i := range 3 {
		if _, body := get(t, s, addr); body != "ok" {
			t.Fatalf("GET %d: %q", i, body)
		}
		time.Sleep(10 * time.Millisecond) // let the server's close land
	}
	if d, n := h1.dials.Load(), served.Load(); d != 3 || n != 3 {
		t.Fatalf("%d dials, %d served; want 3, 3", d, n)
	}
	for i, body := range []io.Reader{bytes.NewReader([]byte("replayable")), io.NopCloser(strings.NewReader("once"))} {
		resp, err := s.Post(t.Context(), addr, "text/plain", body)
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // to EOF: the connection goes back idle
		resp.Body.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if d, n := h1.dials.Load(), served.Load(); d != 5 || n != 5 {
		t.Fatalf("after two POSTs: %d dials, %d served; want 5, 5", d, n)
	}
}

// TestOwnHTTP1NoDuplicatePost: a server that reads a whole POST on a
// kept-alive connection and closes without answering may have acted on
// it: the POST fails rather than go out twice. A GET in its place is sent
// again, as net/http does.
func TestOwnHTTP1NoDuplicatePost(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			var seen atomic.Int64
			addr := rawServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if req.URL.Path == "/order" {
						if seen.Add(1) == 1 {
							return // took the order, then crashed
						}
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			m, _ := newTestManager(t)
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
			get(t, s, addr) // leaves a kept-alive connection
			req, _ := http.NewRequest(method, addr+"/order", bytes.NewReader([]byte("pay 100")))
			resp, err := s.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			switch method {
			case http.MethodPost:
				if err == nil || seen.Load() != 1 {
					t.Fatalf("POST: error %v, server saw it %d times; want an error and once", err, seen.Load())
				}
			default:
				if err != nil || seen.Load() != 2 {
					t.Fatalf("GET: error %v, server saw it %d times; want success and twice", err, seen.Load())
				}
			}
		})
	}
}

// TestOwnHTTP1IdleExpiry: a connection idle for IdleConnTimeout is closed
// (on the injected clock; the timer only triggers the check), and the
// host's entry goes with it.
func TestOwnHTTP1IdleExpiry(t *testing.T) {
	ts, conns := countingServer(t, 0, false)
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest", IdleConnTimeout: 60_000})
	h1 := ownH1(t, s)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	h1.now = func() time.Time { return time.Unix(0, now.Load()) }

	get(t, s, ts.URL)
	h1.mu.Lock()
	u, _ := url.Parse(ts.URL)
	hp := h1.hosts[h1Key{addr: canonicalAddr(u)}]
	h1.mu.Unlock()
	if hp == nil || len(hp.idle) != 1 {
		t.Fatalf("after one GET: host %+v, want one idle connection", hp)
	}
	now.Add(int64(59 * time.Second))
	h1.expire(hp)
	if len(hp.idle) != 1 {
		t.Fatal("closed before the timeout")
	}
	now.Add(int64(time.Second))
	h1.expire(hp)
	h1.mu.Lock()
	left, n := len(hp.idle), len(h1.hosts)
	h1.mu.Unlock()
	if left != 0 || n != 0 {
		t.Fatalf("at the timeout: %d idle, %d hosts; want 0, 0", left, n)
	}
	get(t, s, ts.URL)
	if c := conns.Load(); c != 2 {
		t.Fatalf("%d connections, want 2 (the expired one was not reused)", c)
	}
}

// TestOwnHTTP1WaitForSlot: under MaxConnsPerHost a request waits for a
// connection; one whose context ends while it waits gives up without
// taking the slot, and the next gets the connection when it is free.
func TestOwnHTTP1WaitForSlot(t *testing.T) {
	release := make(chan struct{})
	var conns atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest", MaxConnsPerHost: 1})
	h1 := ownH1(t, s)

	slow := make(chan error, 1)
	go func() {
		resp, err := s.Get(context.Background(), ts.URL+"/slow")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()
	waitFor(t, func() bool { h1.mu.Lock(); defer h1.mu.Unlock(); return len(h1.hosts) == 1 && firstHost(h1).open == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := s.Get(ctx, ts.URL+"/fast")
		gaveUp <- err
	}()
	waitFor(t, func() bool { h1.mu.Lock(); defer h1.mu.Unlock(); return len(firstHost(h1).wait) == 1 })
	cancel()
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("waiting request: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the waiting request did not give up when its context ended")
	}
	h1.mu.Lock()
	waiting, open := len(firstHost(h1).wait), firstHost(h1).open
	h1.mu.Unlock()
	if waiting != 0 || open != 1 {
		t.Fatalf("after giving up: %d waiting, %d open; want 0, 1", waiting, open)
	}

	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	get(t, s, ts.URL+"/fast")
	if c := conns.Load(); c != 1 {
		t.Fatalf("%d connections, want 1", c)
	}
}

func firstHost(t *h1Transport) *h1Host {
	for _, hp := range t.hosts {
		return hp
	}
	return &h1Host{}
}

// TestOwnHTTP1Bodies: a chunked request body with trailers, a sized one,
// an empty POST, HEAD, and a server that answers before reading the body.
func TestOwnHTTP1Bodies(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Len", r.Header.Get("Content-Length"))
		w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Trailer", r.Trailer.Get("X-Sum"))
		_, _ = w.Write(b)
	}))
	defer ts.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := s.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	req, _ := http.NewRequest(http.MethodPost, ts.URL, io.NopCloser(strings.NewReader("chunked body")))
	req.Trailer = http.Header{"X-Sum": {"42"}}
	resp, body := do(req)
	if body != "chunked body" || resp.Header.Get("X-TE") != "chunked" || resp.Header.Get("X-Trailer") != "42" {
		t.Errorf("chunked: %q, TE %q, trailer %q", body, resp.Header.Get("X-TE"), resp.Header.Get("X-Trailer"))
	}

	req, _ = http.NewRequest(http.MethodPut, ts.URL, strings.NewReader("sized"))
	resp, body = do(req)
	if body != "sized" || resp.Header.Get("X-Len") != "5" {
		t.Errorf("sized: %q, Content-Length %q", body, resp.Header.Get("X-Len"))
	}

	req, _ = http.NewRequest(http.MethodPost, ts.URL, nil)
	resp, _ = do(req)
	if resp.Header.Get("X-Len") != "0" {
		t.Errorf("empty POST: Content-Length %q, want 0", resp.Header.Get("X-Len"))
	}

	req, _ = http.NewRequest(http.MethodHead, ts.URL, nil)
	if resp, body = do(req); resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}

	big := strings.NewReader(strings.Repeat("x", 8<<20))
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/early", io.NopCloser(big))
	req.ContentLength = int64(big.Len())
	resp, err := s.Do(req)
	if err != nil {
		t.Fatalf("early answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("early answer: %d", resp.StatusCode)
	}
}

// TestOwnHTTP1BadHeader: a value with a line break is refused before
// anything is written, and the connection is kept.
func TestOwnHTTP1BadHeader(t *testing.T) {
	ts, conns := countingServer(t, 0, false)
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	get(t, s, ts.URL)
	req, _ := http.NewRequest(http.MethodGet, ts.URL, nil)
	req.Header.Set("X-Evil", "a\r\nInjected: 1")
	if _, err := s.Do(req); !errors.Is(err, errBadHeader) {
		t.Fatalf("got %v, want errBadHeader", err)
	}
	get(t, s, ts.URL)
	if c := conns.Load(); c != 1 {
		t.Fatalf("%d connections, want 1", c)
	}
}

// TestOwnHTTP1CancelMidBody: a request cancelled while its body is read
// ends with the context's cause, and its connection is not reused.
func TestOwnHTTP1CancelMidBody(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first part")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer ts.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	h1 := ownH1(t, s)
	cause := errors.New("enough")
	ctx, cancel := context.WithCancelCause(context.Background())
	resp, err := s.Get(ctx, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel(cause)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, cause) {
		t.Fatalf("read after cancel: %v, want the cause", err)
	}
	h1.mu.Lock()
	n := len(h1.hosts)
	h1.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d hosts left in the pool, want 0: the connection was reused", n)
	}
}

// TestOwnHTTP1RefusesBeforeSending: requests net/http refuses are refused
// before they take a connection (a control character or a space in the
// URL would end the request line early and smuggle headers in), and a request whose
// context already ended is not sent. The connection stays usable.
func TestOwnHTTP1RefusesBeforeSending(t *testing.T) {
	var seen atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.Header.Get("X-Injected") != "" {
			t.Error("a header was injected through the URL")
		}
	}))
	defer ts.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	h1 := ownH1(t, s)
	get(t, s, ts.URL)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want error
	}{
		{"control characters in the query", func() *http.Request {
			u, _ := url.Parse(ts.URL + "/x")
			u.RawQuery = "a=1 HTTP/1.1\r\nX-Injected: yes\r\nX-Pad: x"
			return &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		}, errBadHeader},
		{"a space in the query", func() *http.Request {
			u, _ := url.Parse(ts.URL + "/x?q=a b")
			return &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		}, errBadHeader},
		{"a line break in a value", func() *http.Request {
			r, _ := http.NewRequestWithContext(cancelled, http.MethodGet, ts.URL, nil)
			r.Header.Set("X-Evil", "a\r\nInjected: 1")
			return r
		}, errBadHeader},
		{"ContentLength without a body", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, ts.URL, nil)
			r.ContentLength = 5
			return r
		}, errBadHeader},
		{"a bad trailer name", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, ts.URL, io.NopCloser(strings.NewReader("x")))
			r.Trailer = http.Header{"Bad Name": {"1"}}
			return r
		}, errBadHeader},
		{"a context already cancelled", func() *http.Request {
			r, _ := http.NewRequestWithContext(cancelled, http.MethodGet, ts.URL, nil)
			return r
		}, context.Canceled},
	} {
		before := seen.Load()
		resp, err := s.Do(tc.req())
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if seen.Load() != before {
			t.Errorf("%s: the request reached the server", tc.name)
		}
	}
	get(t, s, ts.URL)
	if d := h1.dials.Load(); d != 1 {
		t.Fatalf("%d dials, want 1: a refusal cost the kept-alive connection", d)
	}
}

// TestOwnHTTP1Host: an internationalised host goes out in punycode, as
// net/http writes it.
func TestOwnHTTP1Host(t *testing.T) {
	hosts := make(chan string, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hosts <- r.Host }))
	defer ts.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	req, _ := http.NewRequest(http.MethodGet, ts.URL, nil)
	req.Host = "bücher.example"
	resp, err := s.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-hosts; h != "xn--bcher-kva.example" {
		t.Fatalf("Host %q, want xn--bcher-kva.example", h)
	}
}

// TestOwnHTTP1StreamingBody: the head goes out before the body, and each
// chunk of a body of unknown length as it comes: a server that answers on
// the first bytes gets them while the rest is still being produced.
func TestOwnHTTP1StreamingBody(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		b := make([]byte, 5)
		if _, err := io.ReadFull(req.Body, b); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"+string(b))
	})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	for _, length := range []int64{-1, 100} { // chunked, then sized
		pr, pw := io.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, addr, pr)
		req.ContentLength = length
		go func() { _, _ = pw.Write([]byte("hello")) }() // and no more
		resp, err := s.Do(req)
		if err != nil {
			t.Fatalf("length %d: %v (the body was held back)", length, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("length %d: answer %q", length, b)
		}
		pw.Close()
		cancel()
	}
}

// TestOwnHTTP1BasicAuthFromURL: user:password@ in the URL becomes
// Authorization, with or without WithoutRedirects (which skips
// http.Client, where net/http adds it).
func TestOwnHTTP1BasicAuthFromURL(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, _ := r.BasicAuth()
		_, _ = io.WriteString(w, u+":"+pw)
	}))
	defer ts.Close()
	m, _ := newTestManager(t)
	for _, p := range []string{"go", "chrome-latest"} {
		for _, ctx := range []context.Context{context.Background(), WithoutRedirects(context.Background())} {
			s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p})
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.Replace(ts.URL, "http://", "http://alice:secret@", 1), nil)
			resp, err := s.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "alice:secret" {
				t.Errorf("%s, %v: server saw %q", p, ctx, b)
			}
			if req.Header.Get("Authorization") != "" {
				t.Errorf("%s: the caller's request was changed", p)
			}
		}
	}
}

// TestOwnHTTP1RetiredTransportDetached: a transport that SetProxy retired
// stops watching the session's close once no request uses it, so that it
// can be collected.
func TestOwnHTTP1RetiredTransportDetached(t *testing.T) {
	ts, _ := countingServer(t, 0, false)
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	get(t, s, ts.URL)
	old := ownH1(t, s)
	if err := s.SetProxy("socks5://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetProxy(""); err != nil {
		t.Fatal(err)
	}
	get(t, s, ts.URL) // its end drops the retired transports
	if old.unwatch() {
		t.Fatal("the retired transport still watched the session's close")
	}
}

// TestOwnHTTP1CloseDuringRetry: with retries on, a request ends at the
// session's close even when a later attempt goes through a transport that
// SetProxy put in place (an HTTP proxy: fhttp, which does not watch the
// close itself).
func TestOwnHTTP1CloseDuringRetry(t *testing.T) {
	var tries atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			tries.Add(1)
			_, _ = io.WriteString(c, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
		}
	})
	reached := make(chan struct{}, 4)
	proxyAddr := rawServer(t, func(c net.Conn) { // a proxy that never answers
		reached <- struct{}{}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, c)
	})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest", RetryEnabled: true, RetryWaitMin: 200, RetryWaitMax: 200, MaxRetries: 1})
	errc := make(chan error, 1)
	go func() {
		resp, err := s.Get(context.Background(), addr)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, func() bool { return tries.Load() > 0 })
	if err := s.SetProxy(proxyAddr); err != nil {
		t.Fatal(err)
	}
	<-reached
	_ = s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("after Close: %v, want ErrSessionClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request outlived the session's close")
	}
}

// TestOwnHTTP1Stale408: a server that, idle, answers 408 and closes (as
// some do at their idle timeout) leaves a connection that is not reused:
// the next GET gets the server's 200 on a new one, not the stale 408.
//
// The 408 is sent once the first answer has been read, so that it waits in
// the socket (where alive's peek finds it), not in the connection's buffer.
func TestOwnHTTP1Stale408(t *testing.T) {
	read, idle := make(chan struct{}), make(chan struct{}, 1)
	addr := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		<-read
		_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		idle <- struct{}{}
	})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
	get(t, s, addr)
	close(read)
	<-idle
	time.Sleep(10 * time.Millisecond) // let the 408 land
	if resp, body := get(t, s, addr); resp.StatusCode != http.StatusOK {
		t.Fatalf("second GET: %d %q, want the server's 200 on a new connection", resp.StatusCode, body)
	}
}

// TestDoOnceSchemeMismatch: an https request answered in plain HTTP fails
// with http.ErrSchemeMismatch under WithoutRedirects too, as http.Client
// makes it.
func TestDoOnceSchemeMismatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "go"})
	for _, ctx := range []context.Context{context.Background(), WithoutRedirects(context.Background())} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+srv.Listener.Addr().String(), nil)
		if _, err := s.Do(req); !errors.Is(err, http.ErrSchemeMismatch) {
			t.Errorf("%v: %v, want http.ErrSchemeMismatch", ctx, err)
		}
	}
}

// TestOwnHTTP1Interim: interim responses before the answer are read past,
// up to net/http's five; a server that sends more fails the request
// instead of holding it.
func TestOwnHTTP1Interim(t *testing.T) {
	for _, tc := range []struct {
		interim int
		ok      bool
	}{{5, true}, {6, false}} {
		addr := rawServer(t, func(c net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			_, _ = io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", tc.interim)+
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		})
		m, _ := newTestManager(t)
		s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest"})
		resp, err := s.Get(context.Background(), addr)
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != tc.ok || err == nil && resp.StatusCode != http.StatusOK {
			t.Errorf("%d interim responses: %v, want ok=%t", tc.interim, err, tc.ok)
		}
	}
}
