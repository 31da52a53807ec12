// Package roster is an in-process registry for many HTTP client sessions at
// once: a Manager that creates sessions, hands them out by ID to many
// goroutines, enforces a hard cap, evicts idle ones and shuts down cleanly.
//
//	m := roster.NewManager(roster.WithMaxSessions(50), roster.WithSessionTimeout(15*time.Minute))
//	defer m.Shutdown()
//	id, err := m.CreateSession(nil)
//	...
//	s, err := m.GetSession(id) // from any goroutine; no lock, no allocation
//
// This package re-exports the names a program needs from package session,
// so that roster.NewManager is all a newcomer types. The registry core lives
// in packages shard (the lock-striped map), evict (the idle heaps and the
// sweeper) and idgen (session IDs).
package roster

import (
	"log/slog"
	"time"

	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// Manager is a registry of sessions; see session.Manager.
type Manager = session.Manager

// Session is one HTTP identity; see session.Session.
type Session = session.Session

// SessionStats is a snapshot of one session.
type SessionStats = session.SessionStats

// ManagerStats counts what a Manager has done.
type ManagerStats = session.ManagerStats

// SessionConfig describes a session; a nil *SessionConfig means defaults.
type SessionConfig = protocol.SessionConfig

// Option configures a Manager.
type Option = session.Option

// EvictReason says why a session was evicted.
type EvictReason = session.EvictReason

// Clock is the time source a Manager reads.
type Clock = session.Clock

// The reasons an eviction hook is called with.
const (
	EvictIdle     = session.EvictIdle
	EvictShutdown = session.EvictShutdown
)

// The error values; match them with errors.Is.
var (
	ErrMaxSessions     = session.ErrMaxSessions
	ErrSessionNotFound = session.ErrSessionNotFound
	ErrSessionExists   = session.ErrSessionExists
	ErrInvalidID       = session.ErrInvalidID
	ErrInvalidConfig   = session.ErrInvalidConfig
	ErrSessionClosed   = session.ErrSessionClosed
	ErrManagerClosed   = session.ErrManagerClosed

	ErrSessionLeased    = session.ErrSessionLeased
	ErrStoreUnavailable = session.ErrStoreUnavailable
	ErrLeaseLost        = session.ErrLeaseLost
)

// Store is a shared store of session state and leases, for fleets; see
// package store, and package store/redis for Redis.
type Store = session.Store

// StoreStats counts what a Manager's store machinery has done.
type StoreStats = session.StoreStats

// NewManager returns a running Manager; see session.NewManager.
func NewManager(opts ...Option) *Manager { return session.NewManager(opts...) }

// WithMaxSessions caps the sessions held at once; 0 means no cap.
func WithMaxSessions(n int) Option { return session.WithMaxSessions(n) }

// WithSessionTimeout sets the idle timeout; 0 disables idle eviction.
func WithSessionTimeout(d time.Duration) Option { return session.WithSessionTimeout(d) }

// WithCleanupInterval sets how often the sweeper runs; 0 means only Sweep
// evicts.
func WithCleanupInterval(d time.Duration) Option { return session.WithCleanupInterval(d) }

// WithShards sets the number of lock stripes of the registry.
func WithShards(n int) Option { return session.WithShards(n) }

// WithClock makes the Manager read time from c; for tests.
func WithClock(c Clock) Option { return session.WithClock(c) }

// WithOnEvict sets a hook that runs for each session evicted or closed at
// shutdown, before it is closed.
func WithOnEvict(hook func(s *Session, reason EvictReason)) Option {
	return session.WithOnEvict(hook)
}

// WithOnSweep sets a function called after every sweep with its duration
// and the number evicted.
func WithOnSweep(f func(took time.Duration, evicted int)) Option { return session.WithOnSweep(f) }

// WithLogger sets where the Manager logs what it cannot return.
func WithLogger(l *slog.Logger) Option { return session.WithLogger(l) }

// WithStore makes the Manager one process of a fleet sharing st; see
// session.WithStore.
func WithStore(st Store) Option { return session.WithStore(st) }

// WithOwner names this process in the store's leases.
func WithOwner(name string) Option { return session.WithOwner(name) }

// WithLeaseTTL sets how long a lease lasts without renewal.
func WithLeaseTTL(d time.Duration) Option { return session.WithLeaseTTL(d) }

// WithStateTTL sets how long the store keeps a session's state after its
// last save.
func WithStateTTL(d time.Duration) Option { return session.WithStateTTL(d) }

// WithSaveInterval sets how often a long-lived session that changed is
// saved; 0 means only at close, eviction and shutdown.
func WithSaveInterval(d time.Duration) Option { return session.WithSaveInterval(d) }

// WithStoreTimeout bounds each store operation made for one caller.
func WithStoreTimeout(d time.Duration) Option { return session.WithStoreTimeout(d) }

// WithFleetMaxSessions caps the leases held at once across the fleet.
func WithFleetMaxSessions(n int) Option { return session.WithFleetMaxSessions(n) }
