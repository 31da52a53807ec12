// Command rosterd runs a roster Manager as a local service: a forward proxy
// that routes each request through a chosen session, a JSON control API and
// Prometheus metrics, all on one port. See package daemon for the protocol
// and README.md for a quick start; rosterd -h lists the flags.
//
// Every flag can also be set by an environment variable (ROSTER_ and the
// flag's name in capitals, - as _); a flag given on the command line wins.
// A token given with -token shows in the process list: prefer -token-file
// or ROSTER_TOKEN.
//
// With -redis, rosterd is one process of a fleet that shares sessions
// through Redis (see README.md, Fleets): -fleet-max-sessions, -lease-ttl
// and -save-interval shape it.
//
// With -intercept, rosterd terminates TLS in CONNECT tunnels with a local
// CA (-ca-dir; -intercept-skip for pinned hosts), so https through the
// proxy carries the session's identity: see README.md.
//
// The first SIGINT or SIGTERM stops taking requests and waits up to
// -shutdown-timeout for those running; a second one stops at once.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
)

func main() {
	// The first signal starts the drain; the second cuts it short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(force)
	}()
	err := run(ctx, force, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rosterd:", err)
		os.Exit(1)
	}
}

type config struct {
	listen            string
	token             string
	tokenFile         string
	maxSessions       int
	sessionTimeout    time.Duration
	cleanupInterval   time.Duration
	shutdownTimeout   time.Duration
	logLevel          slog.Level
	maxConns          int
	maxHeaderBytes    int
	idleTimeout       time.Duration
	maxTunnels        int
	maxTunnelsPerSess int
	tunnelIdleTimeout time.Duration
	version           bool
	fleet             fleetConfig
	intercept         bool
	caDir             string // "": roster under os.UserConfigDir
	interceptSkip     string // comma-separated host globs
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "ROSTER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// levelValue is a slog.Level as a flag.
type levelValue struct{ l *slog.Level }

func (v levelValue) String() string {
	if v.l == nil {
		return ""
	}
	return strings.ToLower(v.l.String())
}

func (v levelValue) Set(s string) error {
	if err := v.l.UnmarshalText([]byte(s)); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

// parseConfig reads the flags, with each default taken from its environment
// variable when that is set. An environment variable that does not parse is
// an error naming it, unless its flag is given too.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("rosterd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: rosterd [flags]

rosterd serves a roster Manager on one port: a forward proxy that sends each
request through a chosen session (http://SESSION_ID:TOKEN@host:port), a JSON
API under /v1 and Prometheus metrics at /metrics. Every flag can also be set
by the environment variable in brackets; a flag on the command line wins.

`)
		fs.PrintDefaults()
	}
	c := &config{logLevel: slog.LevelInfo}
	envErrs := map[string]error{} // flag name -> its variable's error
	env := func(name string) (string, bool) {
		v := getenv(envName(name))
		return v, v != ""
	}
	str := func(p *string, name, def, usage string) {
		if v, ok := env(name); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" ("+envName(name)+")")
	}
	num := func(p *int, name string, def int, usage string) {
		if v, ok := env(name); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				envErrs[name] = fmt.Errorf("%s=%q (for -%s): want a whole number, 0 or more", envName(name), v, name)
			} else {
				def = n
			}
		}
		fs.IntVar(p, name, def, usage+" ("+envName(name)+")")
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		if v, ok := env(name); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				envErrs[name] = fmt.Errorf("%s=%q (for -%s): want a Go duration such as 30s or 15m, 0 or more", envName(name), v, name)
			} else {
				def = d
			}
		}
		fs.DurationVar(p, name, def, usage+" ("+envName(name)+")")
	}
	str(&c.listen, "listen", "127.0.0.1:8899", "`address` to listen on")
	str(&c.token, "token", "", "access `token`, 16 bytes or more; generated and printed when empty. Visible in the process list: prefer -token-file or ROSTER_TOKEN")
	str(&c.tokenFile, "token-file", "", "read the access token from this `file` (one trailing newline is dropped)")
	num(&c.maxSessions, "max-sessions", 100, "cap on sessions, 0 for none")
	dur(&c.sessionTimeout, "session-timeout", 30*time.Minute, "idle `timeout` of a session, 0 for never")
	dur(&c.cleanupInterval, "cleanup-interval", time.Minute, "sweep `interval`; 0 turns idle eviction off")
	dur(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long the first SIGINT/SIGTERM waits for requests; a second stops at once")
	if v, ok := env("log-level"); ok {
		if err := (levelValue{&c.logLevel}).Set(v); err != nil {
			envErrs["log-level"] = fmt.Errorf("%s=%q (for -log-level): want debug, info, warn or error", envName("log-level"), v)
		}
	}
	fs.Var(levelValue{&c.logLevel}, "log-level", "log `level`: debug, info, warn or error ("+envName("log-level")+")")
	num(&c.maxConns, "max-conns", daemon.DefaultMaxConns, "cap on client connections at once, 0 for none")
	num(&c.maxHeaderBytes, "max-header-bytes", daemon.DefaultMaxHeaderBytes, "cap on a request's header `bytes`, 0 for Go's 1 MiB")
	dur(&c.idleTimeout, "idle-timeout", daemon.DefaultIdleTimeout, "close a keep-alive client connection idle this long, 0 for never")
	num(&c.maxTunnels, "max-tunnels", daemon.DefaultMaxTunnels, "cap on CONNECT tunnels open at once, 0 for none")
	num(&c.maxTunnelsPerSess, "max-tunnels-per-session", daemon.DefaultMaxTunnelsPerSession, "cap on CONNECT tunnels open at once per session, 0 for none")
	dur(&c.tunnelIdleTimeout, "tunnel-idle-timeout", daemon.DefaultTunnelIdleTimeout, "close a CONNECT tunnel with no bytes either way for this long, 0 for never")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	str(&c.fleet.redisURL, "redis", "", "redis:// or rediss:// `URL` of the fleet's store; the password from the URL or ROSTER_REDIS_PASSWORD")
	num(&c.fleet.maxSessions, "fleet-max-sessions", 0, "cap on sessions across every rosterd sharing -redis, 0 for none")
	dur(&c.fleet.leaseTTL, "lease-ttl", session.DefaultLeaseTTL, "how long a session stays leased to a rosterd that stopped renewing (100ms or more)")
	dur(&c.fleet.saveEvery, "save-interval", defaultSaveInterval, "how often sessions that changed are saved to -redis")
	ic := false
	if v, ok := env("intercept"); ok {
		if b, err := strconv.ParseBool(v); err != nil {
			envErrs["intercept"] = fmt.Errorf("%s=%q (for -intercept): want true or false", envName("intercept"), v)
		} else {
			ic = b
		}
	}
	fs.BoolVar(&c.intercept, "intercept", ic, "terminate TLS in CONNECT tunnels with a local CA, so https carries the session's identity ("+envName("intercept")+")")
	str(&c.caDir, "ca-dir", "", "`directory` of the interception CA; default roster under the user config dir")
	str(&c.interceptSkip, "intercept-skip", "", "comma-separated host `globs` (*.example.com) whose tunnels stay plain, for pinned hosts")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, err := range envErrs {
		if !given[name] {
			return nil, err
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"max-sessions", c.maxSessions}, {"max-conns", c.maxConns}, {"max-header-bytes", c.maxHeaderBytes},
		{"max-tunnels", c.maxTunnels}, {"max-tunnels-per-session", c.maxTunnelsPerSess}} {
		if n.v < 0 {
			return nil, fmt.Errorf("-%s %d: want a whole number, 0 or more", n.name, n.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"session-timeout", c.sessionTimeout}, {"cleanup-interval", c.cleanupInterval}, {"shutdown-timeout", c.shutdownTimeout},
		{"idle-timeout", c.idleTimeout}, {"tunnel-idle-timeout", c.tunnelIdleTimeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("-%s %s: want a duration of 0 or more", d.name, d.v)
		}
	}
	if err := tokenFrom(c, given["token"], getenv); err != nil {
		return nil, err
	}
	if err := c.fleet.check(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// tokenFrom settles the token: from -token, -token-file or ROSTER_TOKEN (two
// of them at once is an error), checked with daemon.CheckToken; empty if
// none is given.
func tokenFrom(c *config, flagGiven bool, getenv func(string) string) error {
	src := "-token"
	if !flagGiven {
		src = envName("token")
	}
	if c.tokenFile != "" {
		if c.token != "" {
			return fmt.Errorf("-token-file %s and %s: give one", c.tokenFile, src)
		}
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		c.token, src = s, "-token-file "+c.tokenFile
	}
	if c.token == "" && (flagGiven || c.tokenFile != "") {
		return fmt.Errorf("%s: the token is empty", src)
	}
	if c.token == "" {
		return nil
	}
	if err := daemon.CheckToken(c.token); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// none turns the command line's 0 (no limit) into daemon.Options' -1.
func none[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// run serves until ctx ends, then drains for up to shutdownTimeout, or
// until force closes. It returns flag.ErrHelp after -h.
func run(ctx context.Context, force <-chan struct{}, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if c.version {
		fmt.Fprintf(stdout, "rosterd %s (%s)\n", daemon.Version(), runtime.Version())
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	generated := c.token == ""
	if generated {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		c.token = hex.EncodeToString(b)
	}
	storeOpts, closeStore, err := c.fleet.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeStore()
	var ca *daemon.CA
	var caCreated bool
	var intercept *daemon.InterceptOptions
	if c.intercept {
		if ca, caCreated, err = loadCA(c.caDir); err != nil {
			return err
		}
		intercept = &daemon.InterceptOptions{CA: ca, Skip: strings.Split(c.interceptSkip, ",")}
	}
	srv, err := daemon.New(daemon.Options{
		Token:  c.token,
		Logger: log,
		ManagerOptions: append([]session.Option{
			session.WithMaxSessions(c.maxSessions),
			session.WithSessionTimeout(c.sessionTimeout),
			session.WithCleanupInterval(c.cleanupInterval),
		}, storeOpts...),
		MaxConns:             none(c.maxConns),
		MaxHeaderBytes:       none(c.maxHeaderBytes),
		IdleTimeout:          none(c.idleTimeout),
		MaxTunnels:           none(c.maxTunnels),
		MaxTunnelsPerSession: none(c.maxTunnelsPerSess),
		TunnelIdleTimeout:    none(c.tunnelIdleTimeout),
		Intercept:            intercept,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	if host, _, _ := net.SplitHostPort(c.listen); !isLoopback(host) {
		log.Warn("listening beyond loopback: anyone who can reach this address and has the token can use every session", "addr", ln.Addr().String())
	}
	hs := srv.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(srv.Listener(ln)) }()

	if generated {
		fmt.Fprintf(stdout, "rosterd: token %s\n", c.token)
	}
	fmt.Fprintf(stdout, "rosterd: ready on http://%s\n", ln.Addr())
	if ca != nil {
		printTrust(stdout, ca, caCreated, ln.Addr().String())
	}
	log.Info("serving", "addr", ln.Addr().String(), "version", daemon.Version(), "max_sessions", c.maxSessions,
		"session_timeout", c.sessionTimeout, "cleanup_interval", c.cleanupInterval, "max_conns", c.maxConns)

	select {
	case err := <-served:
		_ = srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "deadline", c.shutdownTimeout, "note", "a second SIGINT or SIGTERM stops at once")
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	// Stop taking requests and let those running finish; then close every
	// session (which cancels what is still running past the deadline).
	var herr, merr error
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		herr = hs.Shutdown(sctx)
		merr = srv.Shutdown(sctx)
	}()
	select {
	case <-drained:
	case <-force:
		log.Warn("second signal: stopping now, cutting the requests still running")
		cancel()
		_ = hs.Close()
		<-drained
	}
	if herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		_ = hs.Close()
		log.Warn("requests still running at the deadline were cut", "err", herr)
	}
	if merr != nil {
		log.Warn("sessions closed with requests in flight", "err", merr)
	}
	<-served
	log.Info("stopped")
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
