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
// preset's; names it leaves out follow, sorted; the key is never sent.
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
	if want := []string{"Host", "Connection", "X-Mine", "User-Agent", "Accept"}; !equalStrings(got[:5], want) {
		t.Errorf("first names %q, want %q", got[:5], want)
	}
	rest := got[5:]
	for i := 1; i < len(rest); i++ {
		if rest[i-1] > rest[i] {
			t.Errorf("names the order leaves out are not sorted: %q", rest)
		}
	}
	for _, n := range got {
		if strings.EqualFold(n, HeaderOrderKey) {
			t.Errorf("%s was sent", n)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOwnHTTP1StaleRetry: the server closes a kept-alive connection while
// it is idle; the next request fails on it before any response byte and is
// sent once more on a new connection, when its body can be replayed. A body
// that cannot be replayed gets the error.
func TestOwnHTTP1StaleRetry(t *testing.T) {
	var served atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		// One request per connection, then close without saying so.
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
	// The second and third GETs each found the idle connection closed and
	// dialled again: 3 connections, 3 answers.
	if d, n := h1.dials.Load(), served.Load(); d != 3 || n != 3 {
		t.Fatalf("%d dials, %d served; want 3, 3", d, n)
	}

	resp, err := s.Post(t.Context(), addr, "text/plain", bytes.NewReader([]byte("replayable")))
	if err != nil {
		t.Fatalf("POST with a replayable body: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // to EOF: the connection goes back idle
	resp.Body.Close()
	if d := h1.dials.Load(); d != 4 {
		t.Fatalf("replayable POST: %d dials in all, want 4 (retried on a new connection)", d)
	}
	time.Sleep(10 * time.Millisecond)
	resp, err = s.Post(t.Context(), addr, "text/plain", io.NopCloser(strings.NewReader("once")))
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST with a one-shot body on a closed idle connection succeeded")
	}
	if !errors.Is(err, errStale) {
		t.Fatalf("POST: %v, want errStale", err)
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
	hp := h1.hosts[canonicalAddr(u)]
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
