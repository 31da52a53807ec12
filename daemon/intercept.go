package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rosterhq/roster/session"
)

// InterceptOptions turn on TLS interception of CONNECT tunnels: a tunnel
// whose client starts a TLS handshake is terminated in the daemon with a
// certificate minted by CA for the host, and each request inside it runs
// through the session, as a plain-http proxy request does.
type InterceptOptions struct {
	// CA mints the certificates; it must not be nil.
	CA *CA
	// Skip lists host patterns whose tunnels stay plain: path.Match globs,
	// matched without case against the CONNECT host and against the
	// name the client asks for in its TLS handshake (SNI), such as
	// "*.apple.com" (which does not match "apple.com" itself).
	Skip []string
	// PeekTimeout is how long the daemon waits for the client's first
	// bytes after CONNECT; a client silent for that long (a protocol in
	// which the server speaks first) gets a plain tunnel. 0 means 1s.
	PeekTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake with the client; 0 means
	// 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes an intercepted tunnel with no request for that
	// long; 0 means 2m.
	IdleTimeout time.Duration
}

// Timeouts of InterceptOptions left at zero.
const (
	DefaultPeekTimeout          = time.Second
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultInterceptIdleTimeout = 2 * time.Minute
)

// ErrBadSkipPattern is wrapped by the error New returns for a Skip pattern
// that does not parse.
var ErrBadSkipPattern = errors.New("bad -intercept-skip pattern")

// interceptor is the daemon's TLS interception, set when Options.Intercept
// is.
type interceptor struct {
	ca                    *CA
	skip                  []string
	peek, handshake, idle time.Duration
	errLog                *log.Logger
}

func newInterceptor(o *InterceptOptions, logger *slog.Logger) (*interceptor, error) {
	if o.CA == nil {
		return nil, errors.New("daemon: Intercept without a CA")
	}
	ic := &interceptor{ca: o.CA, peek: o.PeekTimeout, handshake: o.HandshakeTimeout, idle: o.IdleTimeout,
		errLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	for _, p := range o.Skip {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrBadSkipPattern, p, err)
		}
		ic.skip = append(ic.skip, p)
	}
	if ic.peek <= 0 {
		ic.peek = DefaultPeekTimeout
	}
	if ic.handshake <= 0 {
		ic.handshake = DefaultHandshakeTimeout
	}
	if ic.idle <= 0 {
		ic.idle = DefaultInterceptIdleTimeout
	}
	return ic, nil
}

// skipped reports whether host (no port) matches a Skip pattern.
func (ic *interceptor) skipped(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range ic.skip {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

// wants reports whether a CONNECT to addr (host:port) by sess is to be
// intercepted: the session has not opted out and the host is not skipped.
func (ic *interceptor) wants(sess *session.Session, addr string) bool {
	if on := sess.Config().Intercept; on != nil && !*on {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	return err == nil && !ic.skipped(host)
}

// errSkipSNI aborts the handshake with a client whose SNI is skipped.
var errSkipSNI = errors.New("SNI matches -intercept-skip")

// serveIntercept serves an authenticated CONNECT to addr for sess. It
// answers 200 at once, then looks at the client's first bytes: a TLS
// handshake is terminated with a leaf for the host, and its requests run
// through the session; anything else (and a TLS client naming a skipped
// host) is spliced raw to addr, as a plain tunnel.
func (s *Server) serveIntercept(w http.ResponseWriter, r *http.Request, sess *session.Session, addr string) {
	ic := s.intercept
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.proxyError(w, http.StatusInternalServerError, "roster: cannot take over the connection: "+err.Error())
		return
	}
	defer c.Close()
	s.metrics.request(http.StatusOK)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// From here on, read the connection itself: brw reads through the
	// http.Server's reader, whose first error (a peek's timeout) would
	// cancel r's context; the tunnel's life is its own, and ends with
	// the connection or the session.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(buffered), c))
	ctx := context.WithoutCancel(r.Context())
	// A TLS record of a handshake starts with 22 (RFC 8446 section 5.1).
	_ = c.SetReadDeadline(time.Now().Add(ic.peek))
	first, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case err != nil && !(errors.As(err, &ne) && ne.Timeout()):
		return // the client went away
	case err != nil || first[0] != 0x16:
		s.splice(ctx, sess, addr, c, br, nil)
		return
	}

	host, _, _ := net.SplitHostPort(addr)
	rc := &recordingConn{Conn: c, r: br, recording: true}
	tc := tls.Server(rc, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			if chi.ServerName != "" && ic.skipped(chi.ServerName) {
				rc.discardWrites = true // no alert: the server is to answer this hello
				return nil, errSkipSNI
			}
			rc.recording, rc.recorded = false, nil
			return nil, nil
		},
		GetCertificate: func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if chi.ServerName != "" {
				return ic.ca.Leaf(chi.ServerName)
			}
			return ic.ca.Leaf(host) // an IP address: clients send no SNI for it
		},
	})
	hctx, cancel := context.WithTimeout(ctx, ic.handshake)
	err = tc.HandshakeContext(hctx)
	cancel()
	if errors.Is(err, errSkipSNI) {
		s.splice(ctx, sess, addr, c, br, rc.recorded)
		return
	}
	if err != nil {
		// A client that does not trust the CA ends here, with its own
		// TLS alert: it gets nothing else.
		s.log.Debug("intercept: TLS handshake with the client failed", "target", addr, "err", err)
		return
	}

	ctx, release, err := sess.Hold(ctx)
	if err != nil {
		return
	}
	defer release()
	// Closing the session (or the daemon's shutdown) ends the tunnel,
	// idle or not; the requests in it are cancelled by the session.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	t := newInterceptTunnel(s, sess, addr)
	done := make(chan struct{})
	var once sync.Once
	t.finish = func() { once.Do(func() { close(done) }) }
	srv := &http.Server{
		Handler:           t,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       ic.idle,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				t.finish()
			}
		},
		ErrorLog: ic.errLog,
	}
	// Serve speaks HTTP/2 or HTTP/1.1 as ALPN chose; it returns once the
	// one connection is done (closed, or hijacked and spliced).
	_ = srv.Serve(&oneConnListener{c: tc, done: done})
}

// splice copies bytes both ways between the client (c, read through br)
// and addr, dialled through the session, after sending prefix: a plain
// tunnel opened after the 200 was sent.
func (s *Server) splice(ctx context.Context, sess *session.Session, addr string, c net.Conn, br io.Reader, prefix []byte) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	up, err := sess.Dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		s.log.Debug("intercept: dialling for a plain tunnel failed", "target", addr, "err", err)
		return
	}
	defer up.Close()
	if len(prefix) > 0 {
		if _, err := up.Write(prefix); err != nil {
			return
		}
	}
	pipe(c, br, up)
}

// pipe copies client (read through br) to up and up to client until up is
// done, then closes client. When the client is done first, up is
// half-closed where it can be, else closed (a WebSocket's 101 body cannot
// be half-closed: a server that answers only after the client's
// half-close loses its answer).
func pipe(client net.Conn, br io.Reader, up io.ReadWriteCloser) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(up, br)
		closeWrite(up)
	})
	_, _ = io.Copy(client, up)
	_ = client.Close()
	wg.Wait()
}

// recordingConn reads through r (the hijacked conn's buffer) and, while
// recording, keeps what it read: the ClientHello, to replay to the server
// if the tunnel turns out to be skipped.
type recordingConn struct {
	net.Conn
	r             io.Reader
	recording     bool
	recorded      []byte
	discardWrites bool
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.recording {
		c.recorded = append(c.recorded, p[:n]...)
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	if c.discardWrites {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// oneConnListener hands out one connection, then blocks until done.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done <-chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// tunnel serves the requests inside one intercepted tunnel.
type interceptTunnel struct {
	s        *Server
	sess     *session.Session
	client   *http.Client // the session's, passing redirects back
	addr     string       // the CONNECT target, host:port
	hostname string
	urlHost  string // addr without :443
	finish   func()
}

func newInterceptTunnel(s *Server, sess *session.Session, addr string) *interceptTunnel {
	c := sess.Client()
	// The client follows redirects itself, through the proxy again.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	host, port, _ := net.SplitHostPort(addr)
	t := &interceptTunnel{s: s, sess: sess, client: c, addr: addr, hostname: host, urlHost: addr}
	if port == "443" {
		t.urlHost = host
		if strings.Contains(host, ":") {
			t.urlHost = "[" + host + "]"
		}
	}
	return t
}

// copyBufs holds the buffers that bodies stream through: a tunnel's
// requests are many and small, and a fresh 32 KiB each was most of their
// garbage.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Headers an HTTP library sends of itself, which would show through the
// browser the session's preset presents: the preset's win.
var libraryHeaders = []string{"User-Agent", "Accept-Encoding"}

func (t *interceptTunnel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade") {
		t.upgrade(w, r)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	// The request goes where the tunnel goes, whatever its Host says.
	out.URL.Scheme, out.URL.Host, out.Host = "https", t.urlHost, ""
	removeHopHeaders(out.Header)
	for _, k := range libraryHeaders {
		out.Header.Del(k)
	}
	if out.Header.Get("Accept") == "*/*" { // curl's and requests' default
		out.Header.Del("Accept")
	}
	t.mergeCookies(out)
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := t.client.Do(out)
	if err != nil {
		status := http.StatusBadGateway
		switch {
		case errors.Is(err, session.ErrSessionClosed):
			status = http.StatusGone
		case errors.Is(err, context.DeadlineExceeded):
			status = http.StatusGatewayTimeout
		case r.Context().Err() != nil:
			return // the client went away
		}
		t.s.proxyError(w, status, "roster: "+err.Error())
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, vv := range resp.Header {
		w.Header()[k] = vv
	}
	t.s.metrics.request(resp.StatusCode)
	w.WriteHeader(resp.StatusCode)
	// The head goes out now, before any of the body: a long poll or an
	// event stream shows its status at once.
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// The body was cut (the session closed, the server went
			// away): reset the stream, or close the connection, so
			// that the client does not take what it got for all.
			panic(http.ErrAbortHandler)
		}
	}
}

// mergeCookies drops from the client's Cookie header the cookies the
// session's jar will send under the same name: the session's identity wins,
// and the server never sees a name twice.
func (t *interceptTunnel) mergeCookies(req *http.Request) {
	if t.client.Jar == nil || req.Header.Get("Cookie") == "" {
		return
	}
	fromJar := map[string]bool{}
	for _, c := range t.client.Jar.Cookies(req.URL) {
		fromJar[c.Name] = true
	}
	if len(fromJar) == 0 {
		return
	}
	var keep []string
	for _, c := range req.Cookies() {
		if !fromJar[c.Name] {
			keep = append(keep, c.String())
		}
	}
	req.Header.Del("Cookie")
	if len(keep) > 0 {
		req.Header.Set("Cookie", strings.Join(keep, "; "))
	}
}

// upgrade sends an HTTP/1.1 Upgrade request (a WebSocket) as the session:
// its browser's TLS handshake for a WebSocket and its handshake headers,
// the client's own Sec-WebSocket-*, Origin and other headers kept but for
// those an HTTP library sends of itself, and the session's cookies when the
// client sent none; then it splices the client's connection to the
// server's.
func (t *interceptTunnel) upgrade(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = "https", t.urlHost, ""
	for _, k := range []string{"Proxy-Authorization", "Proxy-Connection", HeaderSession, HeaderToken, HeaderScheme} {
		out.Header.Del(k)
	}
	for _, k := range libraryHeaders {
		out.Header.Del(k)
	}
	jar := t.client.Jar
	if jar != nil && out.Header.Get("Cookie") == "" {
		for _, c := range jar.Cookies(out.URL) {
			out.AddCookie(c)
		}
	}
	out.Body, out.ContentLength = nil, 0 // a handshake has no body
	// The session's RoundTripper, not its Client: a Client with a Timeout
	// would hand back a 101 whose body cannot be written.
	resp, err := t.client.Transport.RoundTrip(out)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, session.ErrSessionClosed) {
			status = http.StatusGone
		}
		t.s.proxyError(w, status, "roster: "+err.Error())
		return
	}
	defer resp.Body.Close()
	if jar != nil {
		if rc := resp.Cookies(); len(rc) > 0 {
			jar.SetCookies(out.URL, rc)
		}
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode == http.StatusSwitchingProtocols && !ok {
		t.s.proxyError(w, http.StatusBadGateway, "roster: the server switched protocols on a connection that cannot be written")
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Refused: the answer goes to the client as it came.
		removeHopHeaders(resp.Header)
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		t.s.metrics.request(resp.StatusCode)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.s.proxyError(w, http.StatusInternalServerError, "roster: cannot take over the connection: "+err.Error())
		return
	}
	defer t.finish() // a hijacked connection never reaches StateClosed
	defer c.Close()
	t.s.metrics.request(http.StatusSwitchingProtocols)
	head := "HTTP/1.1 101 Switching Protocols\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		return
	}
	if err := resp.Header.Write(c); err != nil {
		return
	}
	if _, err := io.WriteString(c, "\r\n"); err != nil {
		return
	}
	pipe(c, brw.Reader, rw)
}

// headerHasToken reports whether a comma-separated header has token,
// without case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if asciiEqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// caPEM serves the CA's certificate, for clients to trust; 404 without
// interception.
func (s *Server) caPEM(w http.ResponseWriter, _ *http.Request) {
	if s.intercept == nil {
		writeError(w, http.StatusNotFound, "interception is off: start rosterd with -intercept")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="`+CACertFile+`"`)
	_, _ = w.Write(s.intercept.ca.CertPEM())
}
