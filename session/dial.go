package session

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/proxy"
)

// Dial opens a connection to addr ("host:port") the way the session's
// requests reach their servers: through its proxy (a CONNECT tunnel through
// an http:// or https:// proxy, or SOCKS5), from its LocalAddress, with
// ConnectTo applied when there is no proxy. The connection counts as a
// request in flight until it is closed, so the session is not evicted
// under it, and closing the session closes it. network must be "tcp",
// "tcp4" or "tcp6".
func (s *Session) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("session %q: Dial: network %q is not tcp", s.id, network)
	}
	h, err := s.http()
	if err != nil {
		return nil, err
	}
	if err := s.beginRequest(); err != nil {
		return nil, err
	}
	// Closing the session cancels the dial too.
	dctx, cancel := context.WithCancelCause(ctx)
	stopDial := context.AfterFunc(h.closed, func() { cancel(ErrSessionClosed) })
	c, err := h.dialThrough(dctx, network, addr)
	stopDial()
	cancel(nil)
	if err != nil {
		s.endRequest()
		h.afterRequest()
		return nil, closedErr(dctx, err)
	}
	tc := &trackedConn{Conn: c}
	tc.stop = context.AfterFunc(h.closed, func() { _ = c.Close() })
	tc.done = func() {
		s.endRequest()
		h.afterRequest()
	}
	if h.closed.Err() != nil { // closed as the dial finished
		_ = tc.Close()
		return nil, ErrSessionClosed
	}
	return tc, nil
}

// dialThrough dials addr through the session's current proxy, if any.
func (h *httpState) dialThrough(ctx context.Context, network, addr string) (net.Conn, error) {
	pu := h.s.proxy.Load()
	if pu == nil {
		return h.dial(ctx, network, addr)
	}
	switch pu.Scheme {
	case "socks5", "socks5h":
		var auth *proxy.Auth
		if pu.User != nil {
			pass, _ := pu.User.Password()
			auth = &proxy.Auth{User: pu.User.Username(), Password: pass}
		}
		d, err := proxy.SOCKS5("tcp", canonicalAddr(pu), auth, (*directDialer)(h))
		if err != nil {
			return nil, err
		}
		return d.(proxy.ContextDialer).DialContext(ctx, network, addr)
	default:
		return h.connect(ctx, pu, addr)
	}
}

// connect opens a CONNECT tunnel to addr through an HTTP(S) proxy.
func (h *httpState) connect(ctx context.Context, pu *url.URL, addr string) (net.Conn, error) {
	c, err := h.dialer.DialContext(ctx, "tcp", canonicalAddr(pu))
	if err != nil {
		return nil, err
	}
	if pu.Scheme == "https" {
		cfg := h.tlsConf.Clone()
		cfg.ServerName = pu.Hostname()
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	// The context bounds the handshake with the proxy: if it ends, the
	// connection is closed under the read below.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	for k, vv := range connectHeader(ctx) {
		req.Header[k] = vv
	}
	if pu.User != nil {
		pass, _ := pu.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pass)))
	}
	if err := req.Write(c); err != nil {
		stop()
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if !stop() { // ctx ended: c is closed, whatever was read
		c.Close()
		return nil, context.Cause(ctx)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	// The tunnel starts right after the response head: its "body" is
	// the server's bytes, so it is neither read nor closed here (a
	// proxy that sends no Content-Length would make Close read until
	// the server hangs up).
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", pu.Host, addr, resp.Status)
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// canonicalAddr returns u's host:port as net/http (and fhttp) dial it: the
// scheme's default port if it has none, and an internationalised name in
// its ASCII (punycode) form, so that ConnectTo, DNS and SNI see that form.
func canonicalAddr(u *url.URL) string {
	host, ascii := asciiHost(u.Hostname())
	port := u.Port()
	if port == "" {
		port = defaultPorts[u.Scheme]
	} else if ascii {
		return u.Host
	}
	return net.JoinHostPort(host, port)
}

// asciiHost returns host in its ASCII form (IDNA's lookup profile:
// punycode, lower case), and true if it was ASCII already (then host as it
// is). A host IDNA refuses stays as it is, to fail at the lookup.
func asciiHost(host string) (string, bool) {
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			if a, err := idna.Lookup.ToASCII(host); err == nil {
				return a, false
			}
			return host, false
		}
	}
	return host, true
}

// asciiAuthority returns u.Host with a non-ASCII name in its ASCII form
// (asciiHost), and true if it was ASCII already.
func asciiAuthority(u *url.URL) (string, bool) {
	host, ok := asciiHost(u.Hostname())
	if ok {
		return u.Host, true
	}
	if p := u.Port(); p != "" {
		return net.JoinHostPort(host, p), false
	}
	return host, false
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}

// directDialer is the session's own dialer, as x/net/proxy wants it.
type directDialer httpState

func (d *directDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d *directDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return (*httpState)(d).dialer.DialContext(ctx, network, addr)
}

// bufferedConn is a conn whose first bytes were read into a bufio.Reader.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// trackedConn ends its in-flight count when closed.
type trackedConn struct {
	net.Conn
	stop func() bool
	done func()
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.stop()
		c.done()
	})
	return err
}

// CloseWrite half-closes the connection where the underlying one can.
func (c *bufferedConn) CloseWrite() error { return closeWriteOf(c.Conn) }

// CloseWrite half-closes the connection where the underlying one can.
func (c *trackedConn) CloseWrite() error { return closeWriteOf(c.Conn) }

func closeWriteOf(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
