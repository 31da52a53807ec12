package session

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rosterhq/roster/cookies"
	"github.com/rosterhq/roster/evict"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/shard"
)

// Session is one HTTP identity. Its methods are safe for concurrent use.
//
// A Session made by a Manager stays registered until it is closed (by
// Close, by Manager.CloseSession), evicted for idleness, or the Manager is
// shut down. Closing it removes it from its Manager at once and frees its
// slot; GetSession never returns a closed session.
type Session struct {
	id        string
	config    *protocol.SessionConfig // owned copy, never nil
	preset    *preset.Preset
	createdAt int64 // stamp
	tb        *evict.Timebase
	mgr       *core // nil for a session outside any Manager
	// entry is allocated apart, not embedded: Gets touch entries only, and
	// packed together they stay in cache where Sessions would not.
	entry   *shard.Entry[*Session]
	ls      *leaseState                 // nil without a store
	noJar   bool                        // WithoutCookieJar
	jar     atomic.Pointer[cookies.Jar] // made on first use
	tickets ticketCache
	proxy   atomic.Pointer[url.URL]

	hs   atomic.Pointer[httpState] // built on first use
	hsMu sync.Mutex

	requests atomic.Int64
	inFlight atomic.Int32
	closed   atomic.Bool
	close1   sync.Once

	// Once the session has left its Manager: exit holds the EvictReason of
	// the first exit to claim it, which runs the hook, and accounted is
	// set by the first to count it and free its slot; see core.retire.
	exit      atomic.Int32
	accounted atomic.Bool
}

// SessionStats is a snapshot of one session. In JSON, as everywhere in
// roster's JSON, durations are integers of milliseconds, named with an Ms
// suffix: Age is "ageMs" and IdleTime is "idleTimeMs".
type SessionStats struct {
	// ID is the session's ID.
	ID string `json:"id"`
	// Preset is the name of the session's header preset.
	Preset string `json:"preset"`
	// CreatedAt is when the session was made or first made, if restored;
	// RFC 3339 text in JSON.
	CreatedAt time.Time `json:"createdAt"`
	// LastUsed is when the session was last used; see Session.LastUsed.
	LastUsed time.Time `json:"lastUsed"`
	// RequestCount is how many requests the session has begun, including
	// those of the saved session it was restored from.
	RequestCount int64 `json:"requestCount"`
	// InFlight is how many of its requests are in flight now.
	InFlight int `json:"inFlight"`
	// Active reports whether the session is open.
	Active bool `json:"active"`
	// CookieCount is how many unexpired cookies its jar holds.
	CookieCount int `json:"cookieCount"`
	// Age is how long ago it was created; "ageMs" in JSON.
	Age time.Duration `json:"-"`
	// IdleTime is how long it has not been used, 0 while a request is in
	// flight; "idleTimeMs" in JSON.
	IdleTime time.Duration `json:"-"`
}

// statsJSON is SessionStats as JSON carries it.
type statsJSON struct {
	plainStats
	AgeMs      int64 `json:"ageMs"`
	IdleTimeMs int64 `json:"idleTimeMs"`
}

// plainStats has SessionStats' fields without its methods.
type plainStats SessionStats

// MarshalJSON writes the stats with Age and IdleTime as "ageMs" and
// "idleTimeMs", whole milliseconds.
func (st SessionStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(statsJSON{plainStats(st), st.Age.Milliseconds(), st.IdleTime.Milliseconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (st *SessionStats) UnmarshalJSON(data []byte) error {
	var v statsJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*st = SessionStats(v.plainStats)
	st.Age = time.Duration(v.AgeMs) * time.Millisecond
	st.IdleTime = time.Duration(v.IdleTimeMs) * time.Millisecond
	return nil
}

// newSession builds a session; cfg must be valid and is copied. It fails
// only for an unknown preset.
func newSession(id string, cfg *protocol.SessionConfig, tb *evict.Timebase, mgr *core) (*Session, error) {
	p, err := lookupPreset(cfg)
	if err != nil {
		return nil, err
	}
	if cfg != nil && cfg.ForceHTTP3 && p.Fingerprinted() {
		return nil, fmt.Errorf("%w: forceHTTP3: preset %q speaks the browser's TLS and HTTP/2 over TCP, and an HTTP/3 connection would show Go's handshake; use preset \"go\" for HTTP/3", ErrInvalidConfig, p.Name)
	}
	if cfg = cfg.Clone(); cfg == nil {
		cfg = &protocol.SessionConfig{}
	}
	now := tb.Now()
	s := &Session{id: id, config: cfg, preset: p, createdAt: now, tb: tb, mgr: mgr}
	s.noJar = cfg.WithoutCookieJar
	if cfg.Proxy != "" {
		u, err := url.Parse(cfg.Proxy) // Validate has checked it
		if err != nil {
			return nil, err
		}
		s.proxy.Store(u)
	}
	s.entry = shard.NewEntry(id, s, now)
	return s, nil
}

// cookieJar returns the session's jar, making it on first use if create is
// set; nil without a jar. An idle session that never got a cookie costs no
// jar.
func (s *Session) cookieJar(create bool) *cookies.Jar {
	if j := s.jar.Load(); j != nil || !create || s.noJar {
		return j
	}
	var o *cookies.Options
	if s.tb.Manual() { // the jar's expiry follows the injected clock
		o = &cookies.Options{Now: s.tb.WallNow}
	}
	s.jar.CompareAndSwap(nil, cookies.New(o))
	return s.jar.Load()
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.id }

// Config returns a copy of the session's configuration, never nil, with
// the proxy set by SetProxy, if any.
func (s *Session) Config() *protocol.SessionConfig {
	c := s.config.Clone()
	c.Proxy = ""
	if u := s.proxy.Load(); u != nil {
		c.Proxy = u.String()
	}
	return c
}

// Preset returns the name of the session's header preset.
func (s *Session) Preset() string { return s.config.PresetName() }

// IsActive reports whether the session is open.
func (s *Session) IsActive() bool { return !s.closed.Load() }

// Touch records a use now, which postpones its idle eviction. It does
// nothing on a closed session.
func (s *Session) Touch() {
	if !s.closed.Load() {
		s.entry.Touch(s.tb.Now())
	}
}

// CreatedAt returns when the session was made (or restored).
func (s *Session) CreatedAt() time.Time { return s.tb.Time(s.createdAt) }

// LastUsed returns when the session was last used: created, fetched with
// GetSession, touched, or sent a request. A GetSession is recorded with the
// Manager's coarse clock, rounded up, so the time it records may be up to
// the clock's resolution (at most a second) after the real one; LastUsed
// never returns a time after now.
func (s *Session) LastUsed() time.Time { return s.tb.Time(s.lastUsed(s.tb.Now())) }

// IdleTime returns how long the session has not been used; 0 while a
// request is in flight.
func (s *Session) IdleTime() time.Duration {
	if s.inFlight.Load() > 0 {
		return 0
	}
	now := s.tb.Now()
	return time.Duration(now - s.lastUsed(now))
}

// lastUsed returns the last-use stamp, no later than now: stamps from the
// coarse clock may run up to one resolution ahead.
func (s *Session) lastUsed(now int64) int64 { return min(s.entry.LastUsed(), now) }

// Stats returns a snapshot of the session.
func (s *Session) Stats() SessionStats {
	now := s.tb.Now()
	last := s.lastUsed(now)
	inFlight := int(s.inFlight.Load())
	idle := time.Duration(now - last)
	if inFlight > 0 {
		idle = 0
	}
	return SessionStats{
		ID:           s.id,
		Preset:       s.Preset(),
		CreatedAt:    s.tb.Time(s.createdAt),
		LastUsed:     s.tb.Time(last),
		RequestCount: s.requests.Load(),
		InFlight:     inFlight,
		Active:       !s.closed.Load(),
		CookieCount:  s.cookieCount(),
		Age:          time.Duration(now - s.createdAt),
		IdleTime:     idle,
	}
}

// Close closes the session and removes it from its Manager; when it
// returns, the session's slot is free. It cancels the requests in flight,
// whose errors then match ErrSessionClosed, and closes every connection, TCP
// and QUIC. It is idempotent and always returns nil; the error is there for
// io.Closer.
//
// The Manager's eviction hook runs first, with EvictClosed, on the calling
// goroutine. If the session is already leaving (a sweep collected it, or
// Shutdown is closing it) and its hook has not started, Close takes the exit
// over: the hook runs once, with EvictClosed, and the sweep does not count
// it. If that hook is already running, Close closes the session under it
// and frees the slot, and the session is counted under the hook's reason.
func (s *Session) Close() error {
	if s.mgr == nil {
		s.shutdown()
		return nil
	}
	if s.ls != nil {
		s.mgr.fleet.closeOne(s)
		return nil
	}
	// Remove fails when another exit has removed the session, or when it
	// was never registered (a create that failed): retire settles the
	// first, and the second cannot be reached by a caller.
	s.mgr.reg.Remove(s.entry)
	s.mgr.retire(s, EvictClosed)
	return nil
}

// shutdown releases what the session holds. It runs once, after the session
// has left its Manager.
func (s *Session) shutdown() {
	s.close1.Do(func() {
		s.closed.Store(true)
		s.hsMu.Lock()
		h := s.hs.Load()
		s.hsMu.Unlock()
		if h != nil {
			h.close()
		}
	})
}

// busy reports whether a request is in flight; the sweeper keeps busy
// sessions.
func (s *Session) busy() bool { return s.inFlight.Load() > 0 }

// beginRequest counts a request as in flight and records a use. Every
// successful call must be matched by one endRequest.
func (s *Session) beginRequest() error {
	s.inFlight.Add(1)
	if s.mgr != nil {
		s.mgr.inFlight.Add(1)
	}
	// Counted before checking, so that the sweeper, Close and
	// ShutdownContext, which settle the session before they look at the
	// count, never miss this request. A touch fails once the session has
	// left its Manager: the sweeper evicted it first.
	if !s.entry.Touch(s.tb.Now()) || s.closed.Load() {
		s.endRequest()
		return s.errClosed()
	}
	// A Manager shutting down takes no new requests, so that the ones in
	// flight can drain.
	if s.mgr != nil && s.mgr.state.Load() != stateOpen {
		s.endRequest()
		return fmt.Errorf("%w: %w", ErrSessionClosed, ErrManagerClosed)
	}
	s.requests.Add(1)
	return nil
}

// endRequest ends a request begun by beginRequest and records a use.
func (s *Session) endRequest() {
	s.entry.Touch(s.tb.Now())
	// The last request to end on a closed session closes what Close could
	// not while requests were in flight (its QUIC transport). Every path
	// that counted a request ends here, refused ones included, so one of
	// them sees the count reach zero.
	if s.inFlight.Add(-1) == 0 && s.closed.Load() {
		if h := s.hs.Load(); h != nil {
			h.closeConnections()
		}
	}
	if s.mgr != nil {
		s.mgr.requestEnded()
	}
}
