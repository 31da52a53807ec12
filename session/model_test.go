package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/protocol"
	"pgregory.net/rapid"
)

// TestManagerModel drives a Manager and a plain sequential model of it with
// the same random steps (rapid's state machine) and checks after every step
// that the two agree: the sessions present and their order, times and
// request counts, the count, the cap, the timeout, every counter of Stats,
// which handles are open, which sessions the eviction hook saw, and every
// error, by errors.Is.
//
// rapid shrinks a failing run to a short sequence of steps and prints it,
// with the seed that reproduces it. By default it runs 100 random runs of
// about 150 steps; make stress (ROSTER_STRESS=1) runs 300 times as many, and
// rapid's own -rapid.checks and -rapid.steps scale either.
func TestManagerModel(t *testing.T) {
	rounds := 1
	if stressMode() {
		rounds = 300
	}
	for i := 0; i < rounds && !t.Failed(); i++ {
		rapid.Check(t, func(t *rapid.T) {
			mm := newModelMachine(t)
			defer mm.m.Shutdown()
			// Longer runs than rapid's default of about 30 steps: a few
			// hundred steps cost milliseconds.
			for range 5 {
				t.Repeat(mm.actions())
			}
		})
	}
}

// mdlSession is a session as the model knows it, with the handle the test
// holds.
type mdlSession struct {
	s         *Session
	id        string
	open      bool  // registered: not closed, evicted or shut down
	createdAt int64 // stamp
	lastUse   int64 // stamp of the latest use
	inFlight  int
	requests  int64
}

// mdlHook is one call of the eviction hook.
type mdlHook struct {
	id     string
	reason EvictReason
}

type modelMachine struct {
	m   *Manager
	clk *relClock

	hooked []mdlHook // calls of the hook not yet checked

	// The model.
	cap     int   // 0: none
	timeout int64 // nanoseconds; 0: no eviction
	shut    bool
	live    map[string]*mdlSession // the registered sessions by ID
	handles []*mdlSession          // every session ever made, open or not

	created, closed, evicted, rejected int64
}

// mdlIDs are the IDs CreateSessionWithID uses, and Get and Close try; the
// last two are invalid.
var mdlIDs = []string{"a", "b", "c", "d", "e", "", "has space"}

func newModelMachine(t *rapid.T) *modelMachine {
	mm := &modelMachine{
		clk:     newRelClock(),
		cap:     rapid.IntRange(0, 5).Draw(t, "cap"),
		timeout: int64(rapid.SampledFrom([]time.Duration{0, time.Second, 10 * time.Second}).Draw(t, "timeout")),
		live:    map[string]*mdlSession{},
	}
	shards := rapid.SampledFrom([]int{1, 2, 64}).Draw(t, "shards")
	mm.m = NewManager(WithClock(mm.clk), WithCleanupInterval(0), WithShards(shards),
		WithMaxSessions(mm.cap), WithSessionTimeout(time.Duration(mm.timeout)), WithLogger(discardLogger()),
		WithOnEvict(func(s *Session, r EvictReason) {
			if !s.IsActive() {
				t.Errorf("hook(%q, %v) ran on a closed session", s.ID(), r)
			}
			if _, ok := s.mgr.reg.Load(s.ID()); ok {
				t.Errorf("hook(%q, %v) ran while the session was still registered", s.ID(), r)
			}
			mm.hooked = append(mm.hooked, mdlHook{s.ID(), r})
		}))
	return mm
}

func (mm *modelMachine) now() int64 { return mm.clk.stamp() }

// wantErr fails unless err matches want (nil: no error).
func wantErr(t *rapid.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// createErr is the error a create (with a valid ID and config) must fail
// with, nil if it must succeed.
func (mm *modelMachine) createErr(id string) error {
	// A taken ID is checked before the cap (and after Shutdown none is
	// taken).
	switch {
	case id != "" && mm.live[id] != nil:
		return ErrSessionExists
	case mm.shut:
		return ErrManagerClosed
	case mm.cap > 0 && len(mm.live) >= mm.cap:
		return ErrMaxSessions
	}
	return nil
}

// register adds a new session to the model and takes its handle.
func (mm *modelMachine) register(t *rapid.T, id string) {
	t.Helper()
	s, err := mm.m.GetSession(id) // a use now, as the create was
	if err != nil {
		t.Fatalf("GetSession(%q) right after its create: %v", id, err)
	}
	now := mm.now()
	ms := &mdlSession{s: s, id: id, open: true, createdAt: now, lastUse: now}
	mm.live[id] = ms
	mm.handles = append(mm.handles, ms)
	mm.created++
}

// drop takes a session out of the model.
func (mm *modelMachine) drop(ms *mdlSession, counter *int64) {
	ms.open = false
	delete(mm.live, ms.id)
	*counter++
}

func (mm *modelMachine) use(ms *mdlSession) { ms.lastUse = max(ms.lastUse, mm.now()) }

// inFlight returns the number of requests in flight, on open sessions or not.
func (mm *modelMachine) inFlight() int {
	n := 0
	for _, ms := range mm.handles {
		n += ms.inFlight
	}
	return n
}

// lookup checks what GetSession or PeekSession returned for id and returns
// the session found, if any.
func (mm *modelMachine) lookup(t *rapid.T, method, id string, s *Session, err error) *mdlSession {
	t.Helper()
	what := fmt.Sprintf("%s(%q)", method, id)
	ms := mm.live[id]
	switch {
	case id == "" || strings.Contains(id, " "):
		wantErr(t, what, err, ErrInvalidID)
	case mm.shut:
		wantErr(t, what, err, ErrManagerClosed)
	case ms == nil:
		wantErr(t, what, err, ErrSessionNotFound)
	default:
		wantErr(t, what, err, nil)
		if s != ms.s {
			t.Fatalf("%s returned another session than the one registered", what)
		}
		return ms
	}
	if s != nil {
		t.Fatalf("%s failed but returned a session", what)
	}
	return nil
}

// pickID draws an ID to look up: one of mdlIDs or of the registered ones,
// in the order they were made, so that the same draws pick the same session
// when rapid replays a run (generated IDs differ from run to run).
func (mm *modelMachine) pickID(t *rapid.T) string {
	ids := slices.Clone(mdlIDs)
	for _, ms := range mm.handles {
		if ms.open {
			ids = append(ids, ms.id)
		}
	}
	return rapid.SampledFrom(ids).Draw(t, "id")
}

func (mm *modelMachine) pickHandle(t *rapid.T) *mdlSession {
	if len(mm.handles) == 0 {
		t.Skip("no session yet")
	}
	return mm.handles[rapid.IntRange(0, len(mm.handles)-1).Draw(t, "handle")]
}

func (mm *modelMachine) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"CreateSession": func(t *rapid.T) {
			want := mm.createErr("")
			id, err := mm.m.CreateSession(nil)
			wantErr(t, "CreateSession", err, want)
			switch {
			case errors.Is(want, ErrMaxSessions):
				mm.rejected++
				if !strings.Contains(err.Error(), fmt.Sprintf("(%d)", mm.cap)) {
					t.Fatalf("message %q does not give the cap %d", err, mm.cap)
				}
			case want == nil:
				if len(id) != 26 || mm.live[id] != nil {
					t.Fatalf("CreateSession returned ID %q", id)
				}
				mm.register(t, id)
			}
		},
		"CreateSessionWithID": func(t *rapid.T) {
			id := rapid.SampledFrom(mdlIDs).Draw(t, "id")
			var cfg *protocol.SessionConfig
			badConfig := rapid.IntRange(0, 9).Draw(t, "config") == 0
			if badConfig {
				cfg = &protocol.SessionConfig{Timeout: -1}
			}
			var want error
			switch {
			case id == "" || strings.Contains(id, " "):
				want = ErrInvalidID
			case badConfig:
				want = ErrInvalidConfig
			default:
				want = mm.createErr(id)
			}
			err := mm.m.CreateSessionWithID(id, cfg)
			wantErr(t, fmt.Sprintf("CreateSessionWithID(%q)", id), err, want)
			switch {
			case errors.Is(want, ErrMaxSessions):
				mm.rejected++
			case want == nil:
				mm.register(t, id)
			}
		},
		"CreateSessionWait": func(t *rapid.T) {
			// With an ended context it takes a free slot, or returns the
			// context's error at once instead of waiting.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			want := mm.createErr("")
			if errors.Is(want, ErrMaxSessions) {
				want = context.Canceled // and no refusal is counted
			}
			id, err := mm.m.CreateSessionWait(ctx, nil)
			wantErr(t, "CreateSessionWait", err, want)
			if want == nil {
				mm.register(t, id)
			}
		},
		"GetSession": func(t *rapid.T) {
			id := mm.pickID(t)
			s, err := mm.m.GetSession(id)
			if ms := mm.lookup(t, "GetSession", id, s, err); ms != nil {
				mm.use(ms)
			}
		},
		"PeekSession": func(t *rapid.T) {
			id := mm.pickID(t)
			s, err := mm.m.PeekSession(id)
			mm.lookup(t, "PeekSession", id, s, err) // not a use
		},
		"CloseSession": func(t *rapid.T) {
			id := mm.pickID(t)
			err := mm.m.CloseSession(id)
			ms := mm.live[id]
			switch {
			case id == "" || strings.Contains(id, " "):
				wantErr(t, fmt.Sprintf("CloseSession(%q)", id), err, ErrInvalidID)
			case mm.shut:
				wantErr(t, fmt.Sprintf("CloseSession(%q)", id), err, ErrManagerClosed)
			case ms == nil:
				wantErr(t, fmt.Sprintf("CloseSession(%q)", id), err, ErrSessionNotFound)
			default:
				wantErr(t, fmt.Sprintf("CloseSession(%q)", id), err, nil)
				mm.drop(ms, &mm.closed)
				mm.wantClosedHook(t, id)
			}
		},
		"Session.Close": func(t *rapid.T) {
			ms := mm.pickHandle(t)
			wantErr(t, "Session.Close", ms.s.Close(), nil)
			if ms.open {
				mm.drop(ms, &mm.closed)
				mm.wantClosedHook(t, ms.id)
			}
		},
		"Session.Touch": func(t *rapid.T) {
			ms := mm.pickHandle(t)
			ms.s.Touch()
			if ms.open {
				mm.use(ms)
			}
		},
		"AdvanceClock": func(t *rapid.T) {
			// Mostly forwards, in whole seconds so that uses land exactly
			// on the cutoff; now and then backwards, but not while a
			// request is in flight: a sweep counts a busy session as used
			// at the sweep's time, and a clock that then goes back would
			// make that use later than the uses that follow, which only
			// delays the eviction (evict_test.go's TestClockJumps covers
			// jumps on their own).
			d := time.Duration(rapid.IntRange(-3, 25).Draw(t, "seconds")) * time.Second
			if d < 0 && mm.inFlight() > 0 {
				d = -d
			}
			mm.clk.Advance(d)
		},
		"Sweep": func(t *rapid.T) {
			var want []string
			if !mm.shut && mm.timeout > 0 {
				cutoff := mm.now() - mm.timeout
				for id, ms := range mm.live {
					if ms.lastUse < cutoff && ms.inFlight == 0 {
						want = append(want, id)
					}
				}
			}
			n := mm.m.Sweep()
			var got []string
			for _, h := range mm.hooked {
				if h.reason != EvictIdle {
					t.Fatalf("Sweep ran the hook for %q with reason %v", h.id, h.reason)
				}
				got = append(got, h.id)
			}
			mm.hooked = nil
			slices.Sort(want)
			slices.Sort(got)
			if n != len(want) || !slices.Equal(got, want) {
				t.Fatalf("Sweep evicted %d, hook saw %q; want %q", n, got, want)
			}
			for _, id := range want {
				mm.drop(mm.live[id], &mm.evicted)
			}
		},
		"SetMaxSessions": func(t *rapid.T) {
			n := rapid.IntRange(-1, 7).Draw(t, "cap") // also below the count, 0 and negative
			mm.m.SetMaxSessions(n)
			mm.cap = max(n, 0)
		},
		"SetSessionTimeout": func(t *rapid.T) {
			d := rapid.SampledFrom([]time.Duration{-time.Second, 0, time.Second, 5 * time.Second, 10 * time.Second}).Draw(t, "timeout")
			mm.m.SetSessionTimeout(d)
			mm.timeout = int64(max(d, 0))
		},
		"beginRequest": func(t *rapid.T) {
			ms := mm.pickHandle(t)
			err := ms.s.beginRequest()
			if !ms.open {
				wantErr(t, "beginRequest on a closed session", err, ErrSessionClosed)
				return
			}
			wantErr(t, "beginRequest", err, nil)
			ms.inFlight++
			ms.requests++
			mm.use(ms)
		},
		"endRequest": func(t *rapid.T) {
			var busy []*mdlSession
			for _, ms := range mm.handles {
				if ms.inFlight > 0 {
					busy = append(busy, ms)
				}
			}
			if len(busy) == 0 {
				t.Skip("no request in flight")
			}
			ms := rapid.SampledFrom(busy).Draw(t, "request")
			ms.s.endRequest()
			ms.inFlight--
			if ms.open {
				mm.use(ms)
			}
		},
		"Shutdown": func(t *rapid.T) {
			// Rarely: every later step would be about a closed Manager.
			if !mm.shut && rapid.IntRange(0, 9).Draw(t, "shut down now") > 0 {
				return
			}
			inFlight := mm.inFlight()
			switch how := rapid.IntRange(0, 1).Draw(t, "how"); {
			case mm.shut:
				wantErr(t, "ShutdownContext again", mm.m.ShutdownContext(context.Background()), nil)
			case how == 0:
				mm.m.Shutdown()
			default:
				// An ended context: it does not wait, and says so if a
				// request was in flight.
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				var want error
				if inFlight > 0 {
					want = context.Canceled
				}
				wantErr(t, "ShutdownContext", mm.m.ShutdownContext(ctx), want)
			}
			var want, got []string
			for id := range mm.live {
				want = append(want, id)
			}
			for _, h := range mm.hooked {
				if h.reason != EvictShutdown {
					t.Fatalf("Shutdown ran the hook for %q with reason %v", h.id, h.reason)
				}
				got = append(got, h.id)
			}
			mm.hooked = nil
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("Shutdown ran the hook for %q, want %q", got, want)
			}
			for _, ms := range mm.live {
				mm.drop(ms, &mm.closed)
			}
			mm.shut = true
		},
		"": mm.check,
	}
}

// wantClosedHook checks that closing the session id ran the hook once, with
// EvictClosed.
func (mm *modelMachine) wantClosedHook(t *rapid.T, id string) {
	t.Helper()
	if want := []mdlHook{{id, EvictClosed}}; !slices.Equal(mm.hooked, want) {
		t.Fatalf("closing %q ran the hook %v, want %v", id, mm.hooked, want)
	}
	mm.hooked = nil
}

// check compares the Manager with the model.
func (mm *modelMachine) check(t *rapid.T) {
	if len(mm.hooked) > 0 {
		t.Fatalf("the hook ran for %v outside a Sweep, Shutdown or close", mm.hooked)
	}
	now := mm.now()
	var want []*mdlSession
	for _, ms := range mm.live {
		want = append(want, ms)
	}
	slices.SortFunc(want, func(a, b *mdlSession) int {
		if c := cmp.Compare(a.createdAt, b.createdAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	list := mm.m.ListSessions()
	if len(list) != len(want) {
		t.Fatalf("ListSessions has %d sessions %v, the model %d", len(list), statIDs(list), len(want))
	}
	for _, ms := range mm.handles {
		if ms.s.IsActive() != ms.open {
			t.Fatalf("session %q: IsActive %v, want %v", ms.id, ms.s.IsActive(), ms.open)
		}
	}
	for i, st := range list {
		ms := want[i]
		last := min(ms.lastUse, now)
		idle := time.Duration(now - last)
		if ms.inFlight > 0 {
			idle = 0
		}
		switch {
		case st.ID != ms.id:
			t.Fatalf("ListSessions order %v, want %v", statIDs(list), mdlIDsOf(want))
		case !st.Active:
			t.Fatalf("ListSessions: %q not active", st.ID)
		case st.CreatedAt.UnixNano() != ms.createdAt:
			t.Fatalf("%q: CreatedAt %v, want %v", st.ID, st.CreatedAt, time.Unix(0, ms.createdAt))
		case st.LastUsed.UnixNano() != last:
			t.Fatalf("%q: LastUsed %v, want %v", st.ID, st.LastUsed, time.Unix(0, last))
		case st.IdleTime != idle:
			t.Fatalf("%q: IdleTime %v, want %v", st.ID, st.IdleTime, idle)
		case st.InFlight != ms.inFlight || st.RequestCount != ms.requests:
			t.Fatalf("%q: %d in flight, %d requests; want %d, %d", st.ID, st.InFlight, st.RequestCount, ms.inFlight, ms.requests)
		}
	}
	if n := mm.m.SessionCount(); n != len(mm.live) {
		t.Fatalf("SessionCount = %d, want %d", n, len(mm.live))
	}
	if n := mm.m.MaxSessions(); n != mm.cap {
		t.Fatalf("MaxSessions = %d, want %d", n, mm.cap)
	}
	if d := mm.m.SessionTimeout(); int64(d) != mm.timeout {
		t.Fatalf("SessionTimeout = %v, want %v", d, time.Duration(mm.timeout))
	}
	wantStats := ManagerStats{
		Active: int64(len(mm.live)), Created: mm.created, Closed: mm.closed, Evicted: mm.evicted,
		Rejected: mm.rejected, InFlight: int64(mm.inFlight()),
	}
	st := mm.m.Stats()
	if st != wantStats {
		t.Fatalf("Stats = %+v, want %+v", st, wantStats)
	}
	if st.Created != st.Closed+st.Evicted+st.Active {
		t.Fatalf("Stats do not add up: %+v", st)
	}
}

func statIDs(list []SessionStats) []string {
	var ids []string
	for _, st := range list {
		ids = append(ids, st.ID)
	}
	return ids
}

func mdlIDsOf(list []*mdlSession) []string {
	var ids []string
	for _, ms := range list {
		ids = append(ids, ms.id)
	}
	return ids
}
