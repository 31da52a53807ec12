package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// This file checks that the registry is linearizable: histories of
// CreateSessionWithID, GetSession, CloseSession, Session.Close, SessionCount,
// Sweep, SetMaxSessions, CreateSessionWait and requests in flight,
// recorded from many goroutines at once, are checked with porcupine against a
// sequential model of the registry.
//
// # What the model is
//
// The registry's state, as far as these methods can observe it, is:
//
//   - the set of IDs registered, each with the stamp of its last use;
//   - the slot counter, which the cap is checked against (a create takes a
//     slot before it inserts and gives it back if the insert fails; a removal
//     gives it back after it has left the table);
//   - the active counter that SessionCount reads (raised after an insert,
//     lowered after a removal).
//
// These are three separate atomic words in the implementation, and a method
// changes them one after the other, not all at once, so a method is not one
// atomic step. By design: SessionCount may briefly lag a create that a Get
// already sees, and a create may be refused at the cap while another create,
// about to fail with ErrSessionExists, holds a slot for a moment. A model
// with one atomic step per method would flag both. So each call is recorded
// as the sequence of its atomic steps ("micro-operations"), each an
// Operation with the interval of the whole call; the model forces the steps
// of one call into their order with a per-goroutine stage counter. Every step
// is then a single atomic action of the implementation, and the history of
// steps must be linearizable.
//
// # The clock
//
// Stamps come from an injected clock that goroutines advance while the
// others run. An operation reads the clock before its linearization point (a
// create when it builds the session, a Get before it touches the entry, a
// Sweep once at its start), so if the clock could move during an operation
// the stamp it records would not be "now" at its linearization point. The
// test therefore holds a read lock around every operation and the write lock
// around every advance: an advance happens between operations, never during
// one, so each operation knows the exact time T it ran at, and concurrent
// operations ran at the same T. The advances still interleave with the
// operations at arbitrary points (any goroutine may advance the clock next),
// and the read locks do not order the operations among themselves.
//
// # Sweep
//
// A sweep is not atomic either: it settles each entry at its own moment, so
// within one sweep a Get may miss an entry the sweep has already evicted and
// then another Get may save a stale entry the sweep has not reached yet. It
// is recorded as one step per ID over the sweep's interval, with the cutoff
// T - timeout it computed at its start:
//
//   - evict(id): the id was registered with a last use before the cutoff,
//     and leaves; then two more steps lower the active and slot counters;
//   - keep(id): at some moment of the sweep the id was not registered, or its
//     last use was not before the cutoff.
//
// Which IDs a sweep evicted comes from the eviction hook, which runs on the
// sweeping goroutine; sweeps are serialized by the test, so the hook knows
// which sweep it belongs to, and the count Sweep returns must match.
//
// # Session.Close
//
// A goroutine also gets a session and closes it with Session.Close. By then
// another goroutine may have closed it and even created a new session under
// the same ID, which this Close must leave alone, and Close does not say
// whether it removed anything. The model counts the sessions inserted under
// each ID, the get step remembers which one it found, and the close step
// removes it only if it is still the one registered; the next two steps
// lower the counters only if it did.
//
// # Growth, requests, the cap and waiters
//
// One history in four is a growth history: linMaxIDs IDs in one shard,
// more than its first table holds, so tables grow while others read (its
// sweeps record evictions only: a keep step for each of 24 IDs makes the
// histories too wide to decide). Every history also has requests that stay
// in flight across a client's later calls (the sweeper must keep their
// sessions; the end of a request is a use), SetMaxSessions, and
// CreateSessionWait with an ended context, which takes a slot at once or
// from the queue, or leaves the queue; while it is queued a create may be
// refused below the cap. A create reads the waiters' count and then takes a
// slot, two steps the model merges, so it allows a little more than the
// implementation does; it never allows less.
//
// With ROSTER_STRESS=1 (make stress sets it) the test runs many more and
// longer histories. On a failure it writes porcupine's visualization to a
// temporary file and prints its path.

const (
	linIDs      = 6  // IDs of the usual histories
	linMaxIDs   = 24 // IDs of the growth histories: more than a shard's first table holds
	linCap      = 4
	linTimeout  = 10 * time.Second
	linClients  = 8
	linMaxSteps = 6 // micro-operations per call, at most
)

var linNames = func() (names [linMaxIDs]string) {
	for i := range names {
		names[i] = fmt.Sprintf("id-%d", i)
	}
	return names
}()

// relClock is a manual Clock read with one atomic load, so that it adds no
// lock between the goroutines that read it. With jitter set, a read yields
// the processor half the time: the registry reads the clock in the middle of
// a create (after it took a slot, before it inserts) and at the start of a
// Get and a Sweep, so other goroutines run there even on a machine with
// few cores.
type relClock struct {
	ns     atomic.Int64
	jitter bool
}

// relEpoch is where every relClock starts, in Unix nanoseconds.
var relEpoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()

func newRelClock() *relClock {
	c := &relClock{}
	c.ns.Store(relEpoch)
	return c
}

func (c *relClock) Now() time.Time {
	if c.jitter && rand.IntN(2) == 0 {
		runtime.Gosched()
	}
	return time.Unix(0, c.ns.Load())
}

func (c *relClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *relClock) stamp() int64            { return c.ns.Load() }

type linKind uint8

const (
	linReserve       linKind = iota // create: took a slot (slots < cap)
	linFull                         // create: ErrMaxSessions (slots >= cap)
	linFree                         // create: id absent when checked, before reserving
	linDupCheck                     // create that fails with ErrSessionExists: id present (early), or absent (late)
	linDupReserve                   // ... late only: took a slot
	linInsert                       // create: id absent, registered at T
	linCount                        // create: active++
	linDup                          // create: id present: ErrSessionExists
	linDupRelease                   // create: gave the slot back
	linGetFound                     // get: id present, last use := T
	linGetMissing                   // get: ErrSessionNotFound
	linCloseRemove                  // close: id present, removed
	linCloseActive                  // close: active--
	linCloseRelease                 // close: slots--
	linCloseMissing                 // close: ErrSessionNotFound
	linHandleGet                    // get, to close the session: as linGetFound
	linHandleClose                  // Session.Close: removed if still registered
	linHandleActive                 // Session.Close: active--, if it removed it
	linHandleRelease                // Session.Close: slots--, if it removed it
	linSessionCount                 // SessionCount() == n
	linEvict                        // sweep: id present and stale, removed
	linEvictActive                  // sweep: active--
	linEvictRelease                 // sweep: slots--
	linKeep                         // sweep: id absent or fresh at some moment
	linSetCap                       // SetMaxSessions(n)
	linWaitIn                       // CreateSessionWait, granted: a slot at once (no waiters, room), or joined the queue
	linWaitGot                      // ... from the queue: took a slot
	linWaitQueued                   // CreateSessionWait, ctx ended: joined the queue
	linWaitLeft                     // ... left it
	linAnonActive                   // its new session (a random ID): active++
	linAnonClose                    // CloseSession of it: active--
	linAnonRelease                  // ... slots--
	linReqGet                       // request: get found the session, remembers which
	linReqInc                       // beginRequest: in flight++ on that session
	linReqTouch                     // ... the touch: the session is still registered, last use := T
	linReqRefused                   // ... the touch failed: it had left
	linReqDec                       // ... in flight-- (refused, or the end of the request)
	linReqEnd                       // endRequest: touch if still registered
)

var linKindNames = [...]string{
	linReserve: "reserve", linFull: "full", linFree: "free", linDupCheck: "taken?", linDupReserve: "reserve?",
	linInsert: "insert", linCount: "active++",
	linDup: "exists", linDupRelease: "release",
	linGetFound: "found", linGetMissing: "not found",
	linCloseRemove: "remove", linCloseActive: "active--", linCloseRelease: "release", linCloseMissing: "not found",
	linHandleGet: "found", linHandleClose: "Session.Close", linHandleActive: "active--?", linHandleRelease: "release?",
	linSessionCount: "count", linEvict: "evict", linEvictActive: "active--", linEvictRelease: "release", linKeep: "keep",
	linSetCap: "cap :=", linWaitIn: "wait: slot or queue", linWaitGot: "wait: slot from the queue",
	linWaitQueued: "wait: queued", linWaitLeft: "wait: left the queue", linAnonActive: "active++", linAnonClose: "active--",
	linAnonRelease: "release", linReqGet: "found", linReqInc: "in flight++", linReqTouch: "touch", linReqRefused: "refused",
	linReqDec: "in flight--", linReqEnd: "touch?",
}

// linInput is one micro-operation; its outcome is part of it, so porcupine's
// output is unused.
type linInput struct {
	kind   linKind
	client int   // the goroutine, for client steps
	stage  int   // index of this step in its call
	last   bool  // the last step of its call
	id     int   // the ID it is about, if any
	t      int64 // create, get: the clock; sweep steps: the cutoff
	n      int   // SessionCount: its result; SetMaxSessions: the cap
	op     string
}

// linState is the model's state; it is comparable, so porcupine compares
// and caches it with ==.
type linState struct {
	present uint32            // bit i: linNames[i] is registered
	lastUse [linMaxIDs]int64  // for the present IDs; 0 otherwise
	cap     int8              // the cap; 0: none
	slots   int8              // slots held: registered + being created + leaving
	active  int8              // what SessionCount returns
	waiting int8              // CreateSessionWait calls in the queue
	stage   [linClients]int8  // steps of each client's current call taken
	evict   [linMaxIDs]int8   // steps of the eviction of each id taken
	gen     [linMaxIDs]uint16 // sessions inserted under each id so far
	handle  [linClients]int32 // get-then-close: the gen the get found; -1 once its Close removed it
	late    [linClients]bool  // a create failing with ErrSessionExists found the id free first and took a slot; a CreateSessionWait queued
	// A request in flight, per client, from its beginRequest to the end of
	// its endRequest: the id and the gen of the session; busyGen 0: none.
	busyID  [linClients]int8
	busyGen [linClients]uint16
}

// full reports whether a create is refused at the cap.
func (st *linState) full() bool { return st.cap > 0 && st.slots >= st.cap }

// busy reports whether the session registered under id has a request in
// flight.
func (st *linState) busy(id int) bool {
	for c := range linClients {
		if st.busyGen[c] != 0 && int(st.busyID[c]) == id && st.busyGen[c] == st.gen[id] {
			return true
		}
	}
	return false
}

func linStep(st linState, in linInput) (bool, linState) {
	switch in.kind {
	case linEvict, linEvictActive, linEvictRelease, linKeep:
	default:
		if int(st.stage[in.client]) != in.stage {
			return false, st
		}
		if in.last {
			st.stage[in.client] = 0
		} else {
			st.stage[in.client]++
		}
	}
	bit := uint32(1) << in.id
	present := st.present&bit != 0
	ok := true
	switch in.kind {
	case linReserve:
		// A create reads the waiters' count, then takes a slot: two steps
		// of which the model keeps only the second, so it allows more.
		ok = !st.full()
		st.slots++
	case linFull:
		ok = st.full() || st.waiting > 0
	case linFree:
		ok = !present
	case linDupCheck:
		// Either the early check saw the id taken, or it saw it free and
		// the insert, with a slot held, found it taken.
		st.late[in.client] = !present
	case linDupReserve:
		if st.late[in.client] {
			ok = !st.full()
			st.slots++
		}
	case linInsert:
		ok = !present
		st.present |= bit
		st.lastUse[in.id] = in.t
		st.gen[in.id]++
	case linCount:
		st.active++
	case linDup:
		ok = present
	case linDupRelease:
		if st.late[in.client] {
			st.slots--
		}
		st.late[in.client] = false
	case linCloseRelease:
		st.slots--
	case linGetFound:
		ok = present
		st.lastUse[in.id] = max(st.lastUse[in.id], in.t)
	case linHandleGet:
		ok = present
		st.lastUse[in.id] = max(st.lastUse[in.id], in.t)
		st.handle[in.client] = int32(st.gen[in.id])
	case linHandleClose:
		// The session the get found leaves if it is still the one
		// registered; if another call removed it, Close does nothing.
		if present && int32(st.gen[in.id]) == st.handle[in.client] {
			st.present &^= bit
			st.lastUse[in.id] = 0
			st.handle[in.client] = -1
		} else {
			st.handle[in.client] = 0
		}
	case linHandleActive:
		if st.handle[in.client] == -1 {
			st.active--
		}
	case linHandleRelease:
		if st.handle[in.client] == -1 {
			st.slots--
		}
		st.handle[in.client] = 0
	case linGetMissing, linCloseMissing:
		ok = !present
	case linCloseRemove:
		ok = present
		st.present &^= bit
		st.lastUse[in.id] = 0
	case linCloseActive:
		st.active--
	case linSessionCount:
		ok = int(st.active) == in.n
	case linEvict:
		ok = st.evict[in.id] == 0 && present && st.lastUse[in.id] < in.t && !st.busy(in.id)
		st.present &^= bit
		st.lastUse[in.id] = 0
		st.evict[in.id] = 1
	case linEvictActive:
		ok = st.evict[in.id] == 1
		st.evict[in.id] = 2
		st.active--
	case linEvictRelease:
		ok = st.evict[in.id] == 2
		st.evict[in.id] = 0
		st.slots--
	case linKeep:
		ok = !present || st.lastUse[in.id] >= in.t || st.busy(in.id)
	case linSetCap:
		st.cap = int8(in.n)
	case linWaitIn:
		if !st.full() && st.waiting == 0 {
			st.slots++ // at once
		} else {
			st.waiting++
			st.late[in.client] = true
		}
	case linWaitGot:
		if st.late[in.client] {
			ok = !st.full()
			st.slots++
			st.waiting--
		}
	case linWaitQueued:
		st.waiting++
	case linWaitLeft:
		ok = st.waiting > 0
		st.waiting--
	case linAnonActive:
		st.active++
	case linAnonClose:
		st.active--
	case linAnonRelease:
		st.slots--
		st.late[in.client] = false
	case linReqGet:
		ok = present
		st.lastUse[in.id] = max(st.lastUse[in.id], in.t)
		st.busyID[in.client], st.busyGen[in.client] = int8(in.id), st.gen[in.id]
	case linReqInc:
		// busyGen was set by the get: from here the sweeper sees the
		// request.
	case linReqTouch:
		ok = present && st.gen[in.id] == st.busyGen[in.client]
		st.lastUse[in.id] = max(st.lastUse[in.id], in.t)
	case linReqRefused:
		ok = !present || st.gen[in.id] != st.busyGen[in.client]
	case linReqEnd:
		if present && st.gen[in.id] == st.busyGen[in.client] {
			st.lastUse[in.id] = max(st.lastUse[in.id], in.t)
		}
	case linReqDec:
		st.busyGen[in.client] = 0
	}
	return ok, st
}

func linModel(t0 int64, ids, cap int) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return linState{cap: int8(cap)} },
		Step: func(state, input, _ any) (bool, any) {
			return linStep(state.(linState), input.(linInput))
		},
		Hash: func(state any) uint64 {
			st := state.(linState)
			h := uint64(st.present) | uint64(uint8(st.slots))<<32 | uint64(uint8(st.active))<<40 |
				uint64(uint8(st.waiting))<<48 | uint64(uint8(st.cap))<<56
			for _, s := range st.stage {
				h = h*31 + uint64(s)
			}
			for _, g := range st.busyGen {
				h = h*31 + uint64(g)
			}
			for _, u := range st.lastUse {
				h = h*31 + uint64(u)
			}
			return h
		},
		DescribeOperation: func(input, _ any) string {
			in := input.(linInput)
			return fmt.Sprintf("%s: %s", in.op, linKindNames[in.kind])
		},
		DescribeState: func(state any) string {
			st := state.(linState)
			var b strings.Builder
			fmt.Fprintf(&b, "cap %d, slots %d, active %d, waiting %d; {", st.cap, st.slots, st.active, st.waiting)
			sep := ""
			for i := range ids {
				if st.present&(1<<i) != 0 {
					fmt.Fprintf(&b, "%s%s used +%v", sep, linNames[i], time.Duration(st.lastUse[i]-t0))
					sep = ", "
				}
			}
			b.WriteString("}")
			return b.String()
		},
	}
}

// linHistory records one history.
type linHistory struct {
	t       testing.TB
	m       *Manager
	clk     *relClock
	t0      int64
	ids     int          // IDs in use: linNames[:ids]
	cap     int          // the cap at the start
	growth  bool         // a growth history: one shard, many IDs
	seq     atomic.Int64 // porcupine's timestamps
	clockMu sync.RWMutex // read: an operation; write: a clock advance
	sweepMu sync.Mutex   // one Sweep at a time, so the hook knows whose
	evicted []int        // removed by the Sweep in progress
	hooked  int          // hook calls with EvictIdle in the Sweep in progress
	stats   *linStats
}

// linStats counts outcomes over all histories, to show that each was
// exercised.
type linStats struct {
	created, exists, full, found, missing, closed, counts, sweeps, evicted, kept, advances atomic.Int64
	handleClosed, calls, overlapped                                                        atomic.Int64 // overlapped: another call began or ended during it
	setCaps, waitCreated, waitEnded, requests, refused, ended, growthHistories, maxCount   atomic.Int64
}

func linIndex(id string) int {
	for i, n := range linNames {
		if n == id {
			return i
		}
	}
	return -1
}

// linVariant is the shape of a history.
type linVariant struct {
	ids, cap, shards int
	growth           bool
}

// linVariantOf picks the shape of history number seed: mostly the usual
// six IDs under a cap of four, and one in four a growth history with
// linMaxIDs IDs in one shard, more than its first table (eight slots)
// holds, so that tables grow under the readers.
func linVariantOf(seed uint64) linVariant {
	if seed%4 == 3 {
		return linVariant{ids: linMaxIDs, cap: []int{0, 20}[seed/4%2], shards: 1, growth: true}
	}
	return linVariant{ids: linIDs, cap: linCap, shards: []int{1, 2, 64}[seed%3]}
}

// linClient is what one goroutine holds between its calls.
type linClient struct {
	held   *Session // a session with a request of this client in flight
	heldID int
}

// runLinHistory runs clients goroutines doing calls operations each against
// a new Manager and returns the history of micro-operations.
func runLinHistory(t testing.TB, seed uint64, calls int, stats *linStats) (*linHistory, []porcupine.Operation) {
	v := linVariantOf(seed)
	if v.growth {
		calls = calls * 5 / 8 // wider histories: keep them decidable
	}
	h := &linHistory{t: t, clk: newRelClock(), stats: stats, ids: v.ids, cap: v.cap, growth: v.growth}
	if v.growth {
		stats.growthHistories.Add(1)
	}
	h.clk.jitter = true
	h.t0 = h.clk.stamp()
	h.m = NewManager(WithClock(h.clk), WithCleanupInterval(0), WithMaxSessions(v.cap),
		WithSessionTimeout(linTimeout), WithShards(v.shards), WithLogger(discardLogger()),
		WithOnEvict(func(s *Session, r EvictReason) {
			if r == EvictIdle { // runs on the goroutine of the Sweep, under sweepMu
				h.hooked++
				runtime.Gosched() // removed, not yet counted out: let others look
			}
		}))
	defer h.m.Shutdown()
	// The sessions a sweep removes are its evictions in the model, though a
	// Session.Close may take one over before its hook runs (and then the
	// hook runs on the closer's goroutine with EvictClosed, and Sweep does
	// not count it).
	h.m.c.collected = func(s *Session) { h.evicted = append(h.evicted, linIndex(s.ID())) }

	perClient := make([][]porcupine.Operation, linClients)
	var ready atomic.Int64
	var wg sync.WaitGroup
	for c := range linClients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			var cl linClient
			// Start together, and yield between calls half the time, so
			// that the goroutines interleave even on two cores.
			ready.Add(1)
			for ready.Load() < linClients {
				runtime.Gosched()
			}
			for range calls {
				perClient[c] = h.call(r, c, &cl, perClient[c])
				if r.IntN(2) == 0 {
					runtime.Gosched()
				}
			}
			if cl.held != nil {
				perClient[c] = h.endRequest(c, &cl, perClient[c])
			}
		})
	}
	wg.Wait()
	var ops []porcupine.Operation
	for _, o := range perClient {
		ops = append(ops, o...)
	}
	return h, ops
}

// endRequest ends the request client c holds, as one call.
func (h *linHistory) endRequest(c int, cl *linClient, ops []porcupine.Operation) []porcupine.Operation {
	h.clockMu.RLock()
	now := h.clk.stamp()
	call := h.seq.Add(1)
	cl.held.endRequest()
	ret := h.seq.Add(1)
	h.clockMu.RUnlock()
	h.count(call, ret)
	h.stats.ended.Add(1)
	steps := []linInput{{kind: linReqEnd}, {kind: linReqDec}}
	desc := fmt.Sprintf("end request(%s) @%v", linNames[cl.heldID], time.Duration(now-h.t0))
	ops = h.appendSteps(ops, c, cl.heldID, now, desc, call, ret, steps)
	cl.held = nil
	return ops
}

func (h *linHistory) appendSteps(ops []porcupine.Operation, c, id int, now int64, desc string, call, ret int64, steps []linInput) []porcupine.Operation {
	for i := range steps {
		in := &steps[i]
		in.client, in.stage, in.last, in.id, in.t = c, i, i == len(steps)-1, id, now
		in.op = fmt.Sprintf("c%d %s", c, desc)
		ops = append(ops, porcupine.Operation{ClientId: c*linMaxSteps + i, Input: *in, Call: call, Return: ret})
	}
	return ops
}

// call does one random call as client c and appends its micro-operations.
func (h *linHistory) call(r *rand.Rand, c int, cl *linClient, ops []porcupine.Operation) []porcupine.Operation {
	id := r.IntN(h.ids)
	name := linNames[id]
	p := r.IntN(100)
	if cl.held != nil && r.IntN(3) == 0 {
		return h.endRequest(c, cl, ops)
	}
	if p >= 90 { // advance the clock, between operations
		d := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, linTimeout}[r.IntN(4)]
		h.clockMu.Lock()
		h.clk.Advance(d)
		h.clockMu.Unlock()
		h.stats.advances.Add(1)
		return ops
	}
	if p >= 82 {
		return h.sweep(c, ops)
	}

	h.clockMu.RLock()
	now := h.clk.stamp()
	at := time.Duration(now - h.t0)
	call := h.seq.Add(1)
	var steps []linInput
	var desc string
	switch {
	case p < 26:
		err := h.m.CreateSessionWithID(name, nil)
		desc = fmt.Sprintf("create(%s) @%v", name, at)
		switch {
		case err == nil:
			h.stats.created.Add(1)
			steps = []linInput{{kind: linFree}, {kind: linReserve}, {kind: linInsert}, {kind: linCount}}
		case errors.Is(err, ErrSessionExists):
			h.stats.exists.Add(1)
			steps = []linInput{{kind: linDupCheck}, {kind: linDupReserve}, {kind: linDup}, {kind: linDupRelease}}
		case errors.Is(err, ErrMaxSessions):
			h.stats.full.Add(1)
			steps = []linInput{{kind: linFree}, {kind: linFull}}
		default:
			h.t.Errorf("CreateSessionWithID(%q): unexpected error %v", name, err)
		}
	case p < 44:
		s, err := h.m.GetSession(name)
		desc = fmt.Sprintf("get(%s) @%v", name, at)
		switch {
		case err == nil:
			h.stats.found.Add(1)
			steps = []linInput{{kind: linGetFound}}
			if s.ID() != name {
				h.t.Errorf("GetSession(%q) returned session %q", name, s.ID())
			}
		case errors.Is(err, ErrSessionNotFound):
			h.stats.missing.Add(1)
			steps = []linInput{{kind: linGetMissing}}
		default:
			h.t.Errorf("GetSession(%q): unexpected error %v", name, err)
		}
	case p < 54:
		err := h.m.CloseSession(name)
		desc = fmt.Sprintf("close(%s)", name)
		switch {
		case err == nil:
			h.stats.closed.Add(1)
			steps = []linInput{{kind: linCloseRemove}, {kind: linCloseActive}, {kind: linCloseRelease}}
		case errors.Is(err, ErrSessionNotFound):
			steps = []linInput{{kind: linCloseMissing}}
		default:
			h.t.Errorf("CloseSession(%q): unexpected error %v", name, err)
		}
	case p < 61:
		// Session.Close on the session a Get has just returned: it may
		// have been closed, evicted or even replaced by then.
		s, err := h.m.GetSession(name)
		desc = fmt.Sprintf("get(%s).Close() @%v", name, at)
		switch {
		case err == nil:
			h.stats.found.Add(1)
			h.stats.handleClosed.Add(1)
			_ = s.Close()
			if s.IsActive() {
				h.t.Errorf("session %q active after its Close", name)
			}
			steps = []linInput{{kind: linHandleGet}, {kind: linHandleClose}, {kind: linHandleActive}, {kind: linHandleRelease}}
		case errors.Is(err, ErrSessionNotFound):
			h.stats.missing.Add(1)
			steps = []linInput{{kind: linGetMissing}}
		default:
			h.t.Errorf("GetSession(%q): unexpected error %v", name, err)
		}
	case p < 68 && cl.held == nil:
		// A request begins on the session a Get returned, and stays in
		// flight across this client's next calls.
		s, err := h.m.GetSession(name)
		desc = fmt.Sprintf("get(%s).beginRequest() @%v", name, at)
		switch {
		case err == nil:
			h.stats.found.Add(1)
			if err := s.beginRequest(); err == nil {
				h.stats.requests.Add(1)
				cl.held, cl.heldID = s, id
				steps = []linInput{{kind: linReqGet}, {kind: linReqInc}, {kind: linReqTouch}}
			} else {
				h.stats.refused.Add(1)
				steps = []linInput{{kind: linReqGet}, {kind: linReqInc}, {kind: linReqRefused}, {kind: linReqDec}}
			}
		case errors.Is(err, ErrSessionNotFound):
			h.stats.missing.Add(1)
			steps = []linInput{{kind: linGetMissing}}
		default:
			h.t.Errorf("GetSession(%q): unexpected error %v", name, err)
		}
	case p < 72:
		n := []int{0, 2, 4, 6}[r.IntN(4)]
		if h.growth {
			n = []int{0, 12, 20}[r.IntN(3)]
		}
		h.m.SetMaxSessions(n)
		h.stats.setCaps.Add(1)
		desc = fmt.Sprintf("SetMaxSessions(%d)", n)
		steps = []linInput{{kind: linSetCap, n: n}}
	case p < 78:
		// CreateSessionWait with an ended context: a slot at once, or
		// from the queue while it looks, or the context's error. The
		// session it makes (under a random ID) is closed at once.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		newID, err := h.m.CreateSessionWait(ctx, nil)
		desc = fmt.Sprintf("CreateSessionWait @%v", at)
		switch {
		case err == nil:
			h.stats.waitCreated.Add(1)
			if err := h.m.CloseSession(newID); err != nil {
				h.t.Errorf("CloseSession of the session CreateSessionWait made: %v", err)
			}
			steps = []linInput{{kind: linWaitIn}, {kind: linWaitGot}, {kind: linAnonActive}, {kind: linAnonClose}, {kind: linAnonRelease}}
		case errors.Is(err, context.Canceled):
			h.stats.waitEnded.Add(1)
			steps = []linInput{{kind: linWaitQueued}, {kind: linWaitLeft}}
		default:
			h.t.Errorf("CreateSessionWait: unexpected error %v", err)
		}
	default:
		n := h.m.SessionCount()
		h.stats.counts.Add(1)
		for m := h.stats.maxCount.Load(); int64(n) > m && !h.stats.maxCount.CompareAndSwap(m, int64(n)); m = h.stats.maxCount.Load() {
		}
		desc = fmt.Sprintf("SessionCount() = %d", n)
		steps = []linInput{{kind: linSessionCount, n: n}}
	}
	ret := h.seq.Add(1)
	h.clockMu.RUnlock()
	h.count(call, ret)
	return h.appendSteps(ops, c, id, now, desc, call, ret, steps)
}

func (h *linHistory) count(call, ret int64) {
	h.stats.calls.Add(1)
	if ret-call > 1 {
		h.stats.overlapped.Add(1)
	}
}

// sweep does a Sweep as client c and appends one step per ID (three per
// evicted ID).
func (h *linHistory) sweep(c int, ops []porcupine.Operation) []porcupine.Operation {
	h.sweepMu.Lock()
	defer h.sweepMu.Unlock()
	h.clockMu.RLock()
	now := h.clk.stamp()
	cutoff := now - int64(linTimeout)
	h.evicted = h.evicted[:0]
	h.hooked = 0
	call := h.seq.Add(1)
	n := h.m.Sweep()
	ret := h.seq.Add(1)
	h.clockMu.RUnlock()
	h.count(call, ret)
	h.stats.sweeps.Add(1)

	if n != h.hooked || n > len(h.evicted) {
		h.t.Errorf("Sweep returned %d, the hook saw %d evictions, and it removed %v", n, h.hooked, h.evicted)
	}
	var gone [linMaxIDs]bool
	for _, id := range h.evicted {
		if id < 0 || gone[id] {
			h.t.Errorf("Sweep evicted %v: unknown or twice", h.evicted)
			continue
		}
		gone[id] = true
	}
	desc := fmt.Sprintf("c%d sweep @%v", c, time.Duration(now-h.t0))
	lane := linClients * linMaxSteps
	for id := range h.ids {
		var steps []linKind
		if gone[id] {
			h.stats.evicted.Add(1)
			steps = []linKind{linEvict, linEvictActive, linEvictRelease}
		} else {
			h.stats.kept.Add(1)
			// With linMaxIDs IDs a keep step per ID makes histories too
			// wide for the checker; growth histories check what a sweep
			// evicts, and the usual ones also what it keeps.
			if h.growth {
				continue
			}
			steps = []linKind{linKeep}
		}
		for i, k := range steps {
			in := linInput{kind: k, client: c, id: id, t: cutoff, op: fmt.Sprintf("%s %s", desc, linNames[id])}
			ops = append(ops, porcupine.Operation{ClientId: lane + id*linMaxSteps + i, Input: in, Call: call, Return: ret})
		}
	}
	return ops
}

// checkLinearizable checks one history; on failure it writes the
// visualization to a temporary file.
func checkLinearizable(t *testing.T, ops []porcupine.Operation, model porcupine.Model, timeout time.Duration) porcupine.CheckResult {
	t.Helper()
	res := porcupine.CheckOperationsTimeout(model, ops, timeout)
	if res != porcupine.Illegal {
		return res
	}
	_, info := porcupine.CheckOperationsVerbose(model, ops, 0)
	f, err := os.CreateTemp("", "roster-linearizability-*.html")
	if err != nil {
		t.Errorf("history of %d operations is not linearizable; no visualization: %v", len(ops), err)
		return res
	}
	path := f.Name()
	_ = f.Close()
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Errorf("history of %d operations is not linearizable; visualization failed: %v", len(ops), err)
		return res
	}
	t.Errorf("history of %d operations is not linearizable; visualization: %s", len(ops), path)
	return res
}

func stressMode() bool { return os.Getenv("ROSTER_STRESS") == "1" }

// TestLinearizable records many short concurrent histories and checks each
// against the model. make stress (ROSTER_STRESS=1) runs more and longer ones.
func TestLinearizable(t *testing.T) {
	histories, calls, budget := 400, 16, 12*time.Second
	if stressMode() {
		histories, calls, budget = 20000, 25, 6*time.Minute
	}
	if testing.Short() {
		histories = 30
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var stats linStats
	var unknown int
	start := time.Now()
	ran := 0
	for i := range histories {
		if time.Since(start) > budget && ran >= histories/4 {
			break // the machine is slow: enough for this run
		}
		ran++
		h, ops := runLinHistory(t, seed+uint64(i), calls, &stats)
		if t.Failed() {
			return
		}
		switch checkLinearizable(t, ops, linModel(relEpoch, h.ids, h.cap), 10*time.Second) {
		case porcupine.Illegal:
			return
		case porcupine.Unknown:
			unknown++
			t.Logf("undecided: growth %v, %d ops", h.growth, len(ops))
		}
	}
	t.Logf("%d histories in %v (%d undecided), %d of %d calls overlapped another: created %d, exists %d, full %d, found %d, not found %d, "+
		"closed %d (+%d with Session.Close), counts %d, sweeps %d, evicted %d, kept %d, clock advances %d",
		ran, time.Since(start).Round(time.Millisecond), unknown, stats.overlapped.Load(), stats.calls.Load(), stats.created.Load(), stats.exists.Load(),
		stats.full.Load(), stats.found.Load(), stats.missing.Load(), stats.closed.Load(), stats.handleClosed.Load(), stats.counts.Load(),
		stats.sweeps.Load(), stats.evicted.Load(), stats.kept.Load(), stats.advances.Load())
	t.Logf("growth histories %d (largest SessionCount seen %d), SetMaxSessions %d, CreateSessionWait %d granted and %d ended, "+
		"requests begun %d (refused %d, ended %d)",
		stats.growthHistories.Load(), stats.maxCount.Load(), stats.setCaps.Load(), stats.waitCreated.Load(), stats.waitEnded.Load(),
		stats.requests.Load(), stats.refused.Load(), stats.ended.Load())
	if unknown > ran/10 {
		t.Errorf("porcupine could not decide %d of %d histories in time", unknown, ran)
	}
	// Every outcome must have come up, or the test proves less than it says.
	for name, n := range map[string]int64{
		"created": stats.created.Load(), "ErrSessionExists": stats.exists.Load(), "ErrMaxSessions": stats.full.Load(),
		"found": stats.found.Load(), "ErrSessionNotFound": stats.missing.Load(), "closed": stats.closed.Load(),
		"Session.Close":    stats.handleClosed.Load(),
		"evicted":          stats.evicted.Load(),
		"a growth history": stats.growthHistories.Load(), "SetMaxSessions": stats.setCaps.Load(),
		"CreateSessionWait granted": stats.waitCreated.Load(), "CreateSessionWait ended": stats.waitEnded.Load(),
		"a request in flight": stats.requests.Load(),
	} {
		if n == 0 {
			t.Errorf("no history exercised %s", name)
		}
	}
	// A shard's first table has eight slots: a history with more sessions
	// than that in one shard grew it while the others read.
	if n := stats.maxCount.Load(); n <= 8 {
		t.Errorf("the growth histories held at most %d sessions at once: no table grew", n)
	}
}

// TestLinearizabilityModel makes sure the checker can fail: it rejects
// hand-made histories that a correct registry cannot produce, and accepts
// their legal twins.
func TestLinearizabilityModel(t *testing.T) {
	t0 := relEpoch
	sec := int64(time.Second)
	op := func(client int, call, ret int64, ins ...linInput) []porcupine.Operation {
		var ops []porcupine.Operation
		for i, in := range ins {
			in.client, in.stage, in.last = client, i, i == len(ins)-1
			in.op = fmt.Sprintf("c%d", client)
			ops = append(ops, porcupine.Operation{ClientId: client*linMaxSteps + i, Input: in, Call: call, Return: ret})
		}
		return ops
	}
	create := func(client int, call, ret int64, id int, at int64) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linFree, id: id}, linInput{kind: linReserve},
			linInput{kind: linInsert, id: id, t: t0 + at}, linInput{kind: linCount})
	}
	exists := func(client int, call, ret int64, id int) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linDupCheck, id: id}, linInput{kind: linDupReserve},
			linInput{kind: linDup, id: id}, linInput{kind: linDupRelease})
	}
	get := func(client int, call, ret int64, id int, at int64, found bool) []porcupine.Operation {
		if found {
			return op(client, call, ret, linInput{kind: linGetFound, id: id, t: t0 + at})
		}
		return op(client, call, ret, linInput{kind: linGetMissing, id: id})
	}
	sweep := func(call, ret int64, cutoff int64, evicted ...int) []porcupine.Operation {
		var ops []porcupine.Operation
		for id := range linIDs {
			kinds := []linKind{linKeep}
			for _, e := range evicted {
				if e == id {
					kinds = []linKind{linEvict, linEvictActive, linEvictRelease}
				}
			}
			for _, k := range kinds {
				ops = append(ops, porcupine.Operation{Input: linInput{kind: k, id: id, t: t0 + cutoff, op: "sweep"}, Call: call, Return: ret})
			}
		}
		return ops
	}
	handleClose := func(client int, call, ret int64, id int, at int64) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linHandleGet, id: id, t: t0 + at}, linInput{kind: linHandleClose, id: id},
			linInput{kind: linHandleActive, id: id}, linInput{kind: linHandleRelease, id: id})
	}
	full := func(client int, call, ret int64, id int) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linFree, id: id}, linInput{kind: linFull, id: id})
	}
	begin := func(client int, call, ret int64, id int, at int64) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linReqGet, id: id, t: t0 + at}, linInput{kind: linReqInc, id: id},
			linInput{kind: linReqTouch, id: id, t: t0 + at})
	}
	end := func(client int, call, ret int64, id int, at int64) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linReqEnd, id: id, t: t0 + at}, linInput{kind: linReqDec, id: id})
	}
	setCap := func(client int, call, ret int64, n int) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linSetCap, n: n})
	}
	waitEnded := func(client int, call, ret int64) []porcupine.Operation {
		return op(client, call, ret, linInput{kind: linWaitQueued}, linInput{kind: linWaitLeft})
	}
	cat := func(parts ...[]porcupine.Operation) []porcupine.Operation {
		var all []porcupine.Operation
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	fiveCreates := func(overlap bool) []porcupine.Operation {
		var ops []porcupine.Operation
		for i := range 5 {
			call, ret := int64(10*i+1), int64(10*i+2)
			if overlap {
				call, ret = 1, 2
			}
			ops = append(ops, create(i, call, ret, i, 0)...)
		}
		return ops
	}
	tests := []struct {
		name  string
		ops   []porcupine.Operation
		legal bool
	}{
		{"get after create", cat(create(0, 1, 2, 0, 0), get(1, 3, 4, 0, 0, true)), true},
		{"get after create misses", cat(create(0, 1, 2, 0, 0), get(1, 3, 4, 0, 0, false)), false},
		{"get during create misses", cat(create(0, 1, 4, 0, 0), get(1, 2, 3, 0, 0, false)), true},
		{"five creates over a cap of four", fiveCreates(false), false},
		{"five concurrent creates over a cap of four", fiveCreates(true), false},
		{"count lags a concurrent create", cat(create(0, 1, 6, 0, 0), get(1, 2, 3, 0, 0, true),
			op(2, 4, 5, linInput{kind: linSessionCount, n: 0})), true},
		{"count lags a finished create", cat(create(0, 1, 2, 0, 0), op(2, 4, 5, linInput{kind: linSessionCount, n: 0})), false},
		{"stale session evicted", cat(create(0, 1, 2, 0, 0), sweep(3, 4, 1*sec, 0), get(1, 5, 6, 0, 20*sec, false)), true},
		{"stale session kept", cat(create(0, 1, 2, 0, 0), sweep(3, 4, 1*sec)), false},
		{"session at the cutoff kept", cat(create(0, 1, 2, 0, 0), sweep(3, 4, 0)), true},
		{"session at the cutoff evicted", cat(create(0, 1, 2, 0, 0), sweep(3, 4, 0, 0)), false},
		{"evicted after a Get saved it", cat(create(0, 1, 2, 0, 0), get(1, 3, 4, 0, 11*sec, true), sweep(5, 6, 1*sec, 0)), false},
		{"Get racing the sweep saves it", cat(create(0, 1, 2, 0, 0), get(1, 3, 6, 0, 11*sec, true), sweep(4, 5, 1*sec)), true},
		{"Session.Close removes it", cat(create(0, 1, 2, 0, 0), handleClose(1, 3, 4, 0, 0), get(2, 5, 6, 0, 0, false)), true},
		{"found after Session.Close", cat(create(0, 1, 2, 0, 0), handleClose(1, 3, 4, 0, 0), get(2, 5, 6, 0, 0, true)), false},
		{"counted after Session.Close", cat(create(0, 1, 2, 0, 0), handleClose(1, 3, 4, 0, 0),
			op(2, 5, 6, linInput{kind: linSessionCount, n: 1})), false},
		{"Session.Close of a replaced session", cat(create(0, 1, 2, 0, 0), handleClose(1, 3, 10, 0, 0),
			op(2, 4, 5, linInput{kind: linCloseRemove, id: 0}, linInput{kind: linCloseActive}, linInput{kind: linCloseRelease}),
			create(3, 6, 7, 0, 0), get(4, 11, 12, 0, 0, true)), true},
		{"slot freed by Session.Close", cat(fiveCreates(false)[:16], handleClose(5, 50, 51, 0, 0), create(6, 52, 53, 4, 0)), true},
		{"slot not freed by Session.Close", cat(fiveCreates(false)[:16], handleClose(5, 50, 51, 0, 0), full(6, 52, 53, 4)), false},
		{"taken ID at the cap is ErrSessionExists", cat(fiveCreates(false)[:16], exists(5, 50, 51, 0)), true},
		{"free ID at the cap is ErrSessionExists", cat(fiveCreates(false)[:16], exists(5, 50, 51, 4)), false},
		{"taken ID at the cap is full", cat(fiveCreates(false)[:16], full(5, 50, 51, 0)), false},
		{"ID taken while a create held a slot", cat(fiveCreates(false)[:12], exists(5, 50, 53, 3), create(3, 51, 52, 3, 0)), true},
		{"busy stale session kept", cat(create(0, 1, 2, 0, 0), begin(1, 3, 4, 0, 0), sweep(5, 6, 1*sec)), true},
		{"busy stale session evicted", cat(create(0, 1, 2, 0, 0), begin(1, 3, 4, 0, 0), sweep(5, 6, 1*sec, 0)), false},
		{"evicted once its request ended", cat(create(0, 1, 2, 0, 0), begin(1, 3, 4, 0, 0), end(1, 5, 6, 0, 0), sweep(7, 8, 1*sec, 0)), true},
		{"request end is a use", cat(create(0, 1, 2, 0, 0), begin(1, 3, 4, 0, 0), end(1, 5, 6, 0, 20*sec), sweep(7, 8, 1*sec, 0)), false},
		{"raised cap admits a fifth", cat(fiveCreates(false)[:16], setCap(5, 50, 51, 6), create(6, 52, 53, 4, 0)), true},
		{"lowered cap admits a fifth", cat(fiveCreates(false)[:16], setCap(5, 50, 51, 2), create(6, 52, 53, 4, 0)), false},
		{"full below the cap while a waiter queues", cat(create(0, 1, 2, 0, 0), waitEnded(1, 3, 6), full(2, 4, 5, 1)), true},
		{"full below the cap with no waiter", cat(create(0, 1, 2, 0, 0), waitEnded(1, 3, 4), full(2, 5, 6, 1)), false},
		{"Get racing the sweep finds an evicted one", cat(create(0, 1, 2, 0, 0), get(1, 4, 5, 0, 11*sec, true),
			get(1, 7, 8, 0, 11*sec, false), sweep(3, 6, 1*sec, 0)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := porcupine.CheckOperationsTimeout(linModel(t0, linIDs, linCap), tt.ops, 10*time.Second)
			if want := map[bool]porcupine.CheckResult{true: porcupine.Ok, false: porcupine.Illegal}[tt.legal]; res != want {
				t.Errorf("checker says %v, want %v", res, want)
			}
		})
	}
}
