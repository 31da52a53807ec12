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
// preset headers, upstream proxy and retries apply, but not its redirect
// following: a 3xx goes to the client as a forward proxy's does (its
// cookies stay in the session). A body that breaks off upstream breaks off
// for the client too. The header X-Roster-Scheme: https upgrades the URL to
// https inside the daemon, so that the session's own TLS connection and
// cookies serve https targets. A CONNECT (authority form only: host:port)
// opens a tunnel through the session's upstream proxy and local address,
// and counts as a request in flight for its whole life; tunnels are
// bounded in number and idle time. A request that carries this daemon's
// Via token has looped and gets 508. The daemon drops its own headers,
// hop-by-hop headers and the client's User-Agent (so that the session's
// preset shows) before forwarding, and streams responses without
// buffering.
//
// # The API
//
// Under /v1, with "Authorization: Bearer TOKEN": sessions are created,
// listed, inspected, deleted, saved and restored; /healthz needs no token;
// /metrics (Prometheus text format) needs it.
//
// # Serving
//
// Server.HTTPServer and Server.Listener give an http.Server and a listener
// with the daemon's limits: header size, idle and body timeouts, a cap on
// connections, and the listener's address for loop detection. A Server
// handed to an http.Server of the caller's own works, without those limits.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// MinTokenBytes is the shortest token New accepts.
const MinTokenBytes = 16

// ErrBadToken is wrapped by New's error for a token that is too short or has
// surrounding white space.
var ErrBadToken = errors.New("daemon: bad token")

// Defaults of the Options limits, used where a field is zero.
const (
	DefaultMaxConns             = 512
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout          = 60 * time.Second
	DefaultBodyTimeout          = 30 * time.Second
	DefaultMaxTunnels           = 256
	DefaultMaxTunnelsPerSession = 32
	DefaultTunnelIdleTimeout    = 5 * time.Minute
)

// Server serves the proxy and the API for one Manager. Create it with New;
// it is safe for concurrent use.
type Server struct {
	m        *session.Manager
	token    string
	log      *slog.Logger
	metrics  *metrics
	gatherer prometheus.Gatherer
	api      *http.ServeMux
	lim      limits
	// via is this daemon's pseudonym in Via headers (RFC 9110 section
	// 7.6.3): a request that already carries it has looped.
	via string

	// self holds the addresses of the listeners given to Listener.
	selfMu sync.Mutex
	self   []net.Addr

	tunnels   atomic.Int64 // CONNECT tunnels open now
	tunnelsMu sync.Mutex
	perSess   map[string]int // open tunnels by session ID

	// intercept is nil unless Options.Intercept is set (see intercept.go).
	intercept *interceptor
}

// limits are Options' limits with the defaults filled in; a negative
// value means none.
type limits struct {
	maxConns, maxHeaderBytes      int
	readHeader, idle, body        time.Duration
	maxTunnels, maxTunnelsPerSess int
	tunnelIdle                    time.Duration
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

	// The limits below take their Default* value when zero; a negative
	// value turns the limit off. The first five apply to the http.Server
	// and listener from HTTPServer and Listener.

	// MaxConns caps the connections served at once; more wait in the
	// listen queue.
	MaxConns int
	// MaxHeaderBytes caps a request's header block, checked before the
	// token is.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the reading of a request's header block.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// BodyTimeout bounds the reading of an API request's body.
	BodyTimeout time.Duration
	// MaxTunnels caps the CONNECT tunnels open at once, in total;
	// MaxTunnelsPerSession caps them per session.
	MaxTunnels, MaxTunnelsPerSession int
	// TunnelIdleTimeout closes a CONNECT tunnel with no bytes either way
	// for this long.
	TunnelIdleTimeout time.Duration
	// Intercept, if set, turns on TLS interception of CONNECT tunnels
	// with a local CA; nil keeps every tunnel plain.
	Intercept *InterceptOptions
}

// orDefault returns v, def when v is 0, and -1 (none) when v is negative.
func orDefault[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}

// CheckToken reports why tok cannot be a daemon token, or nil: it must be
// at least MinTokenBytes long, with no surrounding white space. The error
// wraps ErrBadToken.
func CheckToken(tok string) error {
	switch {
	case strings.TrimSpace(tok) != tok:
		return fmt.Errorf("%w: it has surrounding white space", ErrBadToken)
	case len(tok) < MinTokenBytes:
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrBadToken, len(tok), MinTokenBytes)
	}
	return nil
}

// New returns a Server with a running Manager of its own. It fails, with
// an error wrapping ErrBadToken, if the token does not pass CheckToken.
func New(o Options) (*Server, error) {
	if err := CheckToken(o.Token); err != nil {
		return nil, err
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
	s := &Server{token: o.Token, log: o.Logger, gatherer: o.Gatherer, perSess: map[string]int{}}
	s.lim = limits{
		maxConns:          orDefault(o.MaxConns, DefaultMaxConns),
		maxHeaderBytes:    orDefault(o.MaxHeaderBytes, DefaultMaxHeaderBytes),
		readHeader:        orDefault(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		idle:              orDefault(o.IdleTimeout, DefaultIdleTimeout),
		body:              orDefault(o.BodyTimeout, DefaultBodyTimeout),
		maxTunnels:        orDefault(o.MaxTunnels, DefaultMaxTunnels),
		maxTunnelsPerSess: orDefault(o.MaxTunnelsPerSession, DefaultMaxTunnelsPerSession),
		tunnelIdle:        orDefault(o.TunnelIdleTimeout, DefaultTunnelIdleTimeout),
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s.via = "rosterd-" + hex.EncodeToString(b[:])
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
