package shard

// sweepBatch bounds the heap operations done under one hold of a shard lock,
// and bulkBatch the items looked at in bulk mode: each costs well under a
// microsecond, so no sweep holds a shard lock for long, whatever the shard
// size, except for the one O(n) heap rebuild at the end of a bulk pass.
const (
	sweepBatch = 256
	bulkBatch  = 1024
)

// Sweep removes every entry whose last use is earlier than cutoff and that
// busy (if not nil) does not report as in use, and returns how many it
// removed. An entry that busy reports as in use is treated as used at now.
// Once the pass over all shards is done and no lock is held, Sweep calls
// evicted with each removed value, so a slow evicted delays neither Gets nor
// the sweep of other shards. The passes of concurrent calls run one after
// the other; their evicted calls may overlap.
//
// Per shard, Sweep looks at the heap minimum and stops at the first entry
// whose recorded stamp is not before cutoff, so its cost grows with the
// number of entries that expired or were used since they were recorded, not
// with the size of the map. When many entries were used since (every one,
// in the worst case), it switches to one linear pass over the heap followed
// by an O(n) rebuild, which costs less than a sift-down per entry. Either
// way it releases the shard lock every few hundred entries.
func (m *Map[V]) Sweep(now, cutoff int64, busy func(V) bool, evicted func(V)) int {
	victims := m.collect(now, cutoff, busy)
	for _, v := range victims {
		evicted(v)
	}
	return len(victims)
}

func (m *Map[V]) collect(now, cutoff int64, busy func(V) bool) []V {
	m.sweepMu.Lock()
	defer m.sweepMu.Unlock()
	var victims []V
	for i := range m.shards {
		s := &m.shards[i]
		sw := sweep[V]{m: m, s: s, now: now, cutoff: cutoff, busy: busy}
		for !sw.done {
			s.mu.Lock()
			if sw.bulk {
				victims = sw.bulkStep(victims)
			} else {
				victims = sw.heapStep(victims)
			}
			s.mu.Unlock()
		}
	}
	return victims
}

// sweep is the state of one Sweep over one shard across its lock holds.
type sweep[V any] struct {
	m           *Map[V]
	s           *shard[V]
	now, cutoff int64
	busy        func(V) bool
	refreshed   int  // entries re-recorded in heap mode
	bulk        bool // doing a linear pass instead
	next        int  // bulk mode: the next heap index to look at
	done        bool
}

// heapStep does up to sweepBatch operations at the heap minimum.
func (w *sweep[V]) heapStep(victims []V) []V {
	s := w.s
	for range sweepBatch {
		if s.heap.Len() == 0 {
			w.done = true
			return victims
		}
		top := s.heap.Min()
		if top.At >= w.cutoff {
			w.done = true
			return victims
		}
		e := top.Value
		st := e.stamp.Load()
		switch {
		case st&removedBit != 0: // closed by its owner: drop it now
			s.heap.PopMin()
			s.removed--
		case st > top.At: // used since it was recorded
			w.refreshed++
			if w.refreshed > max(sweepBatch, s.heap.Len()/8) {
				w.bulk = true
				return victims
			}
			s.heap.SetMin(st)
		case w.busy != nil && w.busy(e.value):
			s.heap.SetMin(w.now)
		case e.stamp.CompareAndSwap(st, st|removedBit):
			s.heap.PopMin()
			s.unlink(e, w.m.hash(e.key), w.m.seed)
			victims = append(victims, e.value)
		}
		// A failed CAS means a Get touched e just now: look again.
	}
	return victims
}

// bulkStep looks at up to bulkBatch heap items in storage order, settling
// each expired-looking one at once, and rebuilds the heap after the last.
// Between steps the lock is released and the heap order is broken; writers
// may push meanwhile, which at worst makes this pass miss an item, which the
// next sweep sees.
func (w *sweep[V]) bulkStep(victims []V) []V {
	s := w.s
	for range bulkBatch {
		if w.next >= s.heap.Len() {
			s.heap.Init()
			w.bulk = false // finish in heap mode: nothing expired is left
			w.refreshed = 0
			return victims
		}
		it := s.heap.At(w.next)
		if it.At >= w.cutoff {
			w.next++
			continue
		}
		e := it.Value
		st := e.stamp.Load()
		switch {
		case st&removedBit != 0:
			s.heap.RemoveAt(w.next)
			s.removed--
		case st >= w.cutoff:
			s.heap.SetAt(w.next, st)
			w.next++
		case w.busy != nil && w.busy(e.value):
			s.heap.SetAt(w.next, w.now)
			w.next++
		case e.stamp.CompareAndSwap(st, st|removedBit):
			s.heap.RemoveAt(w.next)
			s.unlink(e, w.m.hash(e.key), w.m.seed)
			victims = append(victims, e.value)
		}
		// RemoveAt moved the last item to w.next, and a failed CAS means a
		// Get touched e just now: either way, look at w.next again.
	}
	return victims
}
