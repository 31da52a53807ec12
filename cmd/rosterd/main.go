// Command rosterd runs a roster Manager as a local service: a forward proxy
// that routes each request through a chosen session, a JSON control API and
// Prometheus metrics, all on one port. See package daemon for the protocol
// and README.md for a quick start.
//
// Every flag can also be set by an environment variable; a flag given on
// the command line wins.
//
//	-listen            ROSTER_LISTEN            address (default 127.0.0.1:8899)
//	-token             ROSTER_TOKEN             access token (default: generated and printed)
//	-max-sessions      ROSTER_MAX_SESSIONS      cap on sessions (default 100; 0 = none)
//	-session-timeout   ROSTER_SESSION_TIMEOUT   idle timeout (default 30m; 0 = never)
//	-cleanup-interval  ROSTER_CLEANUP_INTERVAL  sweep interval (default 1m)
//	-shutdown-timeout  ROSTER_SHUTDOWN_TIMEOUT  how long SIGINT/SIGTERM waits for requests (default 30s)
//	-log-level         ROSTER_LOG_LEVEL         debug, info, warn or error (default info)
//	-intercept         ROSTER_INTERCEPT         terminate TLS in CONNECT tunnels with a local CA (default false)
//	-ca-dir            ROSTER_CA_DIR            the CA's directory (default: roster under os.UserConfigDir)
//	-intercept-skip    ROSTER_INTERCEPT_SKIP    comma-separated host globs whose tunnels stay plain
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rosterd:", err)
		os.Exit(1)
	}
}

type config struct {
	listen          string
	token           string
	maxSessions     int
	sessionTimeout  time.Duration
	cleanupInterval time.Duration
	shutdownTimeout time.Duration
	logLevel        slog.Level
	intercept       bool
	caDir           string // "": roster under os.UserConfigDir
	interceptSkip   string // comma-separated host globs
}

// parseConfig reads the flags, with each default taken from its environment
// variable when that is set.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("rosterd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&c.listen, "listen", env("ROSTER_LISTEN", "127.0.0.1:8899"), "address to listen on (ROSTER_LISTEN)")
	fs.StringVar(&c.token, "token", env("ROSTER_TOKEN", ""), "access token; generated when empty (ROSTER_TOKEN)")
	maxS := fs.String("max-sessions", env("ROSTER_MAX_SESSIONS", "100"), "cap on sessions, 0 for none (ROSTER_MAX_SESSIONS)")
	timeout := fs.String("session-timeout", env("ROSTER_SESSION_TIMEOUT", "30m"), "idle timeout, 0 for never (ROSTER_SESSION_TIMEOUT)")
	interval := fs.String("cleanup-interval", env("ROSTER_CLEANUP_INTERVAL", "1m"), "sweep interval; 0 turns idle eviction off (ROSTER_CLEANUP_INTERVAL)")
	shutdown := fs.String("shutdown-timeout", env("ROSTER_SHUTDOWN_TIMEOUT", "30s"), "how long shutdown waits for requests (ROSTER_SHUTDOWN_TIMEOUT)")
	level := fs.String("log-level", env("ROSTER_LOG_LEVEL", "info"), "debug, info, warn or error (ROSTER_LOG_LEVEL)")
	interceptEnv := env("ROSTER_INTERCEPT", "false")
	interceptDef, ierr := strconv.ParseBool(interceptEnv)
	fs.BoolVar(&c.intercept, "intercept", interceptDef, "terminate TLS in CONNECT tunnels with a local CA, so https carries the session's identity (ROSTER_INTERCEPT)")
	fs.StringVar(&c.caDir, "ca-dir", env("ROSTER_CA_DIR", ""), "directory of the interception CA; default roster under the user config dir (ROSTER_CA_DIR)")
	fs.StringVar(&c.interceptSkip, "intercept-skip", env("ROSTER_INTERCEPT_SKIP", ""), "comma-separated host globs (*.example.com) whose tunnels stay plain, for pinned hosts (ROSTER_INTERCEPT_SKIP)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if ierr != nil {
		return nil, fmt.Errorf("ROSTER_INTERCEPT %q: want true or false", interceptEnv)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.maxSessions, err = strconv.Atoi(*maxS); err != nil || c.maxSessions < 0 {
		return nil, fmt.Errorf("-max-sessions %q: want a whole number, 0 or more", *maxS)
	}
	for _, d := range []struct {
		name string
		text string
		dst  *time.Duration
	}{{"session-timeout", *timeout, &c.sessionTimeout}, {"cleanup-interval", *interval, &c.cleanupInterval}, {"shutdown-timeout", *shutdown, &c.shutdownTimeout}} {
		if *d.dst, err = time.ParseDuration(d.text); err != nil || *d.dst < 0 {
			return nil, fmt.Errorf("-%s %q: want a Go duration such as 30s or 15m, 0 or more", d.name, d.text)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", *level)
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	generated := c.token == ""
	if generated {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		c.token = hex.EncodeToString(b)
	}
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
		ManagerOptions: []session.Option{
			session.WithMaxSessions(c.maxSessions),
			session.WithSessionTimeout(c.sessionTimeout),
			session.WithCleanupInterval(c.cleanupInterval),
		},
		Intercept: intercept,
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
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	if generated {
		fmt.Fprintf(stdout, "rosterd: token %s\n", c.token)
	}
	fmt.Fprintf(stdout, "rosterd: ready on http://%s\n", ln.Addr())
	if ca != nil {
		printTrust(stdout, ca, caCreated, ln.Addr().String())
	}
	log.Info("serving", "addr", ln.Addr().String(), "max_sessions", c.maxSessions,
		"session_timeout", c.sessionTimeout, "cleanup_interval", c.cleanupInterval)

	select {
	case err := <-served:
		_ = srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "deadline", c.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	// Stop taking requests and let those running finish; then close every
	// session (which cancels what is still running past the deadline).
	herr := hs.Shutdown(sctx)
	merr := srv.Shutdown(sctx)
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
