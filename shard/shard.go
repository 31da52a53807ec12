// Package shard is the lock-striped map at the heart of roster's registry.
//
// A Map holds Entries by string key in a power-of-two number of shards,
// chosen by the xxh3 hash of the key, seeded per Map. Each shard has a lock
// for writers, a hash table that readers use without any lock, and an idle
// min-heap ordered by the last-use stamp recorded when an entry was pushed
// (or last looked at by the sweeper).
//
// Get is lock-free and allocation-free: it hashes, finds the entry and
// touches its stamp with at most one atomic write. It never touches the heap.
// Sweep walks the shards and, per shard under its lock, looks only at entries
// whose recorded stamp is old enough to have expired: those used since are
// re-recorded and pushed down, those in use are kept, the rest are removed.
// So a sweep costs O(shards + entries expired or touched), not O(entries).
//
// The package knows nothing of HTTP; roster's session.Manager instantiates it
// with *session.Session.
package shard

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"

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
	shards  []shard[V]
	seed    uint64 // of the hash that picks a shard and a slot
	shift   uint   // 64 - log2(len(shards)): the top bits of a hash pick the shard
	sweepMu sync.Mutex
}

type shard[V any] struct {
	// Read by every Get; written only when the table is replaced. Kept on a
	// cache line of its own so that writers taking the lock do not evict it
	// from readers' caches.
	table atomic.Pointer[table[V]]
	_     [56]byte

	mu      sync.Mutex
	live    int // entries in table
	used    int // live plus deleted slots in table
	heap    evict.Heap[*Entry[V]]
	removed int // entries in heap that are removed: dropped lazily
	closed  bool
	// Tables replaced by a larger one and by a smaller one: tests read
	// them to prove that a growth or a shrink happened under readers.
	grows, shrinks int
	_              [64]byte
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
	// Keys are chosen by callers (CreateSessionWithID, a restore): with a
	// fixed hash, keys chosen to share a shard and a probe group would
	// make every lookup of them walk one long probe chain.
	m := &Map[V]{shards: make([]shard[V], n), seed: rand.Uint64(), shift: uint(64 - bits.TrailingZeros(uint(n)))}
	for i := range m.shards {
		m.shards[i].table.Store(newTable[V](groupSize))
	}
	return m
}

// Shards returns the number of shards.
func (m *Map[V]) Shards() int { return len(m.shards) }

func (m *Map[V]) hash(key string) uint64 { return xxh3.HashStringSeed(key, m.seed) }

func (m *Map[V]) shardOf(h uint64) *shard[V] {
	// With one shard the shift is 64, and a Go shift by the full width is 0.
	return &m.shards[h>>m.shift]
}

// Get returns the value stored under key and records a use at stamp now. It
// takes no lock and does not allocate. A Get that races with the removal of
// key either returns the value, and the use it records stops the sweeper
// from evicting it, or reports false: never both found and evicted.
func (m *Map[V]) Get(key string, now int64) (V, bool) {
	h := m.hash(key)
	if e := m.shardOf(h).table.Load().lookup(key, h); e != nil && e.Touch(now) {
		return e.value, true
	}
	var zero V
	return zero, false
}

// Load returns the Entry stored under key, without recording a use.
func (m *Map[V]) Load(key string) (*Entry[V], bool) {
	h := m.hash(key)
	if e := m.shardOf(h).table.Load().lookup(key, h); e != nil && !e.Removed() {
		return e, true
	}
	return nil, false
}

// Insert adds e under its key. e must be new: Insert returns an error
// wrapping ErrRemoved if e has been removed from a Map, one wrapping
// ErrExists if the key is present (e itself included), and ErrClosed after
// Drain; e is then not inserted.
func (m *Map[V]) Insert(e *Entry[V]) error {
	h := m.hash(e.key)
	s := m.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if e.Removed() {
		return fmt.Errorf("%w: key %q", ErrRemoved, e.key)
	}
	t := s.table.Load()
	if t.lookup(e.key, h) != nil {
		return fmt.Errorf("%w: key %q", ErrExists, e.key)
	}
	if (s.used+1)*8 > t.capacity()*7 {
		t = s.rehash(t, m.seed)
	}
	if t.put(e, h) {
		s.used++
	}
	s.live++
	s.heap.Push(e.stamp.Load(), e)
	return nil
}

// rehash replaces t by a table with room for twice the live entries and
// returns it; seed is the Map's. Readers still on t keep a complete, frozen
// view: nt is published only once every entry is in it.
func (s *shard[V]) rehash(t *table[V], seed uint64) *table[V] {
	nt := newTable[V](max(2*s.live, 4*groupSize))
	if (s.live+1)*8 > nt.capacity()*7 {
		nt = newTable[V](2 * nt.capacity())
	}
	t.each(func(e *Entry[V]) bool {
		nt.put(e, xxh3.HashStringSeed(e.key, seed))
		return true
	})
	s.used = s.live
	switch {
	case nt.capacity() > t.capacity():
		s.grows++
	case nt.capacity() < t.capacity():
		s.shrinks++
	}
	s.table.Store(nt)
	return nt
}

// Delete removes the entry stored under key and returns its value.
func (m *Map[V]) Delete(key string) (V, bool) {
	h := m.hash(key)
	s := m.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.table.Load().lookup(key, h)
	if e == nil || !s.remove(e, h, m.seed) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Remove removes e, if it is still in the map. It reports whether this call
// removed it; of all the calls to Remove, Delete and Sweep that race to
// remove one entry, exactly one succeeds.
func (m *Map[V]) Remove(e *Entry[V]) bool {
	h := m.hash(e.key)
	s := m.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(e, h, m.seed)
}

// remove takes e out of the table and flags it removed; the heap drops it
// lazily. h is e's hash and seed the Map's. The caller holds s.mu.
func (s *shard[V]) remove(e *Entry[V], h, seed uint64) bool {
	if !e.markRemoved() {
		return false
	}
	s.unlink(e, h, seed)
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

// unlink takes e, already flagged removed, out of the table; h is e's hash
// and seed the Map's. The caller holds s.mu.
func (s *shard[V]) unlink(e *Entry[V], h, seed uint64) {
	g, j := s.table.Load().slotOf(e, h)
	if g == nil {
		panic("shard: live entry missing from its table")
	}
	if g.clear(j) {
		s.used--
	}
	s.live--
	// Give memory back once the shard has emptied out: a table at most an
	// eighth full is rebuilt at a quarter of its size, after e's slot is
	// cleared (the rebuild copies every entry still in the table).
	if t := s.table.Load(); t.capacity() > 1024 && s.live*8 < t.capacity() {
		s.rehash(t, seed)
	}
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

// Range calls f for each entry in the map until f returns false. It takes no
// lock: an entry inserted or removed during Range may or may not be seen, and
// every entry present throughout is seen exactly once.
func (m *Map[V]) Range(f func(*Entry[V]) bool) {
	for i := range m.shards {
		ok := true
		m.shards[i].table.Load().each(func(e *Entry[V]) bool {
			if !e.Removed() {
				ok = f(e)
			}
			return ok
		})
		if !ok {
			return
		}
	}
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
		s.table.Load().each(func(e *Entry[V]) bool {
			if e.markRemoved() {
				batch = append(batch, e.value)
			}
			return true
		})
		s.table.Store(newTable[V](groupSize))
		s.heap.Reset()
		s.live, s.used, s.removed = 0, 0, 0
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
