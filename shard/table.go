package shard

import (
	"math/bits"
	"sync/atomic"
)

// table is an open-addressing hash table in groups of eight slots, in the
// manner of Swiss tables: each group has a word of eight control bytes that a
// reader matches against the key's 7-bit tag all at once, so most lookups
// dereference exactly one Entry.
//
// Readers use a table without a lock. Writers hold the shard lock and keep
// three rules that make that safe:
//
//   - a slot's pointer is stored before its control byte says full, and its
//     control byte stops saying full before the pointer is cleared, so a
//     reader that matches a tag finds either nil or a real Entry (whose key it
//     compares anyway);
//   - a group that has no empty byte never gets one back, so a probe sequence
//     that stops at the first group with an empty byte never stops short of a
//     key that is present;
//   - a table that is outgrown is replaced whole and never written again, and
//     a reader that finds an Entry checks its removed flag, so a reader still
//     walking an old table sees nothing that is gone.
type table[V any] struct {
	groups []group[V]
	mask   uint64 // len(groups) - 1
}

const groupSize = 8

type group[V any] struct {
	ctrl  atomic.Uint64 // byte i describes slots[i]
	slots [groupSize]atomic.Pointer[Entry[V]]
}

// Control bytes: a full slot holds its key's tag, which has the top bit set.
const (
	ctrlEmpty   = 0x00
	ctrlDeleted = 0x01
	tagBit      = 0x80

	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

func newTable[V any](slots int) *table[V] {
	n := max(1, slots/groupSize)
	n = 1 << bits.Len(uint(n-1)) // round up to a power of two
	return &table[V]{groups: make([]group[V], n), mask: uint64(n - 1)}
}

func (t *table[V]) capacity() int { return len(t.groups) * groupSize }

// tagOf returns the control byte of a full slot for hash h.
func tagOf(h uint64) uint8 { return uint8(h&0x7f) | tagBit }

// groupOf returns the first group of h's probe sequence. The low 7 bits are
// the tag and the top bits pick the shard, so it uses the bits in between.
func (t *table[V]) groupOf(h uint64) uint64 { return (h >> 7) & t.mask }

// matchByte returns a word with the top bit set in each byte of ctrl that
// may equal b. It can report a byte above a true match falsely; callers
// confirm every match by comparing keys.
func matchByte(ctrl uint64, b uint8) uint64 {
	x := ctrl ^ (lsbs * uint64(b))
	return (x - lsbs) &^ x & msbs
}

// hasEmpty reports whether any control byte of ctrl is ctrlEmpty. Full bytes
// have the top bit set and deleted bytes are 0x01, so the zero-byte test is
// exact here.
func hasEmpty(ctrl uint64) bool { return (ctrl-lsbs)&^ctrl&msbs != 0 }

// lookup returns the live-or-removed Entry for key, or nil. It takes no lock.
func (t *table[V]) lookup(key string, h uint64) *Entry[V] {
	tag := tagOf(h)
	for i := t.groupOf(h); ; i = (i + 1) & t.mask {
		g := &t.groups[i]
		ctrl := g.ctrl.Load()
		for m := matchByte(ctrl, tag); m != 0; m &= m - 1 {
			e := g.slots[bits.TrailingZeros64(m)/8].Load()
			if e != nil && e.key == key {
				return e
			}
		}
		if hasEmpty(ctrl) {
			return nil
		}
	}
}

// slotOf returns the group and slot that hold e, which must be in t. The
// caller holds the shard lock.
func (t *table[V]) slotOf(e *Entry[V], h uint64) (*group[V], int) {
	tag := tagOf(h)
	for i := t.groupOf(h); ; i = (i + 1) & t.mask {
		g := &t.groups[i]
		ctrl := g.ctrl.Load()
		for m := matchByte(ctrl, tag); m != 0; m &= m - 1 {
			j := bits.TrailingZeros64(m) / 8
			if g.slots[j].Load() == e {
				return g, j
			}
		}
		if hasEmpty(ctrl) {
			return nil, 0
		}
	}
}

// put stores e, whose key is not in t, in the first empty or deleted slot of
// its probe sequence. It reports whether it used an empty slot (rather than
// reusing a deleted one). The caller holds the shard lock and has made sure
// that t has room.
func (t *table[V]) put(e *Entry[V], h uint64) (usedEmpty bool) {
	for i := t.groupOf(h); ; i = (i + 1) & t.mask {
		g := &t.groups[i]
		ctrl := g.ctrl.Load()
		free := matchByte(ctrl, ctrlEmpty) | matchByte(ctrl, ctrlDeleted)
		if free == 0 {
			continue
		}
		// matchByte may flag a byte above a true match; take the lowest,
		// which is always true, and check it anyway.
		j := bits.TrailingZeros64(free) / 8
		old := uint8(ctrl >> (8 * j))
		if old != ctrlEmpty && old != ctrlDeleted {
			panic("shard: corrupt control word")
		}
		g.slots[j].Store(e)
		g.ctrl.Store(setByte(ctrl, j, tagOf(h)))
		return old == ctrlEmpty
	}
}

// clear empties slot j of g. It reports whether the slot became empty (rather
// than deleted, which it must stay when the group has no empty byte: a probe
// may have passed through this group to a key further on). The caller holds
// the shard lock.
func (g *group[V]) clear(j int) (becameEmpty bool) {
	ctrl := g.ctrl.Load()
	b := uint8(ctrlDeleted)
	if hasEmpty(ctrl) {
		b = ctrlEmpty
	}
	g.ctrl.Store(setByte(ctrl, j, b))
	g.slots[j].Store(nil)
	return b == ctrlEmpty
}

func setByte(w uint64, i int, b uint8) uint64 {
	shift := 8 * uint(i)
	return w&^(0xff<<shift) | uint64(b)<<shift
}

// each calls f for every Entry in t, removed or not, until f returns false.
func (t *table[V]) each(f func(*Entry[V]) bool) {
	for i := range t.groups {
		g := &t.groups[i]
		for j := range g.slots {
			if e := g.slots[j].Load(); e != nil && !f(e) {
				return
			}
		}
	}
}
