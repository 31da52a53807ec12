package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
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
	leaseTTL    time.Duration
	saveEvery   time.Duration
}

// defaultSaveInterval is how often rosterd saves the sessions that changed:
// what a rosterd killed with SIGKILL loses is at most this much.
const defaultSaveInterval = 10 * time.Second

// check validates the fleet flags once they are parsed, and takes the
// password from ROSTER_REDIS_PASSWORD when the URL has none.
func (c *fleetConfig) check(getenv func(string) string) error {
	if c.maxSessions < 0 {
		return fmt.Errorf("-fleet-max-sessions %d: want a whole number, 0 or more", c.maxSessions)
	}
	if c.leaseTTL < 100*time.Millisecond {
		return fmt.Errorf("-lease-ttl %s: want 100ms or more", c.leaseTTL)
	}
	if c.saveEvery <= 0 {
		return fmt.Errorf("-save-interval %s: want a duration over 0", c.saveEvery)
	}
	if c.redisURL == "" {
		if c.maxSessions > 0 {
			return fmt.Errorf("-fleet-max-sessions %d needs -redis", c.maxSessions)
		}
		return nil
	}
	c.password = getenv("ROSTER_REDIS_PASSWORD")
	u, err := url.Parse(c.redisURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return fmt.Errorf("-redis %q: want a redis:// or rediss:// URL", redact(c.redisURL))
	}
	return nil
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
	log.Info("fleet store", "redis", redact(c.redisURL), "fleet_max_sessions", c.maxSessions,
		"lease_ttl", c.leaseTTL, "save_interval", c.saveEvery)
	return []session.Option{
		session.WithStore(st),
		session.WithFleetMaxSessions(c.maxSessions),
		session.WithLeaseTTL(c.leaseTTL),
		session.WithSaveInterval(c.saveEvery),
	}, func() { _ = client.Close() }, nil
}
