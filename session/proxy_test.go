package session

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// testProxy is an HTTP forward proxy on 127.0.0.1 for the tests: absolute-
// form requests for http:// targets and CONNECT tunnels for https://. It
// requires Basic credentials if user is set, and counts what it served.
type testProxy struct {
	*httptest.Server
	user, pass string
	requests   atomic.Int64 // forwarded requests
	tunnels    atomic.Int64 // CONNECT tunnels opened
}

func newTestProxy(t *testing.T, user, pass string, useTLS bool) *testProxy {
	t.Helper()
	p := &testProxy{user: user, pass: pass}
	p.Server = httptest.NewUnstartedServer(p)
	if useTLS {
		p.StartTLS()
	} else {
		p.Start()
	}
	t.Cleanup(p.Close)
	return p
}

func (p *testProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		if r.Header.Get("Proxy-Authorization") != want {
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			http.Error(w, "proxy credentials required", http.StatusProxyAuthRequired)
			return
		}
	}
	if r.Method == http.MethodConnect {
		p.tunnels.Add(1)
		p.tunnel(w, r)
		return
	}
	p.requests.Add(1)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Authorization")
	out.Header.Del("Proxy-Connection")
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vv := range resp.Header {
		w.Header()[k] = vv
	}
	w.Header().Set("Via", "1.1 test-proxy")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *testProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	splice(c, rw.Reader, up)
}

// splice copies both ways until either side is done, then closes both.
func splice(c net.Conn, buffered io.Reader, up net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, buffered); closeWrite(up) })
	wg.Go(func() { _, _ = io.Copy(c, up); closeWrite(c) })
	wg.Wait()
	c.Close()
	up.Close()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}

// testSOCKS5 is a SOCKS5 server (RFC 1928, with RFC 1929 username and
// password) on 127.0.0.1 that supports CONNECT.
type testSOCKS5 struct {
	ln         net.Listener
	user, pass string
	conns      atomic.Int64
	wg         sync.WaitGroup
}

func newTestSOCKS5(t *testing.T, user, pass string) *testSOCKS5 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testSOCKS5{ln: ln, user: user, pass: pass}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *testSOCKS5) Addr() string { return s.ln.Addr().String() }

func (s *testSOCKS5) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	// Greeting: VER NMETHODS METHODS...
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r, hdr); err != nil || hdr[0] != 5 {
		return
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return
	}
	if s.user != "" {
		if _, err := c.Write([]byte{5, 2}); err != nil {
			return
		}
		if err := s.auth(r, c); err != nil {
			return
		}
	} else if _, err := c.Write([]byte{5, 0}); err != nil {
		return
	}
	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT
	req := make([]byte, 4)
	if _, err := io.ReadFull(r, req); err != nil || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1:
		b := make([]byte, 4)
		_, _ = io.ReadFull(r, b)
		host = net.IP(b).String()
	case 3:
		n, _ := r.ReadByte()
		b := make([]byte, n)
		_, _ = io.ReadFull(r, b)
		host = string(b)
	case 4:
		b := make([]byte, 16)
		_, _ = io.ReadFull(r, b)
		host = net.IP(b).String()
	default:
		return
	}
	pb := make([]byte, 2)
	if _, err := io.ReadFull(r, pb); err != nil {
		return
	}
	up, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(pb)))))
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	s.conns.Add(1)
	if _, err := c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		up.Close()
		return
	}
	splice(c, r, up)
}

func (s *testSOCKS5) auth(r *bufio.Reader, c net.Conn) error {
	ver, _ := r.ReadByte()
	ul, _ := r.ReadByte()
	u := make([]byte, ul)
	_, _ = io.ReadFull(r, u)
	pl, _ := r.ReadByte()
	p := make([]byte, pl)
	if _, err := io.ReadFull(r, p); err != nil || ver != 1 {
		return errors.New("bad auth request")
	}
	if string(u) != s.user || string(p) != s.pass {
		_, _ = c.Write([]byte{1, 1})
		return errors.New("bad credentials")
	}
	_, err := c.Write([]byte{1, 0})
	return err
}
