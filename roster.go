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
// This package re-exports the names a program needs from packages session
// and protocol (configs, saved states, cookies, errors), so that importing
// roster alone serves every use in the README. The registry core lives
// in packages shard (the lock-striped map), evict (the idle heaps and the
// sweeper) and idgen (session IDs).
package roster

import (
	"log/slog"
	"time"

	"github.com/rosterhq/roster/preset"
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

// SessionState is a saved session, as Session.State returns it and
// Manager.RestoreSession and UnmarshalSession read it.
type SessionState = protocol.SessionState

// CookieState is one cookie with all its attributes, as Session.Cookies
// returns it and Session.SetCookies takes it.
type CookieState = protocol.CookieState

// DefaultPreset is the header preset of a session whose config names none.
const DefaultPreset = protocol.DefaultPreset

// The defaults of a Manager built without options.
const (
	DefaultMaxSessions     = session.DefaultMaxSessions
	DefaultSessionTimeout  = session.DefaultSessionTimeout
	DefaultCleanupInterval = session.DefaultCleanupInterval
)

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
	EvictClosed   = session.EvictClosed
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
	// ErrInvalidState is wrapped by the errors of RestoreSession,
	// UnmarshalSession and LoadSession for corrupt or unreadable state.
	ErrInvalidState = protocol.ErrInvalidState
	// ErrInvalidCookie is wrapped by the errors of Session.SetCookies for a
	// cookie that fails CookieState.Validate.
	ErrInvalidCookie = protocol.ErrInvalidCookie
	// ErrSessionLeased, ErrStoreUnavailable and ErrLeaseLost come from a
	// Manager with a Store (WithStore): another process holds the session,
	// the store cannot be reached when it must be, or this process lost the
	// session's lease.
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

// UnmarshalSession builds a session, outside any Manager, from a state made
// by Session.Marshal; see session.UnmarshalSession.
func UnmarshalSession(data []byte) (*Session, error) { return session.UnmarshalSession(data) }

// LoadSession reads a state file written by Session.Save, outside any
// Manager; see session.LoadSession.
func LoadSession(path string) (*Session, error) { return session.LoadSession(path) }

// PresetNames returns the names of the header presets a SessionConfig may
// name, sorted; see package preset.
func PresetNames() []string { return preset.Names() }

// DecodeConfig reads a SessionConfig from JSON and validates it; see
// protocol.Decode.
func DecodeConfig(data []byte) (*SessionConfig, error) { return protocol.Decode(data) }

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

// WithOnEvict sets a hook that runs once for each session that leaves the
// Manager (evicted, closed, or closed at shutdown), before it is closed;
// see session.WithOnEvict.
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
