package daemon_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/session"
)

func TestProxyCookieIsolation(t *testing.T) {
	e := newEnv(t, nil)
	a, b := e.create(""), e.create("")
	ca, cb := e.proxyClient(a, token), e.proxyClient(b, token)

	// The session follows httpbin's redirect to /cookies itself.
	if got := cookiesVia(t, ca, e.backend.URL+"/cookies/set?who=a"); len(got) != 1 || got["who"] != "a" {
		t.Fatalf("a after set: %v", got)
	}
	if got := cookiesVia(t, cb, e.backend.URL+"/cookies/set?who=b&only=b"); len(got) != 2 || got["who"] != "b" {
		t.Fatalf("b after set: %v", got)
	}
	if got := cookiesVia(t, ca, e.backend.URL+"/cookies"); len(got) != 1 || got["who"] != "a" {
		t.Fatalf("a reads %v, want only who=a", got)
	}
	if got := cookiesVia(t, cb, e.backend.URL+"/cookies"); len(got) != 2 || got["who"] != "b" || got["only"] != "b" {
		t.Fatalf("b reads %v, want who=b only=b", got)
	}
	// A client without the daemon sees none of them.
	if got := cookiesVia(t, e.direct, e.backend.URL+"/cookies"); len(got) != 0 {
		t.Fatalf("direct client reads %v", got)
	}
	if sa, sb := e.stats(a), e.stats(b); sa.CookieCount != 1 || sb.CookieCount != 2 {
		t.Fatalf("cookie counts %d and %d, want 1 and 2", sa.CookieCount, sb.CookieCount)
	}
}

func TestProxyPresetUserAgent(t *testing.T) {
	e := newEnv(t, nil)
	for _, name := range []string{"chrome-latest", "firefox-157-linux"} {
		t.Run(name, func(t *testing.T) {
			p, err := preset.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			p.Apply(h)
			want := h.Get("User-Agent")
			if want == "" {
				t.Fatalf("preset %s has no User-Agent", name)
			}
			id := e.create(`{"preset":"` + name + `"}`)
			c := e.proxyClient(id, token)
			for _, ua := range []string{"", "my-agent/1.0"} {
				hdr := http.Header{}
				if ua != "" {
					hdr.Set("User-Agent", ua)
				}
				code, b, _ := get(t, c, e.backend.URL+"/user-agent", hdr)
				var out struct {
					UA string `json:"user-agent"`
				}
				if code != http.StatusOK || json.Unmarshal(b, &out) != nil {
					t.Fatalf("/user-agent: %d %s", code, b)
				}
				if out.UA != want {
					t.Fatalf("client UA %q: server saw %q, want the preset's %q", ua, out.UA, want)
				}
			}
		})
	}
}

func TestProxyHeadersMode(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(`{"headers":{"X-From-Config":"cfg"}}`)
	c := &http.Client{Transport: e.proxyTransport("", ""), Timeout: 30 * time.Second}
	hdr := http.Header{}
	hdr.Set(daemon.HeaderSession, id)
	hdr.Set(daemon.HeaderToken, token)
	hdr.Set(daemon.HeaderScheme, "http")
	hdr.Set("X-Custom", "kept")
	hdr.Set("Connection", "X-Hop")
	hdr.Set("X-Hop", "dropped")
	code, b, _ := get(t, c, e.backend.URL+"/whoami", hdr)
	if code != http.StatusOK {
		t.Fatalf("headers mode: %d %s", code, b)
	}
	var w whoami
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	for k := range w.Headers {
		if strings.HasPrefix(strings.ToLower(k), "x-roster-") {
			t.Errorf("header %s reached the server", k)
		}
	}
	for _, k := range []string{"Proxy-Authorization", "X-Hop", "Proxy-Connection"} {
		if v := w.Headers.Get(k); v != "" {
			t.Errorf("hop-by-hop header %s: %q reached the server", k, v)
		}
	}
	if w.Headers.Get("X-Custom") != "kept" || w.Headers.Get("X-From-Config") != "cfg" {
		t.Errorf("end-to-end headers lost: %v", w.Headers)
	}
	if s := e.stats(id); s.RequestCount != 1 {
		t.Errorf("RequestCount = %d, want 1", s.RequestCount)
	}

	// With proxy credentials, neither they nor Proxy-Authorization reach
	// the server.
	code, b, _ = get(t, e.proxyClient(id, token), e.backend.URL+"/whoami", nil)
	if code != http.StatusOK || json.Unmarshal(b, &w) != nil {
		t.Fatalf("credentials mode: %d %s", code, b)
	}
	if v := w.Headers.Get("Proxy-Authorization"); v != "" {
		t.Errorf("Proxy-Authorization %q reached the server", v)
	}
}

func TestProxyAuth(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("")
	const unknown = "01JNZ5V6X0AAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		name      string
		user, pw  string      // proxy credentials
		hdr       http.Header // X-Roster-* headers
		code      int
		challenge bool   // Proxy-Authenticate expected
		body      string // a part of the text body
	}{
		{name: "no credentials", code: http.StatusProxyAuthRequired, challenge: true, body: "token"},
		{name: "wrong token", user: id, pw: "wrong", code: http.StatusProxyAuthRequired, challenge: true, body: "token"},
		{name: "token prefix", user: id, pw: "t0", code: http.StatusProxyAuthRequired, challenge: true},
		{name: "empty token", user: id, code: http.StatusProxyAuthRequired, challenge: true},
		{name: "headers, wrong token", hdr: http.Header{daemon.HeaderSession: {id}, daemon.HeaderToken: {"nope"}}, code: http.StatusProxyAuthRequired, challenge: true},
		{name: "headers, no token", hdr: http.Header{daemon.HeaderSession: {id}}, code: http.StatusProxyAuthRequired, challenge: true},
		{name: "unknown session", user: unknown, pw: token, code: http.StatusNotFound, body: `session not found: "` + unknown + `"`},
		{name: "unknown session by header", hdr: http.Header{daemon.HeaderSession: {unknown}, daemon.HeaderToken: {token}}, code: http.StatusNotFound, body: unknown},
		{name: "invalid session ID", user: "a b", pw: token, code: http.StatusBadRequest, body: "invalid session ID"},
		{name: "valid", user: id, pw: token, code: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.hits.Load()
			c := &http.Client{Transport: e.proxyTransport(tc.user, tc.pw), Timeout: 30 * time.Second}
			code, b, h := get(t, c, e.backend.URL+"/get", tc.hdr)
			if code != tc.code {
				t.Fatalf("status %d, want %d; body %q", code, tc.code, b)
			}
			if code == http.StatusOK {
				if e.hits.Load() != before+1 {
					t.Fatal("the backend was not reached")
				}
				return
			}
			if e.hits.Load() != before {
				t.Fatal("a refused request reached the backend")
			}
			if got := h.Get("Proxy-Authenticate") != ""; got != tc.challenge {
				t.Errorf("Proxy-Authenticate %q, want present = %v", h.Get("Proxy-Authenticate"), tc.challenge)
			}
			if tc.challenge && !strings.HasPrefix(h.Get("Proxy-Authenticate"), "Basic ") {
				t.Errorf("Proxy-Authenticate %q: want a Basic challenge", h.Get("Proxy-Authenticate"))
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if len(b) > 200 || !strings.Contains(string(b), tc.body) {
				t.Errorf("body %q: want a short text containing %q", b, tc.body)
			}
		})
	}
}

// RFC 9110 section 15.5.8: a 407 MUST carry a Proxy-Authenticate challenge.
func TestProxyNoSession407Challenge(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name     string
		user, pw string
		hdr      http.Header
	}{
		{name: "header token only", hdr: http.Header{daemon.HeaderToken: {token}}},
		{name: "empty user name", pw: token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Transport: e.proxyTransport(tc.user, tc.pw), Timeout: 30 * time.Second}
			code, b, h := get(t, c, e.backend.URL+"/get", tc.hdr)
			if code != http.StatusProxyAuthRequired {
				t.Fatalf("status %d, want 407; body %q", code, b)
			}
			if h.Get("Proxy-Authenticate") == "" {
				t.Fatalf("407 without Proxy-Authenticate; body %q", b)
			}
		})
	}
}

func TestProxySchemeUpgrade(t *testing.T) {
	e := newEnv(t, nil)
	tlsSrv, certPEM := e.tlsBackend()
	trusting := e.create(jsonBody(t, map[string]string{"caCerts": certPEM}))
	plain := e.create("")
	// The client speaks plain http to the daemon; the URL names the TLS
	// server's port.
	target := "http://" + tlsSrv.Listener.Addr().String() + "/whoami"
	up := http.Header{daemon.HeaderScheme: {"https"}}

	code, b, _ := get(t, e.proxyClient(trusting, token), target, up)
	var w whoami
	if code != http.StatusOK || json.Unmarshal(b, &w) != nil {
		t.Fatalf("upgraded request: %d %s", code, b)
	}
	if !w.TLS {
		t.Fatal("the backend saw plain http")
	}
	if v := w.Headers.Get(daemon.HeaderScheme); v != "" {
		t.Fatalf("%s reached the server", daemon.HeaderScheme)
	}
	// The scheme header's value is case-insensitive.
	if code, b, _ := get(t, e.proxyClient(trusting, token), target, http.Header{daemon.HeaderScheme: {"HTTPS"}}); code != http.StatusOK {
		t.Fatalf("X-Roster-Scheme: HTTPS: %d %s", code, b)
	}
	// The daemon verifies the certificate: a session that does not trust
	// it fails with 502.
	code, b, _ = get(t, e.proxyClient(plain, token), target, up)
	if code != http.StatusBadGateway || !strings.Contains(string(b), "certificate") {
		t.Fatalf("untrusted certificate: %d %q, want 502 naming the certificate", code, b)
	}
}

func TestProxyConnect(t *testing.T) {
	e := newEnv(t, nil)
	tlsSrv, _ := e.tlsBackend()
	id := e.create("")
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	tr := e.proxyTransport(id, token)
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	target := "https://" + tlsSrv.Listener.Addr().String() + "/whoami"

	if s := e.stats(id); s.RequestCount != 0 || s.InFlight != 0 {
		t.Fatalf("fresh session: %+v", s)
	}
	for i := range 2 { // two requests, one tunnel
		code, b, _ := get(t, c, target, http.Header{"User-Agent": {"tunnelled/1.0"}})
		var w whoami
		if code != http.StatusOK || json.Unmarshal(b, &w) != nil || !w.TLS {
			t.Fatalf("request %d through the tunnel: %d %s", i, code, b)
		}
		// The tunnel is opaque: the client's own headers arrive as sent.
		if w.UserAgent != "tunnelled/1.0" {
			t.Fatalf("User-Agent %q in the tunnel", w.UserAgent)
		}
		if s := e.stats(id); s.RequestCount != 1 || s.InFlight != 1 {
			t.Fatalf("after request %d, tunnel open: RequestCount %d InFlight %d, want 1 and 1", i, s.RequestCount, s.InFlight)
		}
	}
	if got := e.srv.Manager().Stats().InFlight; got != 1 {
		t.Fatalf("Manager InFlight = %d with the tunnel open", got)
	}
	tr.CloseIdleConnections()
	waitFor(t, "the tunnel to close", func() bool { return e.stats(id).InFlight == 0 })
	if s := e.stats(id); s.RequestCount != 1 {
		t.Fatalf("after the tunnel: RequestCount %d, want 1", s.RequestCount)
	}
}

func TestProxyConnectRefused(t *testing.T) {
	e := newEnv(t, nil)
	tlsSrv, _ := e.tlsBackend()
	id := e.create("")
	addr := tlsSrv.Listener.Addr().String()
	for _, tc := range []struct {
		name, user, pw, target, status string
	}{
		{"wrong token", id, "nope", addr, "407"},
		{"no credentials", "", "", addr, "407"},
		{"unknown session", "01JNZ5V6X0AAAAAAAAAAAAAAAA", token, addr, "404"},
		{"no port", id, token, "127.0.0.1", "400"},
		{"nothing listening", id, token, closedAddr(t), "502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawConnect(t, e.addr, tc.target, tc.user, tc.pw)
			if !strings.Contains(resp, " "+tc.status+" ") {
				t.Fatalf("CONNECT %s: %q, want %s", tc.target, resp, tc.status)
			}
			if tc.status == "407" && !strings.Contains(resp, "Proxy-Authenticate: Basic") {
				t.Fatalf("407 without a challenge: %q", resp)
			}
		})
	}
	if s := e.stats(id); s.InFlight != 0 {
		t.Fatalf("InFlight %d after refused tunnels", s.InFlight)
	}
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rawConnect sends one CONNECT and returns the response head.
func rawConnect(t *testing.T, proxyAddr, target, user, pw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if user != "" || pw != "" {
		req.Header.Set("Proxy-Authorization", "Basic "+basic(user, pw))
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	sb.WriteString(resp.Proto + " " + resp.Status + " ")
	_ = resp.Header.Write(&sb)
	return sb.String()
}

func basic(user, pw string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pw)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func TestProxyStreaming(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, map[string]http.HandlerFunc{"/stream": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	}})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	id := e.create("")
	resp, err := e.proxyClient(id, token).Get(e.backend.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
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
		t.Fatal("the first chunk did not arrive before the backend finished: the proxy buffers")
	}
	close(release)
	released = true
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// A request with a body goes through with the body intact.
func TestProxyPostBody(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("")
	c := e.proxyClient(id, token)
	body := strings.Repeat("roster ", 10000)
	resp, err := c.Post(e.backend.URL+"/post", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data string `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	if out.Data != body {
		t.Fatalf("the server got %d bytes, want %d", len(out.Data), len(body))
	}
}

func TestProxyUpstreamErrors(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	hold := func(signal bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if signal {
				arrived <- struct{}{}
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}
	e := newEnv(t, map[string]http.HandlerFunc{"/hold": hold(false), "/hold-signal": hold(true)})
	defer close(release)

	t.Run("unreachable", func(t *testing.T) {
		id := e.create("")
		code, b, h := get(t, e.proxyClient(id, token), "http://"+closedAddr(t)+"/", nil)
		if code != http.StatusBadGateway || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.HasPrefix(string(b), "roster: ") {
			t.Fatalf("%d %q, want 502 with a text body", code, b)
		}
	})
	t.Run("session timeout", func(t *testing.T) {
		// The session's own timeout (real time) ends a request the
		// backend never answers.
		id := e.create(`{"timeout":50}`)
		code, b, _ := get(t, e.proxyClient(id, token), e.backend.URL+"/hold", nil)
		if code != http.StatusGatewayTimeout {
			t.Fatalf("%d %q, want 504", code, b)
		}
	})
	t.Run("session closed mid-request", func(t *testing.T) {
		id := e.create("")
		got := make(chan int, 1)
		go func() {
			resp, err := e.proxyClient(id, token).Get(e.backend.URL + "/hold-signal")
			if err != nil {
				got <- 0
				return
			}
			resp.Body.Close()
			got <- resp.StatusCode
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the request never reached the backend")
		}
		if code, _ := e.call(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
			t.Fatalf("DELETE: %d", code)
		}
		select {
		case code := <-got:
			if code != http.StatusGone {
				t.Fatalf("request on a session closed under it: %d, want 410", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("closing the session did not end its request")
		}
	})
	waitFor(t, "no request in flight", func() bool { return e.srv.Manager().Stats().InFlight == 0 })
}

func TestAfterShutdown(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create("")
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, b := e.call(http.MethodPost, "/v1/sessions", ""); code != http.StatusServiceUnavailable || !strings.Contains(errorText(t, b), "manager closed") {
		t.Fatalf("create after Shutdown: %d %s, want 503", code, b)
	}
	if code, _ := e.call(http.MethodGet, "/v1/sessions", ""); code != http.StatusOK {
		t.Fatalf("list after Shutdown: %d", code)
	}
	// Shutdown closed the session, so the proxy no longer knows it.
	code, b, _ := get(t, e.proxyClient(id, token), e.backend.URL+"/get", nil)
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(string(b), "roster: ") {
		t.Fatalf("proxy after Shutdown: %d %q, want 503", code, b)
	}
}

// A tunnel counts as in flight for its whole life: the sweeper does not
// evict its session under it, and closing the session closes the tunnel.
func TestConnectTunnelLifetime(t *testing.T) {
	e := newEnv(t, nil, session.WithSessionTimeout(time.Minute))
	tlsSrv, _ := e.tlsBackend()
	id := e.create("")

	c := openTunnel(t, e.addr, tlsSrv.Listener.Addr().String(), id)
	e.clock.Advance(10 * time.Minute)
	if n := e.srv.Manager().Sweep(); n != 0 {
		t.Fatalf("Sweep evicted %d sessions with an open tunnel", n)
	}
	c.Close()
	waitFor(t, "the tunnel to close", func() bool { return e.stats(id).InFlight == 0 })
	e.clock.Advance(2 * time.Minute)
	if n := e.srv.Manager().Sweep(); n != 1 {
		t.Fatalf("Sweep after the tunnel closed evicted %d, want 1", n)
	}

	id = e.create("")
	c = openTunnel(t, e.addr, tlsSrv.Listener.Addr().String(), id)
	defer c.Close()
	if code, _ := e.call(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the tunnel of a deleted session is still open: read %d, %v", n, err)
	}
	waitFor(t, "no request in flight", func() bool { return e.srv.Manager().Stats().InFlight == 0 })
}

// openTunnel sends CONNECT for target through the daemon and returns the
// open connection.
func openTunnel(t *testing.T, proxyAddr, target, id string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target,
		Header: http.Header{"Proxy-Authorization": {"Basic " + basic(id, token)}}}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	// The 200 has no body: reading it byte by byte leaves the tunnel's
	// bytes unread.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head []byte
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			t.Fatalf("CONNECT: %q, %v", head, err)
		}
		head = append(head, b[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 200 ") {
		t.Fatalf("CONNECT: %q", head)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// A body goes out read by read (flushed) when its length is unknown or it
// is an event stream, as httputil.ReverseProxy decides; otherwise through
// net/http's buffer.
func TestStreamed(t *testing.T) {
	for _, tc := range []struct {
		length int64
		ct     string
		want   bool
	}{
		{-1, "text/plain", true},
		{1024, "application/octet-stream", false},
		{0, "", false},
		{1024, "text/event-stream", true},
		{1024, "Text/Event-Stream; charset=utf-8", true},
		{1024, "text/event-streamx", false},
	} {
		resp := &http.Response{ContentLength: tc.length, Header: http.Header{"Content-Type": {tc.ct}}}
		if got := daemon.Streamed(resp); got != tc.want {
			t.Errorf("length %d, %q: streamed %v, want %v", tc.length, tc.ct, got, tc.want)
		}
	}
}
