package session

import (
	"log/slog"
	"time"

	"github.com/rosterhq/roster/evict"
	"github.com/rosterhq/roster/shard"
)

// Defaults of a Manager built without options.
const (
	DefaultMaxSessions     = 100
	DefaultSessionTimeout  = 30 * time.Minute
	DefaultCleanupInterval = time.Minute
)

// Clock is the time source a Manager reads. Inject one with WithClock to
// drive idle eviction in tests without sleeping.
type Clock = evict.Clock

// EvictReason says why a session left its Manager; the eviction hook gets
// it.
type EvictReason int

const (
	// EvictIdle means the session was idle longer than the session timeout.
	EvictIdle EvictReason = iota + 1
	// EvictShutdown means the Manager was shut down.
	EvictShutdown
	// EvictClosed means the session was closed by Session.Close or
	// Manager.CloseSession.
	EvictClosed
)

// String returns "idle", "shutdown" or "closed".
func (r EvictReason) String() string {
	switch r {
	case EvictIdle:
		return "idle"
	case EvictShutdown:
		return "shutdown"
	case EvictClosed:
		return "closed"
	}
	return "unknown"
}

// Option configures a Manager at construction.
type Option func(*options)

type options struct {
	maxSessions int
	timeout     time.Duration
	interval    time.Duration
	shards      int
	clock       Clock
	onEvict     func(*Session, EvictReason)
	onSweep     func(time.Duration, int)
	logger      *slog.Logger
	store       storeOptions
}

func defaultOptions() options {
	return options{
		maxSessions: DefaultMaxSessions,
		timeout:     DefaultSessionTimeout,
		interval:    DefaultCleanupInterval,
		shards:      shard.DefaultShards,
	}
}

// WithMaxSessions sets the cap on sessions held at once; 0 (or less) means no
// cap. The default is DefaultMaxSessions.
func WithMaxSessions(n int) Option { return func(o *options) { o.maxSessions = max(n, 0) } }

// WithSessionTimeout sets how long a session may stay idle before the
// sweeper evicts it; 0 (or less) disables idle eviction. The default is
// DefaultSessionTimeout.
func WithSessionTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = max(d, 0) }
}

// WithCleanupInterval sets how often the background sweeper runs; 0 (or
// less) means it never runs, and only Sweep evicts. The default is
// DefaultCleanupInterval. An idle session is evicted at the first sweep
// after its timeout, so eviction is up to one interval late.
func WithCleanupInterval(d time.Duration) Option {
	return func(o *options) { o.interval = max(d, 0) }
}

// WithShards sets the number of lock stripes of the registry, rounded up to
// a power of two and at most shard.MaxShards; 0 (or less) means
// shard.DefaultShards. More shards mean less contention among creators and
// shorter sweeps per lock hold; each costs about 200 bytes.
func WithShards(n int) Option {
	return func(o *options) { o.shards = min(max(n, 0), shard.MaxShards) }
}

// WithClock makes the Manager read time from c instead of the system clock:
// creation and last-use times, idle times and expiry decisions. The
// background sweeper still ticks in real time; tests usually combine
// WithClock with WithCleanupInterval(0) and call Sweep.
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithOnEvict sets a hook that runs exactly once for every session that
// leaves the Manager, whatever the exit: evicted for idleness (EvictIdle),
// closed at shutdown (EvictShutdown), or closed by Session.Close or
// CloseSession (EvictClosed). It runs after the session has left the
// registry and before the Manager closes it, so the hook may save its
// state; it runs on the goroutine of the sweep, the Shutdown or the close,
// after the sweep has released every lock, so a slow hook delays neither
// Gets nor the clock they read; it delays the next sweep, the close call,
// and, at the cap, creates: the session's slot is freed once the hook has
// returned and the session is closed. If the session's holder closes it
// while an EvictIdle or EvictShutdown hook runs, the session is closed
// under the hook (IsActive reports false) and its slot freed at once. A
// panic in the hook is recovered and logged, and the session is closed
// anyway. The hook may call Sweep (which does nothing during Shutdown) and
// the session's Close; it must not call Shutdown or ShutdownContext, which
// wait for the sweep it runs in.
//
// With a store (WithStore) the store is the session's record, and an
// EvictIdle or EvictClosed hook runs after the session's state was saved
// and the session closed, once the ID's lock is free (so the hook may close
// the session or look its ID up): it observes the exit, and what it changes
// is not saved. A session dropped for a lost lease gets no hook. An
// EvictShutdown hook runs before the final save, as without a store.
func WithOnEvict(hook func(s *Session, reason EvictReason)) Option {
	return func(o *options) { o.onEvict = hook }
}

// WithOnSweep sets a function called after every sweep, background or
// Sweep, with how long it took and how many sessions it evicted; for
// metrics. It runs on the sweeping goroutine, must be quick, and must not
// call Shutdown or ShutdownContext.
func WithOnSweep(f func(took time.Duration, evicted int)) Option {
	return func(o *options) { o.onSweep = f }
}

// WithLogger sets where the Manager logs what it cannot return as an error,
// such as a panicking eviction hook. The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
