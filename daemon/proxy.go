package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rosterhq/roster/session"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1, which a
// proxy must not forward, and the daemon's own.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	HeaderSession, HeaderToken, HeaderScheme,
}

func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name) // the names above are canonical
	}
}

// looped reports whether r already passed through this daemon: its Via
// header carries the daemon's pseudonym.
func (s *Server) looped(w http.ResponseWriter, r *http.Request) bool {
	for _, v := range r.Header["Via"] {
		if strings.Contains(v, s.via) {
			s.proxyError(w, http.StatusLoopDetected, "roster: this request has already passed through this rosterd (Via "+s.via+"): a session's upstream proxy leads back here")
			return true
		}
	}
	return false
}

// proxySession authenticates a proxy client and returns its session, or
// writes the error and returns nil.
func (s *Server) proxySession(w http.ResponseWriter, r *http.Request) *session.Session {
	id, token := proxyCredentials(r)
	if !s.tokenOK(token) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="rosterd"`)
		s.proxyError(w, http.StatusProxyAuthRequired, "roster: missing or wrong token: use http://SESSION_ID:TOKEN@host:port as the proxy URL")
		return nil
	}
	if id == "" {
		w.Header().Set("Proxy-Authenticate", `Basic realm="rosterd"`)
		s.proxyError(w, http.StatusProxyAuthRequired, "roster: no session: give it as the proxy user name or in "+HeaderSession)
		return nil
	}
	sess, err := s.m.GetSession(id)
	if err != nil {
		// 404 unknown, 400 invalid ID, 503 shutting down: as the API says.
		s.proxyError(w, statusOf(err), "roster: "+err.Error())
		return nil
	}
	return sess
}

// proxyError answers a proxy request that failed. The connection closes
// after it: the request's body may be unread, and reading it (as net/http
// does, up to 256 KiB, before reusing a connection) would let a client
// that trickles it hold the connection and delay the answer.
func (s *Server) proxyError(w http.ResponseWriter, status int, msg string) {
	s.metrics.request(status)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
	closeAfter(w)
}

// closeAfter makes the connection close once the response is written,
// without reading what is left of the request's body: net/http would read
// up to 256 KiB of it first, as slowly as the client sends it.
func closeAfter(w http.ResponseWriter) {
	w.Header().Set("Connection", "close") // if not written yet
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// clientBody wraps a proxied request's body to tell the client's mistakes
// (a bad chunk, a short body) from the upstream's.
type clientBody struct {
	io.ReadCloser
	err atomic.Pointer[error]
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// serveProxy forwards an absolute-form request through its session. The
// session's redirects are not followed: a 3xx goes to the client as it
// came, and its cookies stay in the session.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	if s.looped(w, r) {
		return
	}
	sess := s.proxySession(w, r)
	if sess == nil {
		return
	}
	if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
		s.proxyError(w, http.StatusBadRequest, fmt.Sprintf("roster: scheme %q: want http or https", r.URL.Scheme))
		return
	}
	if r.URL.Host == "" {
		s.proxyError(w, http.StatusBadRequest, fmt.Sprintf("roster: request target %q has no host", r.RequestURI))
		return
	}
	// A shallow copy: the handler owns r's header, so it is edited in
	// place rather than copied.
	out := r.WithContext(session.WithoutRedirects(r.Context()))
	out.RequestURI = ""
	out.Close = false // the client's Connection: close is about its own hop
	if strings.EqualFold(r.Header.Get(HeaderScheme), "https") && out.URL.Scheme == "http" {
		u := *out.URL
		u.Scheme = "https"
		if u.Port() == "80" {
			u.Host = u.Hostname()
		}
		out.URL = &u
	}
	removeHopHeaders(out.Header)
	delete(out.Header, "User-Agent") // the session's preset speaks for it
	if sess.ProxyURL() != nil {
		// Only a request that goes on to another proxy can come back.
		out.Header.Add("Via", "1.1 "+s.via)
	}
	var body *clientBody
	if r.ContentLength == 0 {
		out.Body = nil
	} else {
		body = &clientBody{ReadCloser: r.Body}
		out.Body = body
	}
	resp, err := sess.Do(out)
	if err != nil {
		status := http.StatusBadGateway
		switch {
		case body != nil && body.err.Load() != nil:
			status = http.StatusBadRequest
			err = fmt.Errorf("reading the request body: %w", *body.err.Load())
		case errors.Is(err, session.ErrSessionClosed):
			status = http.StatusGone
		case errors.Is(err, context.DeadlineExceeded):
			status = http.StatusGatewayTimeout
		case r.Context().Err() != nil:
			return // the client went away
		}
		s.proxyError(w, status, "roster: "+err.Error())
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	s.metrics.request(resp.StatusCode)
	w.WriteHeader(resp.StatusCode)
	if err := copyBody(w, resp.Body, streamed(resp)); err != nil {
		// The body ended early (the upstream broke off, the session
		// closed or timed out): abort the response, so that the client
		// sees a truncation rather than a complete body. net/http closes
		// the connection without the last chunk and logs nothing.
		panic(http.ErrAbortHandler)
	}
}

// bufPool holds copy buffers, so that a proxied response allocates none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// errClientGone is copyBody's error when the client stopped reading.
var errClientGone = errors.New("client gone")

// streamed reports whether resp's body should reach the client as it
// comes, read by read: a body of unknown length (chunked or up to the
// close) or an event stream. This is httputil.ReverseProxy's rule; a body
// of known length is written through net/http's buffer instead, without a
// flush per read.
func streamed(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// copyBody copies body to w, flushing after every read if flush is set. It
// returns nil at the body's EOF, errClientGone if writing to the client
// failed, and the read error if the body ended early.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	rc := http.NewResponseController(w)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return errClientGone
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// serveConnect opens a tunnel through the session.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	if s.looped(w, r) {
		return
	}
	sess := s.proxySession(w, r)
	if sess == nil {
		return
	}
	addr, err := parseConnectTarget(r.RequestURI)
	if err != nil {
		s.proxyError(w, http.StatusBadRequest, "roster: "+err.Error())
		return
	}
	release, status, msg := s.acquireTunnel(sess.ID())
	if release == nil {
		s.proxyError(w, status, msg)
		return
	}
	defer release()
	if s.intercept != nil && s.intercept.wants(sess, addr) {
		s.serveIntercept(w, r, sess, addr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	if sess.ProxyURL() != nil {
		ctx = session.WithConnectHeader(ctx, http.Header{"Via": {"1.1 " + s.via}})
	}
	up, err := sess.Dial(ctx, "tcp", addr)
	cancel()
	if err != nil {
		s.proxyError(w, http.StatusBadGateway, "roster: "+err.Error())
		return
	}
	defer up.Close()
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
	t := &tunnel{idle: s.lim.tunnelIdle, now: time.Now}
	t.touch()
	var wg sync.WaitGroup
	wg.Go(func() {
		// Bytes the client sent after the CONNECT line are in brw.
		t.pipe(up, brw.Reader, c)
		closeWrite(up)
	})
	t.pipe(c, up, up)
	// The server is done: so is the tunnel. Closing the client side also
	// ends the copy the other way if the client keeps its side open.
	_ = c.Close()
	wg.Wait()
}

// acquireTunnel takes a tunnel slot for session id, or returns a nil
// release with the status and message to answer.
func (s *Server) acquireTunnel(id string) (release func(), status int, msg string) {
	if n := s.tunnels.Add(1); s.lim.maxTunnels > 0 && n > int64(s.lim.maxTunnels) {
		s.tunnels.Add(-1)
		return nil, http.StatusServiceUnavailable, fmt.Sprintf("roster: %d CONNECT tunnels are open, the most this rosterd allows (-max-tunnels)", s.lim.maxTunnels)
	}
	s.tunnelsMu.Lock()
	if s.lim.maxTunnelsPerSess > 0 && s.perSess[id] >= s.lim.maxTunnelsPerSess {
		s.tunnelsMu.Unlock()
		s.tunnels.Add(-1)
		return nil, http.StatusTooManyRequests, fmt.Sprintf("roster: session %s has %d CONNECT tunnels open, the most allowed per session (-max-tunnels-per-session)", id, s.lim.maxTunnelsPerSess)
	}
	s.perSess[id]++
	s.tunnelsMu.Unlock()
	return func() {
		s.tunnelsMu.Lock()
		if s.perSess[id]--; s.perSess[id] <= 0 {
			delete(s.perSess, id)
		}
		s.tunnelsMu.Unlock()
		s.tunnels.Add(-1)
	}, 0, ""
}

// tunnel copies both ways and ends once no byte went either way for idle
// (if idle > 0).
type tunnel struct {
	idle time.Duration
	now  func() time.Time // time.Now but in tests
	last atomic.Int64     // when a byte last went either way, in Unix ns
}

func (t *tunnel) touch() { t.last.Store(t.now().UnixNano()) }

// pipe copies src (which reads from srcConn) to dst until either fails or
// the tunnel has been idle for t.idle.
func (t *tunnel) pipe(dst net.Conn, src io.Reader, srcConn net.Conn) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if t.idle > 0 {
			_ = srcConn.SetReadDeadline(time.Now().Add(t.idle))
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.touch()
			if t.idle > 0 {
				_ = dst.SetWriteDeadline(time.Now().Add(t.idle))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			var ne net.Error
			if t.idle > 0 && errors.As(err, &ne) && ne.Timeout() && t.now().Sub(time.Unix(0, t.last.Load())) < t.idle {
				continue // quiet this way, busy the other
			}
			return
		}
	}
}

func closeWrite(c io.Closer) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
