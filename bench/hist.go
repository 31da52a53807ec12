package bench

import (
	"math/bits"
	"time"
)

// histSub is the number of sub-buckets per power of two: values are
// recorded with a relative error under 1/histSub (about 3%).
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = 2*histSub + 58*histSub
)

// Histogram records durations in log-linear buckets, and their count, sum,
// maximum, and the sum of those above a threshold, exactly. The zero value
// is ready to use; it is not safe for concurrent use (each reader keeps its
// own and they are merged).
type Histogram struct {
	counts    [histBuckets]uint64
	n         uint64
	sum       time.Duration
	max       time.Duration
	slowOver  time.Duration
	slowSum   time.Duration
	slowCount uint64
}

// NewHistogram returns a Histogram that sums the durations over slow.
func NewHistogram(slow time.Duration) *Histogram { return &Histogram{slowOver: slow} }

func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return 2*histSub + (shift-1)*histSub + int(v>>shift) - histSub
}

// histLow returns the smallest value recorded in bucket i.
func histLow(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := (i-2*histSub)/histSub + 1
	return uint64(histSub+(i-2*histSub)%histSub) << shift
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[min(histIndex(uint64(d)), histBuckets-1)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
	if h.slowOver > 0 && d > h.slowOver {
		h.slowSum += d
		h.slowCount++
	}
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
	h.slowSum += o.slowSum
	h.slowCount += o.slowCount
}

// Count returns the number of records.
func (h *Histogram) Count() uint64 { return h.n }

// Mean returns the mean duration.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Max returns the largest duration recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Slow returns the count and the sum of the durations over the threshold.
func (h *Histogram) Slow() (uint64, time.Duration) { return h.slowCount, h.slowSum }

// Quantile returns the q-quantile (0 < q <= 1), as the midpoint of its
// bucket, never above Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo := histLow(i)
			hi := lo
			if i+1 < histBuckets {
				hi = histLow(i+1) - 1
			}
			return min(time.Duration((lo+hi)/2), h.max)
		}
	}
	return h.max
}
