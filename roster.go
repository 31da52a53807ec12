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
)

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

// HeaderOrderKey is a request header key whose values give, by lowercase
// name, the order in which a session with a browser preset writes that
// request's headers, over the preset's order. It is never sent.
const HeaderOrderKey = session.HeaderOrderKey
