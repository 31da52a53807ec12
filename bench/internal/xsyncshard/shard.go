// Package xsyncshard is roster's shard package as issue 12 proposed it, kept
// in bench as a contender (impl=roster-core-xsync) because the measurements
// did not meet the rule for replacing the hand-written table (see
// bench/README.md): run side by side with roster-core, it lets the decision
// be measured again on a quieter or larger machine. Its tests are in the
// history of the shard package (commit d1e3468).
//
// A Map holds Entries by string key. Lookups go through one concurrent hash
// map (github.com/puzpuzpuz/xsync/v3's MapOf) that readers use without any
// lock. Writers are striped over a power-of-two number of shards, chosen by
// a hash of the key seeded per Map: each shard has a lock that orders its
// writers (insert, remove, sweep) and an idle min-heap ordered by the
// last-use stamp recorded when an entry was pushed (or last looked at by the
// sweeper).
//
// Get is lock-free and allocation-free: one lookup in the map, then at most
// one atomic write to the entry's stamp. It never touches the heap. Sweep
// walks the shards and, per shard under its lock, looks only at entries
// whose recorded stamp is old enough to have expired: those used since are
// re-recorded and pushed down, those in use are kept, the rest are removed.
// So a sweep costs O(shards + entries expired or touched), not O(entries).
//
// The package knows nothing of HTTP; roster's session.Manager instantiates it
// with *session.Session.
package xsyncshard

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/puzpuzpuz/xsync/v3"
	"github.com/rosterhq/roster/evict"
	"github.com/zeebo/xxh3"
)

var (
	// ErrExists is returned (wrapped, with the key) by Insert when the key
	// is already present.
	ErrExists = errors.New("shard: key already present")
	// ErrClosed is returned by Insert after Drain.
	ErrClosed = errors.New("shard: map drained")
	// ErrRemoved is returned (wrapped, with the key) by Insert when the
	// entry has already been removed from a Map: an entry is inserted once,
	// and a removed one can never be found again, so inserting it would
	// only make its key unusable.
	ErrRemoved = errors.New("shard: entry already removed")
)

// DefaultShards is the shard count New uses for n <= 0.
const DefaultShards = 64

// MaxShards is the largest shard count New accepts.
const MaxShards = 1 << 16

// Map is a concurrent map from string keys to Entries with idle tracking.
// All methods are safe for concurrent use.
type Map[V any] struct {
	// The one map that every lookup goes through. Each entry of it is
	// written only under the lock of its key's shard, so the writers of
	// one key are ordered and the map needs no other agreement with them.
	m       *xsync.MapOf[string, *Entry[V]]
	shards  []shard[V]
	seed    uint64 // of the hash that picks a key's shard
	shift   uint   // 64 - log2(len(shards)): the top bits of a hash pick the shard
	sweepMu sync.Mutex
}

type shard[V any] struct {
	mu      sync.Mutex
	live    int // entries of this shard in the map
	heap    evict.Heap[*Entry[V]]
	removed int // entries in heap that are removed: dropped lazily
	closed  bool
	_       [64]byte // keep writers of neighbouring shards off each other's cache lines
}

// New returns a Map with n shards, rounded up to a power of two; n <= 0
// means DefaultShards. It panics if n is larger than MaxShards.
func New[V any](n int) *Map[V] {
	if n <= 0 {
		n = DefaultShards
	}
	if n > MaxShards {
		panic(fmt.Sprintf("shard: %d shards requested, at most %d allowed", n, MaxShards))
	}
	n = 1 << bits.Len(uint(n-1))
	return &Map[V]{
		m:      xsync.NewMapOf[string, *Entry[V]](),
		shards: make([]shard[V], n),
		// Keys are chosen by callers (CreateSessionWithID, a restore):
		// with a fixed hash, keys chosen to share a shard would make its
		// writers queue on one lock and its heap hold them all. xsync
		// seeds its own hash the same way.
		seed:  rand.Uint64(),
		shift: uint(64 - bits.TrailingZeros(uint(n))),
	}
}

// Shards returns the number of shards.
func (m *Map[V]) Shards() int { return len(m.shards) }

func (m *Map[V]) shardOf(key string) *shard[V] {
	// With one shard the shift is 64, and a Go shift by the full width is 0.
	return &m.shards[xxh3.HashStringSeed(key, m.seed)>>m.shift]
}

// Get returns the value stored under key and records a use at stamp now. It
// takes no lock and does not allocate. A Get that races with the removal of
// key either returns the value, and the use it records stops the sweeper
// from evicting it, or reports false: never both found and evicted.
func (m *Map[V]) Get(key string, now int64) (V, bool) {
	// A removed entry may still be in the map for a moment (its removal
	// flags it first, then deletes it): Touch fails on it.
	if e, ok := m.m.Load(key); ok && e.Touch(now) {
		return e.value, true
	}
	var zero V
	return zero, false
}

// Load returns the Entry stored under key, without recording a use.
func (m *Map[V]) Load(key string) (*Entry[V], bool) {
	if e, ok := m.m.Load(key); ok && !e.Removed() {
		return e, true
	}
	return nil, false
}

// Insert adds e under its key. e must be new: Insert returns an error
// wrapping ErrRemoved if e has been removed from a Map, one wrapping
// ErrExists if the key is present (e itself included), and ErrClosed after
// Drain; e is then not inserted.
func (m *Map[V]) Insert(e *Entry[V]) error {
	s := m.shardOf(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if e.Removed() {
		return fmt.Errorf("%w: key %q", ErrRemoved, e.key)
	}
	if _, loaded := m.m.LoadOrStore(e.key, e); loaded {
		return fmt.Errorf("%w: key %q", ErrExists, e.key)
	}
	s.live++
	s.heap.Push(e.stamp.Load(), e)
	return nil
}

// Delete removes the entry stored under key and returns its value.
func (m *Map[V]) Delete(key string) (V, bool) {
	s := m.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := m.m.Load(key)
	if !ok || !m.remove(s, e) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Remove removes e, if it is still in the map. It reports whether this call
// removed it; of all the calls to Remove, Delete and Sweep that race to
// remove one entry, exactly one succeeds.
func (m *Map[V]) Remove(e *Entry[V]) bool {
	s := m.shardOf(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return m.remove(s, e)
}

// remove flags e removed and takes it out of the map; the heap drops it
// lazily. The caller holds s.mu.
func (m *Map[V]) remove(s *shard[V], e *Entry[V]) bool {
	if !e.markRemoved() {
		return false
	}
	m.unlink(s, e)
	// A short-lived entry is usually near the end of the heap: take it
	// out now. Others wait there, flagged, for the sweeper or a Filter.
	if s.heap.RemoveNearEnd(e, 8) {
		return true
	}
	s.removed++
	// Removed entries wait in the heap until the sweeper reaches them; keep
	// them from outnumbering the live ones so memory stays bounded when
	// eviction is off or the timeout is long.
	if s.removed > 64 && s.removed > s.heap.Len()/2 {
		s.heap.Filter(func(e *Entry[V]) bool { return !e.Removed() })
		s.removed = 0
	}
	return true
}

// unlink deletes e, already flagged removed, from the map. The caller holds
// s.mu, the lock of e's shard.
func (m *Map[V]) unlink(s *shard[V], e *Entry[V]) {
	found := false
	m.m.Compute(e.key, func(old *Entry[V], loaded bool) (*Entry[V], bool) {
		// Delete e only, never another entry under the same key. The
		// shard lock already keeps one from being inserted while e is
		// there; this keeps a mistake in that from dropping a live entry.
		found = loaded && old == e
		return old, found || !loaded
	})
	if !found {
		panic("shard: live entry missing from the map")
	}
	s.live--
}

// Len returns the number of entries. It locks each shard in turn, so it is
// exact only when no writer runs.
func (m *Map[V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.live
		s.mu.Unlock()
	}
	return n
}

// Range calls f for each entry in the map until f returns false. It holds
// no lock while f runs: an entry inserted or removed during Range may or
// may not be seen, and every entry present throughout is seen exactly once.
func (m *Map[V]) Range(f func(*Entry[V]) bool) {
	m.m.Range(func(_ string, e *Entry[V]) bool {
		return e.Removed() || f(e)
	})
}

// Drain removes every entry, calls f with each (outside the shard locks),
// and makes every later Insert fail with ErrClosed. It returns how many
// entries it removed.
func (m *Map[V]) Drain(f func(V)) int {
	n := 0
	var batch []V
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.closed = true
		// Every live entry of a shard is in its heap.
		for j := range s.heap.Len() {
			if e := s.heap.At(j).Value; e.markRemoved() {
				m.unlink(s, e)
				batch = append(batch, e.value)
			}
		}
		s.heap.Reset()
		s.live, s.removed = 0, 0
		s.mu.Unlock()
		for _, v := range batch {
			f(v)
		}
		n += len(batch)
		clear(batch)
		batch = batch[:0]
	}
	return n
}
