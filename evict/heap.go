package evict

// Item is one element of a Heap: a value and the stamp it is ordered by.
type Item[E any] struct {
	At    int64
	Value E
}

// Heap is a binary min-heap of Items ordered by At. The zero Heap is empty
// and ready to use. It is not safe for concurrent use: a shard guards its
// heap with its lock.
//
// Besides the usual operations it lets the sweeper raise the key of any item
// in place and restore the order afterwards in one O(n) pass (Init), which is
// cheaper than n sift-downs when most items are stale at once.
type Heap[E comparable] struct {
	items []Item[E]
}

// Len returns the number of items.
func (h *Heap[E]) Len() int { return len(h.items) }

// Push adds v with key at.
func (h *Heap[E]) Push(at int64, v E) {
	h.items = append(h.items, Item[E]{At: at, Value: v})
	h.up(len(h.items) - 1)
}

// Min returns the item with the smallest key. It panics if the heap is empty.
func (h *Heap[E]) Min() Item[E] { return h.items[0] }

// SetMin gives the minimum item the key at, which must not be smaller than
// its current key, and restores the order.
func (h *Heap[E]) SetMin(at int64) {
	h.items[0].At = at
	h.down(0)
}

// PopMin removes the minimum item.
func (h *Heap[E]) PopMin() {
	h.RemoveAt(0)
	if len(h.items) > 1 {
		h.down(0)
	}
}

// At returns the i-th item in storage order.
func (h *Heap[E]) At(i int) Item[E] { return h.items[i] }

// SetAt changes the key of the i-th item without restoring the order; call
// Init before relying on the order again.
func (h *Heap[E]) SetAt(i int, at int64) { h.items[i].At = at }

// RemoveAt removes the i-th item by moving the last item into its place,
// without restoring the order; call Init before relying on the order again.
// A heap that has shrunk to an eighth of its capacity gives half of it back.
func (h *Heap[E]) RemoveAt(i int) {
	last := len(h.items) - 1
	h.items[i] = h.items[last]
	var zero Item[E]
	h.items[last] = zero // drop the reference for the garbage collector
	h.items = h.items[:last]
	if c := cap(h.items); c > 1024 && last < c/8 {
		h.items = append(make([]Item[E], 0, c/2), h.items...)
	}
}

// Init restores the heap order in O(n).
func (h *Heap[E]) Init() {
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// Filter keeps only the items for which keep returns true, restores the order
// and gives back memory when the heap has shrunk to a quarter of its capacity.
func (h *Heap[E]) Filter(keep func(E) bool) {
	n := 0
	for _, it := range h.items {
		if keep(it.Value) {
			h.items[n] = it
			n++
		}
	}
	clear(h.items[n:])
	h.items = h.items[:n]
	if cap(h.items) > 64 && n < cap(h.items)/4 {
		h.items = append(make([]Item[E], 0, 2*n), h.items...)
	}
	h.Init()
}

// RemoveNearEnd removes v if it is among the last n items in storage order,
// and reports whether it did. A value pushed recently is usually there (a
// push moves an item up only past older, smaller keys), so this lets a
// short-lived value leave at once instead of waiting to be filtered out.
func (h *Heap[E]) RemoveNearEnd(v E, n int) bool {
	for i := len(h.items) - 1; i >= 0 && i >= len(h.items)-n; i-- {
		if h.items[i].Value != v {
			continue
		}
		last := len(h.items) - 1
		h.RemoveAt(i)
		if i < last { // the former last item now sits at i: put it in order
			h.up(i)
			h.down(i)
		}
		return true
	}
	return false
}

// Reset empties the heap and releases its storage.
func (h *Heap[E]) Reset() { h.items = nil }

func (h *Heap[E]) up(i int) {
	it := h.items[i]
	for i > 0 {
		p := (i - 1) / 2
		if h.items[p].At <= it.At {
			break
		}
		h.items[i] = h.items[p]
		i = p
	}
	h.items[i] = it
}

func (h *Heap[E]) down(i int) {
	n := len(h.items)
	it := h.items[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h.items[r].At < h.items[c].At {
			c = r
		}
		if it.At <= h.items[c].At {
			break
		}
		h.items[i] = h.items[c]
		i = c
	}
	h.items[i] = it
}
