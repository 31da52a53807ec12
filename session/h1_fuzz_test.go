package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/protocol"
	"golang.org/x/net/http/httpguts"
)

// fuzzH1 is a fingerprinted session's own HTTP/1.1 client, for the fuzz
// targets.
func fuzzH1(f *testing.F) *h1Transport {
	m := NewManager(WithCleanupInterval(0))
	f.Cleanup(m.Shutdown)
	id, err := m.CreateSession(&protocol.SessionConfig{Preset: "chrome-latest"})
	if err != nil {
		f.Fatal(err)
	}
	s, err := m.GetSession(id)
	if err != nil {
		f.Fatal(err)
	}
	h, err := s.http()
	if err != nil {
		f.Fatal(err)
	}
	return h.tcp.Load().tcpTransport.(*fpTransport).h1
}

// FuzzH1WriteHead: whatever the method, target, host and one header, the
// request is refused by check with errBadHeader, or its head parses back (net/http's server parser) as the same request: no header
// smuggled in, none lost.
func FuzzH1WriteHead(f *testing.F) {
	for _, seed := range []struct{ method, target, host, name, value string }{
		{"GET", "/", "", "X-Mine", "1"},
		{"POST", "/a?b=c", "example.com:8080", "Accept", "text/html"},
		{"GET", "/", "", "X-Evil", "a\r\nInjected: 1"},
		{"GET", "/", "evil.com\r\nX: 1", "X-A", "b"},
		{"GE T", "/", "", "X-A", "b"},
		{"GET", "/", "", "Bad Name", "b"},
		{"GET", "/", "", "X-A", "  padded\t"},
		{"GET", "/%zz", "", "Content-Length", "5"},
		{"GET", "/", "", "Transfer-Encoding", "chunked"},
		{"GET", "/", "", "Header-Order:", "x-a"},
	} {
		f.Add(seed.method, seed.target, seed.host, seed.name, seed.value)
	}
	t1 := fuzzH1(f)
	f.Fuzz(func(t *testing.T, method, target, host, name, value string) {
		u, err := url.Parse("http://127.0.0.1:1" + target)
		if err != nil || u.Host != "127.0.0.1:1" {
			return // not a target a Request can hold
		}
		req := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{name: {value}}}
		ruri, err := t1.check(req)
		if err != nil {
			if !errors.Is(err, errBadHeader) {
				t.Fatalf("error %v is not errBadHeader", err)
			}
			return
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := t1.writeHead(w, req, ruri, false, false, false); err != nil {
			t.Fatalf("a checked request: %v", err)
		}
		_ = w.Flush()
		got, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out.Bytes())))
		if err != nil {
			t.Fatalf("the head written does not parse: %v\n%q", err, out.String())
		}
		if got.Method != method {
			t.Fatalf("method %q, want %q", got.Method, method)
		}
		wantHost := host
		if wantHost == "" {
			wantHost = u.Host
		}
		wantHost, _ = httpguts.PunycodeHostPort(wantHost) // as net/http sends it
		if got.Host != wantHost {
			t.Fatalf("host %q, want %q", got.Host, wantHost)
		}
		// Every line written is a header the request or the session has.
		want := map[string]bool{"Host": true, "Connection": true, "Content-Length": methodWantsBody(method)}
		for k := range t1.ft.h.defaults {
			want[k] = true
		}
		ck := http.CanonicalHeaderKey(name)
		switch ck {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", http.CanonicalHeaderKey(HeaderOrderKey):
		default:
			want[ck] = true
			if _, ok := t1.ft.h.defaults[ck]; !ok {
				if v := got.Header.Get(ck); v != strings.Trim(value, " \t") {
					t.Fatalf("%s: %q, want %q", ck, v, value)
				}
			}
		}
		for k := range got.Header {
			if !want[k] {
				t.Fatalf("header %s was not asked for:\n%q", k, out.String())
			}
		}
	})
}

// FuzzH1Response: whatever a server answers, the client returns a response
// or an error without hanging or panicking, and leaves its pool
// consistent: the connection is idle (and reusable) or closed, nothing is
// counted busy, and the host's count matches.
func FuzzH1Response(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	t1 := fuzzH1(f)
	f.Fuzz(func(t *testing.T, answer string, head bool) {
		client, server := net.Pipe()
		go func() {
			br := bufio.NewReader(server)
			for { // the request head
				l, err := br.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			_ = server.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(server, answer)
			_ = server.Close()
		}()
		const addr = "fuzz.invalid:80"
		t1.mu.Lock()
		key := h1Key{addr: addr}
		hp := &h1Host{key: key, open: 1}
		t1.hosts[key] = hp
		c := &h1Conn{host: hp, nc: client, br: bufio.NewReader(client), bw: bufio.NewWriter(client)}
		t1.busy[c] = struct{}{}
		t1.mu.Unlock()

		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+addr+"/", nil)
		resp, err := t1.exchange(ctx, c, req, "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		if ctx.Err() != nil {
			t.Fatal("the exchange hung until its deadline")
		}
		t1.mu.Lock()
		defer t1.mu.Unlock()
		if len(t1.busy) != 0 {
			t.Fatalf("%d connections left busy", len(t1.busy))
		}
		if hp.open != len(hp.idle) || hp.open > 1 || len(hp.wait) != 0 {
			t.Fatalf("host: %d open, %d idle, %d waiting", hp.open, len(hp.idle), len(hp.wait))
		}
		// Leave nothing for the next input.
		for _, c := range hp.idle {
			_ = c.nc.Close()
		}
		delete(t1.hosts, key)
		if hp.timer != nil {
			hp.timer.Stop()
		}
	})
}
