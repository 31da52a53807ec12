package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/rosterhq/roster/session"
	rstore "github.com/rosterhq/roster/store/redis"
)

// fleetConfig is how rosterd joins a fleet through Redis. Its zero value,
// the default, is no fleet; a zero duration means its default.
type fleetConfig struct {
	redisURL    string
	password    string
	maxSessions int
	leaseTTL    time.Duration // 0: session.DefaultLeaseTTL
	saveEvery   time.Duration // 0: defaultSaveInterval
}

// defaultSaveInterval is how often rosterd saves the sessions that changed:
// what a rosterd killed with SIGKILL loses is at most this much.
const defaultSaveInterval = 10 * time.Second

// addFleetFlags defines the fleet's flags on fs and returns a function that
// checks them once fs is parsed.
func addFleetFlags(fs *flag.FlagSet, env func(name, def string) string) func(getenv func(string) string) (fleetConfig, error) {
	redisURL := fs.String("redis", env("ROSTER_REDIS", ""), "redis:// or rediss:// URL of the fleet's store; password from the URL or ROSTER_REDIS_PASSWORD (ROSTER_REDIS)")
	maxS := fs.String("fleet-max-sessions", env("ROSTER_FLEET_MAX_SESSIONS", "0"), "cap on sessions across every rosterd sharing -redis, 0 for none (ROSTER_FLEET_MAX_SESSIONS)")
	lease := fs.String("lease-ttl", env("ROSTER_LEASE_TTL", ""), "how long a session stays leased to a rosterd that stopped renewing; default 30s (ROSTER_LEASE_TTL)")
	save := fs.String("save-interval", env("ROSTER_SAVE_INTERVAL", ""), "how often sessions that changed are saved to -redis; default 10s (ROSTER_SAVE_INTERVAL)")
	return func(getenv func(string) string) (fleetConfig, error) {
		c := fleetConfig{redisURL: *redisURL}
		var err error
		if c.maxSessions, err = strconv.Atoi(*maxS); err != nil || c.maxSessions < 0 {
			return c, fmt.Errorf("-fleet-max-sessions %q: want a whole number, 0 or more", *maxS)
		}
		if *lease != "" {
			if c.leaseTTL, err = time.ParseDuration(*lease); err != nil || c.leaseTTL < 100*time.Millisecond {
				return c, fmt.Errorf("-lease-ttl %q: want a Go duration of 100ms or more", *lease)
			}
		}
		if *save != "" {
			if c.saveEvery, err = time.ParseDuration(*save); err != nil || c.saveEvery <= 0 {
				return c, fmt.Errorf("-save-interval %q: want a Go duration over 0", *save)
			}
		}
		if c.redisURL == "" {
			if c.maxSessions > 0 {
				return c, fmt.Errorf("-fleet-max-sessions %d needs -redis", c.maxSessions)
			}
			return c, nil
		}
		c.password = getenv("ROSTER_REDIS_PASSWORD")
		u, err := url.Parse(c.redisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			return c, fmt.Errorf("-redis %q: want a redis:// or rediss:// URL", redact(c.redisURL))
		}
		return c, nil
	}
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// open connects to the fleet's Redis, if any, and returns the Manager
// options that join the fleet and a function that closes the connection
// (to call after the Manager's shutdown, which saves every session).
func (c fleetConfig) open(ctx context.Context, log *slog.Logger) ([]session.Option, func(), error) {
	if c.redisURL == "" {
		return nil, func() {}, nil
	}
	client, err := rstore.Dial(ctx, c.redisURL, c.password, session.DefaultStoreTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("-redis %s: %w", redact(c.redisURL), err)
	}
	st, err := rstore.New(client, rstore.Options{})
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	if c.leaseTTL == 0 {
		c.leaseTTL = session.DefaultLeaseTTL
	}
	if c.saveEvery == 0 {
		c.saveEvery = defaultSaveInterval
	}
	log.Info("fleet store", "redis", redact(c.redisURL), "fleet_max_sessions", c.maxSessions,
		"lease_ttl", c.leaseTTL, "save_interval", c.saveEvery)
	return []session.Option{
		session.WithStore(st),
		session.WithFleetMaxSessions(c.maxSessions),
		session.WithLeaseTTL(c.leaseTTL),
		session.WithSaveInterval(c.saveEvery),
	}, func() { _ = client.Close() }, nil
}
