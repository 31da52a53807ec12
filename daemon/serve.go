package daemon

import (
	"context"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/netutil"
)

// HTTPServer returns an http.Server that serves s with the limits of its
// Options: MaxHeaderBytes, ReadHeaderTimeout, IdleTimeout, and an ErrorLog
// that goes to the Server's logger at WARN (ERROR for a handler panic), so
// that accept errors such as running out of file descriptors show at the
// default level. Serve it on a listener from Listener.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		MaxHeaderBytes:    max(s.lim.maxHeaderBytes, 0), // 0: Go's 1 MiB
		ReadHeaderTimeout: s.lim.readHeader,
		IdleTimeout:       s.lim.idle,
		ErrorLog:          log.New(errorLogWriter{s.log}, "", 0),
	}
}

// Listener returns ln capped at Options.MaxConns connections at once, and
// records its address: a session whose upstream proxy resolves to it is
// refused, since its requests would come back to this daemon.
func (s *Server) Listener(ln net.Listener) net.Listener {
	s.selfMu.Lock()
	s.self = append(s.self, ln.Addr())
	s.selfMu.Unlock()
	if s.lim.maxConns > 0 {
		return netutil.LimitListener(ln, s.lim.maxConns)
	}
	return ln
}

// errorLogWriter turns net/http's server log lines into slog records.
type errorLogWriter struct{ log *slog.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(msg, "panic serving") {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, "http server: "+msg)
	return len(p), nil
}

// isSelf reports whether proxyURL points at one of the daemon's own
// listeners. A host name is resolved, within a short deadline; a name that
// does not resolve is not refused here (the request fails later anyway).
func (s *Server) isSelf(ctx context.Context, proxyURL string) bool {
	if proxyURL == "" {
		return false
	}
	s.selfMu.Lock()
	self := append([]net.Addr(nil), s.self...)
	s.selfMu.Unlock()
	if len(self) == 0 {
		return false
	}
	u, err := url.Parse(proxyURL)
	if err != nil || u.Hostname() == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return false
	}
	var local []netip.Addr // the host's own addresses, looked up once if needed
	for _, a := range self {
		ta, ok := a.(*net.TCPAddr)
		if !ok || port != strconv.Itoa(ta.Port) {
			continue
		}
		lip, _ := netip.AddrFromSlice(ta.IP)
		lip = lip.Unmap()
		for _, ip := range ips {
			ip = ip.Unmap()
			if ip == lip {
				return true
			}
			if lip.IsUnspecified() {
				if ip.IsLoopback() || ip.IsUnspecified() {
					return true
				}
				if local == nil {
					local = interfaceAddrs()
				}
				for _, l := range local {
					if l == ip {
						return true
					}
				}
			}
		}
	}
	return false
}

func interfaceAddrs() []netip.Addr {
	out := []netip.Addr{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
