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
		h.Del(name)
	}
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

func (s *Server) proxyError(w http.ResponseWriter, status int, msg string) {
	s.metrics.request(status)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// serveProxy forwards an absolute-form request through its session.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	sess := s.proxySession(w, r)
	if sess == nil {
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	if strings.EqualFold(r.Header.Get(HeaderScheme), "https") && out.URL.Scheme == "http" {
		out.URL.Scheme = "https"
		if out.URL.Port() == "80" {
			out.URL.Host = out.URL.Hostname()
		}
	}
	removeHopHeaders(out.Header)
	out.Header.Del("User-Agent") // the session's preset speaks for it
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := sess.Do(out)
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
		s.proxyError(w, status, "roster: "+err.Error())
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, vv := range resp.Header {
		w.Header()[k] = vv
	}
	s.metrics.request(resp.StatusCode)
	w.WriteHeader(resp.StatusCode)
	copyFlushing(w, resp.Body)
}

// copyFlushing copies body to w, flushing after every read so that a
// streaming response reaches the client as it comes.
func copyFlushing(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// serveConnect opens a tunnel through the session.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	sess := s.proxySession(w, r)
	if sess == nil {
		return
	}
	addr := r.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		s.proxyError(w, http.StatusBadRequest, fmt.Sprintf("roster: CONNECT target %q is not host:port", addr))
		return
	}
	if s.intercept != nil && s.intercept.wants(sess, addr) {
		s.serveIntercept(w, r, sess, addr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
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
	var wg sync.WaitGroup
	wg.Go(func() {
		// Bytes the client sent after the CONNECT line are in brw.
		_, _ = io.Copy(up, brw.Reader)
		closeWrite(up)
	})
	_, _ = io.Copy(c, up)
	// The server is done: so is the tunnel. Closing the client side also
	// ends the copy the other way if the client keeps its side open.
	_ = c.Close()
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
