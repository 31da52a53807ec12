// Package daemon is the HTTP front of a roster Manager, for programs that
// cannot link Go: one listener that is both a forward proxy routing each
// request through a chosen session, and a JSON control API with Prometheus
// metrics. cmd/rosterd runs it.
//
// # The proxy
//
// A client points its proxy setting at the daemon and names a session in
// the proxy credentials (http://SESSION_ID:TOKEN@127.0.0.1:8899), or in the
// headers X-Roster-Session and X-Roster-Token. A request in absolute form
// (GET http://host/path) runs through the session's Do, so its cookies,
// preset headers, upstream proxy and retries apply; the header
// X-Roster-Scheme: https upgrades the URL to https inside the daemon, so
// that the session's own TLS connection and cookies serve https targets. A
// CONNECT opens a tunnel through the session's upstream proxy and local
// address, and counts as a request in flight for its whole life. The
// daemon drops its own headers, hop-by-hop headers and the client's
// User-Agent (so that the session's preset shows) before forwarding, and
// streams responses without buffering.
//
// # The API
//
// Under /v1, with "Authorization: Bearer TOKEN": sessions are created,
// listed, inspected, deleted, saved and restored; /healthz needs no token;
// /metrics (Prometheus text format) needs it.
package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rosterhq/roster/session"
)

// Headers the daemon reads from proxy clients and never forwards.
const (
	HeaderSession = "X-Roster-Session"
	HeaderToken   = "X-Roster-Token"
	HeaderScheme  = "X-Roster-Scheme"
)

// MaxBodyBytes bounds the body of an API request.
const MaxBodyBytes = 1 << 20

// Server serves the proxy and the API for one Manager. Create it with New;
// it is safe for concurrent use.
type Server struct {
	m        *session.Manager
	token    string
	log      *slog.Logger
	metrics  *metrics
	gatherer prometheus.Gatherer
	api      *http.ServeMux
	// intercept is nil unless Options.Intercept is set (see intercept.go).
	intercept *interceptor
}

// Options configure a Server.
type Options struct {
	// Token is the secret every proxy client and API caller must present.
	// It must not be empty.
	Token string
	// Manager options: the cap, timeouts and so on.
	ManagerOptions []session.Option
	// Registerer receives the daemon's metrics; nil means a registry of
	// the Server's own, served at /metrics.
	Registerer prometheus.Registerer
	// Gatherer serves /metrics; nil means the Server's own registry (or
	// prometheus.DefaultGatherer when Registerer is the default one).
	Gatherer prometheus.Gatherer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Intercept, if set, turns on TLS interception of CONNECT tunnels
	// with a local CA; nil keeps every tunnel plain.
	Intercept *InterceptOptions
}

// New returns a Server with a running Manager of its own. It fails if the
// token is empty.
func New(o Options) (*Server, error) {
	if o.Token == "" {
		return nil, errors.New("daemon: empty token")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		reg := prometheus.NewRegistry()
		o.Registerer, o.Gatherer = reg, reg
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	s := &Server{token: o.Token, log: o.Logger, gatherer: o.Gatherer}
	if o.Intercept != nil {
		ic, err := newInterceptor(o.Intercept, o.Logger)
		if err != nil {
			return nil, err
		}
		s.intercept = ic
	}
	sweep := newSweepHistogram()
	opts := append([]session.Option{
		session.WithLogger(o.Logger),
		session.WithOnSweep(func(d time.Duration, _ int) { sweep.Observe(d.Seconds()) }),
	}, o.ManagerOptions...)
	s.m = session.NewManager(opts...)
	s.metrics = newMetrics(s.m, sweep, o.Registerer)
	s.api = s.routes()
	return s, nil
}

// Manager returns the Server's Manager.
func (s *Server) Manager() *session.Manager { return s.m }

// Shutdown shuts the Manager down, waiting until ctx ends for requests in
// flight; see session.Manager.ShutdownContext.
func (s *Server) Shutdown(ctx context.Context) error { return s.m.ShutdownContext(ctx) }

// ServeHTTP dispatches a request: CONNECT and absolute-form requests to the
// proxy, the rest to the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		s.serveConnect(w, r)
		return
	}
	if r.URL.IsAbs() {
		s.serveProxy(w, r)
		return
	}
	s.api.ServeHTTP(w, r)
}

// tokenOK compares in constant time.
func (s *Server) tokenOK(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// proxyCredentials returns the session ID and token a proxy client gave,
// from Proxy-Authorization (Basic, user = session ID, password = token) or
// from the X-Roster-* headers.
func proxyCredentials(r *http.Request) (id, token string) {
	if auth := r.Header.Get("Proxy-Authorization"); auth != "" {
		if scheme, rest, ok := strings.Cut(auth, " "); ok && asciiEqualFold(scheme, "Basic") {
			if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest)); err == nil {
				if u, p, ok := strings.Cut(string(b), ":"); ok {
					return u, p
				}
			}
		}
	}
	return r.Header.Get(HeaderSession), r.Header.Get(HeaderToken)
}

// asciiEqualFold is strings.EqualFold for ASCII only: HTTP auth schemes are
// case-insensitive tokens, and Unicode folding would let "Baſic" pass.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
