package fingerprint

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func getJSON(t *testing.T, c *http.Client, url string) Result {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var r Result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Go 1.26's fingerprints as measured here. With a ClientSessionCache (as a
// roster session has) Go adds session_ticket and psk_key_exchange_modes, and
// pre_shared_key when it resumes.
const (
	goJA4NoCache = "t13d1312h2_f57a46bbacb6_ab7e3b40a677"
	goJA4Cache   = "t13d1314h2_f57a46bbacb6_fb48f8b98a29"
	goJA4Resumed = "t13d1315h2_f57a46bbacb6_3b244d8fbcc8"
	goAkamai     = "2:0;4:4194304;5:16384;6:10485760|1073741824|0|a,m,p,s"
)

func TestGoJA4SessionCache(t *testing.T) {
	s := newServer(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs(), ClientSessionCache: tls.NewLRUClientSessionCache(0)}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	for i, want := range []string{goJA4Cache, goJA4Resumed} {
		r := getJSON(t, &http.Client{Transport: tr}, s.URL())
		if r.TLS.JA4 != want || r.TLS.SessionTicket != true || r.TLS.PreSharedKey != (i == 1) || r.HTTP2.Akamai != goAkamai {
			t.Errorf("connection %d: JA4 %s (%s) ticket %t psk %t akamai %s; want %s", i, r.TLS.JA4, r.TLS.JA4R, r.TLS.SessionTicket, r.TLS.PreSharedKey, r.HTTP2.Akamai, want)
		}
		tr.CloseIdleConnections()
	}
}

// TestGoHTTP2Client takes net/http's own fingerprint through the server:
// Go's crypto/tls over TLS 1.3 with ALPN h2, and its HTTP/2 client.
func TestGoHTTP2Client(t *testing.T) {
	s := newServer(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	r := getJSON(t, c, s.URL()+"first")
	if r.Protocol != "h2" || r.TLS.JA4 != goJA4NoCache || r.TLS.ServerName != "localhost" {
		t.Errorf("protocol %s, JA4 %s, SNI %q; want h2, %s, localhost", r.Protocol, r.TLS.JA4, r.TLS.ServerName, goJA4NoCache)
	}
	if r.HTTP2 == nil || r.HTTP2.Akamai != goAkamai {
		t.Fatalf("HTTP/2 %+v, want akamai %s", r.HTTP2, goAkamai)
	}
	if r.Method != "GET" || r.Path != "/first" || r.Conn != 1 || r.Request != 1 || r.HTTP2.StreamID != 1 || r.HTTP2.HeadersPriority != nil {
		t.Errorf("request %s %s conn %d req %d stream %d priority %v", r.Method, r.Path, r.Conn, r.Request, r.HTTP2.StreamID, r.HTTP2.HeadersPriority)
	}
	if !slices.Equal(r.HTTP2.HeaderOrder, []string{"accept-encoding", "user-agent"}) {
		t.Errorf("header order %v", r.HTTP2.HeaderOrder)
	}
	// The answer and what the server keeps are the same.
	if last, ok := s.Last(); !ok || last.TLS.JA4 != r.TLS.JA4 || last.HTTP2.Akamai != r.HTTP2.Akamai || last.Path != r.Path {
		t.Errorf("Last() = %+v, %t", last, ok)
	}

	// A second request reuses the connection: same connection-level data,
	// its own stream and headers.
	req, _ := http.NewRequest("GET", s.URL()+"second", nil)
	req.Header.Set("X-Test", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r2 Result
	err = json.NewDecoder(resp.Body).Decode(&r2)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r2.Conn != 1 || r2.Request != 2 || r2.HTTP2.StreamID != 3 || r2.HTTP2.Akamai != goAkamai || r2.Path != "/second" ||
		!slices.Contains(r2.HTTP2.HeaderOrder, "x-test") {
		t.Errorf("second request: conn %d req %d stream %d %s %s %v", r2.Conn, r2.Request, r2.HTTP2.StreamID, r2.HTTP2.Akamai, r2.Path, r2.HTTP2.HeaderOrder)
	}
	if d := Compare(r, r2); len(d) == 0 || !strings.Contains(d[0], "header order") {
		t.Errorf("Compare(first, second) = %v, want the added header", d)
	}
	if got := s.Results(); len(got) != 2 || len(s.Hellos()) != 1 {
		t.Errorf("%d results, %d hellos; want 2, 1", len(got), len(s.Hellos()))
	}
}

// TestHTTP1HeaderOrder sends a request head by hand and checks that the
// server keeps names with their case and order, and keeps the connection.
func TestHTTP1HeaderOrder(t *testing.T) {
	s := newServer(t)
	conn, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	read := func() Result {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r Result
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	io.WriteString(conn, "GET /a HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\r\nsec-ch-ua: \"y\"\r\nAccept-Language: en\r\n\r\n")
	r := read()
	want := []string{"Host", "User-Agent", "sec-ch-ua", "Accept-Language"}
	if r.Protocol != "http/1.1" || r.HTTP1 == nil || !slices.Equal(r.HTTP1.HeaderOrder, want) || r.Path != "/a" || r.UserAgent() != "x" {
		t.Fatalf("got %s %+v, want header order %v", r.Protocol, r.HTTP1, want)
	}
	// A chunked body is skipped and the next request read on the same connection.
	io.WriteString(conn, "POST /b HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
		"PUT /c HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
	if r := read(); r.Request != 2 || r.Path != "/b" || r.Method != "POST" {
		t.Errorf("second request %s %s #%d", r.Method, r.Path, r.Request)
	}
	if r := read(); r.Request != 3 || r.Path != "/c" || r.Conn != 1 {
		t.Errorf("third request %s #%d conn %d", r.Path, r.Request, r.Conn)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close, read err = %v, want EOF", err)
	}

	// Compare sees a case change in HTTP/1.1 and ignores per-request headers.
	got := r
	got.HTTP1 = &HTTP1{HeaderOrder: []string{"Host", "Cookie", "User-Agent", "sec-ch-ua", "Accept-Language"}}
	if d := Compare(r, got); len(d) != 0 {
		t.Errorf("Compare with an added Cookie = %v, want none", d)
	}
	got.HTTP1 = &HTTP1{HeaderOrder: []string{"Host", "user-agent", "sec-ch-ua", "Accept-Language"}}
	if d := Compare(r, got); len(d) != 1 || !strings.Contains(d[0], "http1 header order") {
		t.Errorf("Compare with user-agent lowercased = %v", d)
	}
}

// TestWithALPN: a server that accepts only http/1.1 makes a client that
// offers h2 fall back, and still shows the client's full ALPN list.
func TestWithALPN(t *testing.T) {
	s, err := NewServer(WithALPN("http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	r := getJSON(t, &http.Client{Transport: tr}, s.URL())
	if r.Protocol != "http/1.1" || r.HTTP1 == nil || r.HTTP2 != nil || !slices.Equal(r.TLS.ALPN, []string{"h2", "http/1.1"}) {
		t.Errorf("protocol %s, HTTP1 %v, ALPN %v; want http/1.1 with h2 offered", r.Protocol, r.HTTP1, r.TLS.ALPN)
	}
	if !slices.Equal(r.HTTP1.HeaderOrder, []string{"Host", "User-Agent", "Accept-Encoding"}) {
		t.Errorf("Go's HTTP/1.1 header order %v", r.HTTP1.HeaderOrder)
	}
}

// TestWithoutTLS: a plain server reads the HTTP/1.1 head as sent, with no
// TLS part, and names itself by the host a caller maps to it.
func TestWithoutTLS(t *testing.T) {
	s, err := NewServer(WithoutTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if u := s.URLFor("roster.test"); u != "http://roster.test:"+s.Addr()[len("127.0.0.1:"):]+"/" {
		t.Errorf("URLFor = %q", u)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"p?q=1", nil)
	req.Header.Set("X-Mine", "1")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r.Protocol != "http/1.1" || r.HTTP1 == nil || r.Path != "/p?q=1" || r.TLS.JA4 != "" {
		t.Errorf("protocol %s, path %s, HTTP1 %v, JA4 %q: want a plain HTTP/1.1 GET of /p?q=1", r.Protocol, r.Path, r.HTTP1, r.TLS.JA4)
	}
	if !slices.Equal(r.HTTP1.HeaderOrder, []string{"Host", "User-Agent", "X-Mine", "Accept-Encoding"}) {
		t.Errorf("header order %v", r.HTTP1.HeaderOrder)
	}
	if len(s.CertPEM()) != 0 || len(s.Hellos()) != 0 {
		t.Error("a plain server has a certificate or ClientHellos")
	}
}

// TestBadClients: bytes that are not TLS, a handshake that fails and an
// HTTP/2 connection with a bad preface are dropped; the server goes on.
func TestBadClients(t *testing.T) {
	s := newServer(t)
	for _, send := range []string{"GET / HTTP/1.1\r\n\r\n", "\x16\x03\x01\x00\x00"} {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, send)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// EOF or a reset (the server closes with bytes unread): closed, not timed out.
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("after %q: read err = %v, want the server to close", send, err)
		}
		c.Close()
	}
	// An untrusting client still leaves its ClientHello.
	c, err := tls.Dial("tcp", s.Addr(), &tls.Config{ServerName: "localhost"})
	if err == nil {
		c.Close()
		t.Fatal("handshake with an untrusted certificate succeeded")
	}
	// h2 negotiated, then garbage instead of the preface.
	c, err = tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, strings.Repeat("x", len(http2.ClientPreface)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("after a bad preface: %v, want EOF", err)
	}
	c.Close()
	if n := len(s.Hellos()); n != 2 {
		t.Errorf("%d hellos, want 2 (the untrusting client and the bad preface)", n)
	}
	if len(s.Results()) != 0 {
		t.Errorf("results %v, want none", s.Results())
	}
}

// TestCloseWithOpenConnections: Close ends idle and half-sent connections
// (goleak in TestMain checks no goroutine is left), and WaitResults returns.
func TestCloseWithOpenConnections(t *testing.T) {
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", s.Addr()) // sends nothing
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	getJSON(t, &http.Client{Transport: tr}, s.URL()) // leaves an idle HTTP/2 connection
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if rs, err := s.WaitResults(ctx, 2); !errors.Is(err, context.DeadlineExceeded) || len(rs) != 1 {
		t.Errorf("WaitResults(2) = %d results, %v; want 1, deadline exceeded", len(rs), err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// h2Start builds an HTTP/2 client start: preface, SETTINGS, WINDOW_UPDATE,
// PRIORITY frames and a HEADERS block split into HEADERS + CONTINUATION.
func h2Start(t testing.TB) []byte {
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings(http2.Setting{ID: 1, Val: 65536}, http2.Setting{ID: 2, Val: 0}, http2.Setting{ID: 4, Val: 6291456}, http2.Setting{ID: 6, Val: 262144})
	fr.WriteWindowUpdate(0, 15663105)
	fr.WritePriority(3, http2.PriorityParam{StreamDep: 0, Weight: 200})
	fr.WritePriority(5, http2.PriorityParam{StreamDep: 3, Exclusive: true, Weight: 100})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":authority", "localhost"}, {":scheme", "https"}, {":path", "/"}, {"sec-ch-ua", "x"}, {"user-agent", "y"}, {"priority", "u=0, i"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:10], EndStream: true,
		Priority: http2.PriorityParam{StreamDep: 0, Exclusive: true, Weight: 255}}); err != nil {
		t.Fatal(err)
	}
	fr.WriteContinuation(1, true, block[10:])
	return buf.Bytes()
}

func TestReadHTTP2(t *testing.T) {
	got, err := ReadHTTP2(bytes.NewReader(h2Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	const want = "1:65536;2:0;4:6291456;6:262144|15663105|3:0:0:201,5:1:3:101|m,a,s,p"
	if got.Akamai != want {
		t.Errorf("Akamai = %s, want %s", got.Akamai, want)
	}
	if p := got.HeadersPriority; p == nil || *p != (Priority{Exclusive: true, StreamDep: 0, Weight: 256}) {
		t.Errorf("HEADERS priority = %+v", p)
	}
	if !slices.Equal(got.HeaderOrder, []string{"sec-ch-ua", "user-agent", "priority"}) ||
		!slices.Equal(got.Frames, []string{"SETTINGS", "WINDOW_UPDATE", "PRIORITY", "PRIORITY", "HEADERS"}) {
		t.Errorf("header order %v, frames %v", got.HeaderOrder, got.Frames)
	}

	// No WINDOW_UPDATE and no PRIORITY frames: "00" and "0", as Akamai writes them.
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings()
	fr.WriteSettingsAck()
	var hb bytes.Buffer
	hpack.NewEncoder(&hb).WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	got, err = ReadHTTP2(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Akamai != "|00|0|m" || !slices.Equal(got.Frames, []string{"SETTINGS", "SETTINGS_ACK", "HEADERS"}) {
		t.Errorf("Akamai %q frames %v", got.Akamai, got.Frames)
	}
}

func TestReadHTTP2Errors(t *testing.T) {
	start := h2Start(t)
	preface := len(http2.ClientPreface)
	tests := []struct {
		name      string
		in        []byte
		malformed bool
	}{
		{"empty", nil, false},
		{"bad preface", []byte(strings.Repeat("x", preface)), true},
		{"truncated frame", start[:preface+5], false},
		{"no HEADERS", start[:preface+9+24], false},
		{"SETTINGS on a stream", append([]byte(http2.ClientPreface), 0, 0, 0, 4, 0, 0, 0, 0, 1), true},
		{"bad hpack", append([]byte(http2.ClientPreface), 0, 0, 1, 1, 5, 0, 0, 0, 1, 0xff), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHTTP2(bytes.NewReader(tc.in))
			if err == nil || errors.Is(err, ErrMalformed) != tc.malformed {
				t.Errorf("err = %v, want malformed %t", err, tc.malformed)
			}
		})
	}
	for i := range len(start) {
		if _, err := ReadHTTP2(bytes.NewReader(start[:i])); err == nil {
			t.Fatalf("ReadHTTP2 of %d of %d bytes: no error", i, len(start))
		}
	}
}

func TestReadHTTP1Errors(t *testing.T) {
	tests := []struct {
		in        string
		malformed bool
	}{
		{"", false},
		{"GET / HTTP/1.1\r\nHost: x\r\n", false}, // no end of head
		{"GET /\r\n\r\n", true},
		{"GET / SPDY/3\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nno colon\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", true},
		{"GET / HTTP/1.1\r\n\r: x\r\n\r\n", true}, // found by FuzzReadHTTP1
		{"GET / HTTP/1.1\r\n: x\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxHead) + "\r\n\r\n", true},
	}
	for _, tc := range tests {
		_, err := ReadHTTP1(bufio.NewReader(strings.NewReader(tc.in)))
		if err == nil || errors.Is(err, ErrMalformed) != tc.malformed {
			t.Errorf("ReadHTTP1(%.40q) = %v, want malformed %t", tc.in, err, tc.malformed)
		}
	}
}

func TestCompare(t *testing.T) {
	c, err := ReadCapture("../../testdata/fingerprints/chromium-156-linux.json")
	if err != nil {
		t.Fatal(err)
	}
	want := c.Connections[0]
	clone := func() Result {
		b, _ := json.Marshal(want)
		var r Result
		json.Unmarshal(b, &r)
		return r
	}
	tests := []struct {
		name   string
		change func(r *Result)
		diffs  []string // field names expected, in order
	}{
		{"same", func(r *Result) {}, nil},
		{"extension order and values ignored", func(r *Result) {
			slices.Reverse(r.TLS.Extensions)
			r.HTTP2.Headers = nil
		}, nil},
		{"per-request headers ignored", func(r *Result) {
			r.HTTP2.HeaderOrder = append([]string{"cookie", "content-type"}, r.HTTP2.HeaderOrder...)
		}, nil},
		{"protocol", func(r *Result) { r.Protocol = "http/1.1" }, []string{"protocol"}},
		{"ja4", func(r *Result) { r.TLS.JA4 = "x" }, []string{"ja4"}},
		{"ja3", func(r *Result) { r.TLS.JA3SortedHash = "x" }, []string{"ja3 sorted"}},
		{"akamai", func(r *Result) { r.HTTP2.Akamai = "x" }, []string{"http2 akamai"}},
		{"priority weight", func(r *Result) { r.HTTP2.HeadersPriority.Weight = 220 }, []string{"http2 headers priority"}},
		{"no priority", func(r *Result) { r.HTTP2.HeadersPriority = nil }, []string{"http2 headers priority"}},
		{"header swapped", func(r *Result) {
			o := r.HTTP2.HeaderOrder
			o[0], o[1] = o[1], o[0]
		}, []string{"http2 header order"}},
		{"header missing", func(r *Result) { r.HTTP2.HeaderOrder = r.HTTP2.HeaderOrder[1:] }, []string{"http2 header order"}},
		{"http1 instead", func(r *Result) { r.HTTP2, r.HTTP1 = nil, &HTTP1{} }, []string{"http part"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := clone()
			tc.change(&got)
			d := Compare(want, got)
			if len(d) != len(tc.diffs) {
				t.Fatalf("Compare = %q, want %d diffs %v", d, len(tc.diffs), tc.diffs)
			}
			for i, f := range tc.diffs {
				if !strings.HasPrefix(d[i], f+":") {
					t.Errorf("diff %d = %q, want field %q", i, d[i], f)
				}
			}
		})
	}
}

func TestExtensionOrderDiffers(t *testing.T) {
	a := Result{TLS: TLS{Extensions: []uint16{0x0a0a, 0, 16, 43, 0x1a1a}}}
	b := Result{TLS: TLS{Extensions: []uint16{0xfafa, 0, 16, 43, 0x2a2a}}}
	if ExtensionOrderDiffers(a, b) {
		t.Error("only GREASE differs, but ExtensionOrderDiffers = true")
	}
	b.TLS.Extensions = []uint16{0xfafa, 16, 0, 43}
	if !ExtensionOrderDiffers(a, b) {
		t.Error("order differs, but ExtensionOrderDiffers = false")
	}
	b.TLS.Extensions = []uint16{0, 16, 43, 41}
	if !ExtensionOrderDiffers(a, b) {
		t.Error("an added extension, but ExtensionOrderDiffers = false")
	}
}
