package shard

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// BenchmarkGet looks up uniformly random keys of 100k from all goroutines.
func BenchmarkGet(b *testing.B) {
	m := New[int](0)
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = key(i)
		_ = m.Insert(NewEntry(keys[i], i, 0))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		now := int64(1)
		for pb.Next() {
			if _, ok := m.Get(keys[r.IntN(n)], now); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkSweepIdle is a sweep of 1M entries of which none has expired:
// it looks at one heap minimum per shard.
func BenchmarkSweepIdle(b *testing.B) {
	m := New[int](0)
	for i := range 1_000_000 {
		_ = m.Insert(NewEntry(key(i), i, int64(1000+i)))
	}
	b.ResetTimer()
	for b.Loop() {
		m.Sweep(2000, 500, nil, func(int) {})
	}
}

// BenchmarkSweepLockHold is the worst case of the lazy heap: a sweep of 1M
// entries every one of which was used since the heap recorded it, so each
// looks expired until looked at, which sends every shard down the bulk
// path. It runs the sweep step by step, as Sweep does, and reports the
// longest single hold of a shard lock; ns/op is the whole pass.
func BenchmarkSweepLockHold(b *testing.B) {
	const n = 1_000_000
	var longest time.Duration
	for b.Loop() {
		b.StopTimer()
		m := New[int](0)
		for i := range n {
			_ = m.Insert(NewEntry(key(i), i, 100))
		}
		for i := range n {
			m.Get(key(i), 200)
		}
		runtime.GC()
		b.StartTimer()
		var victims []int
		for i := range m.shards {
			s := &m.shards[i]
			sw := sweep[int]{m: m, s: s, now: 250, cutoff: 150}
			for !sw.done {
				s.mu.Lock()
				t := time.Now()
				if sw.bulk {
					victims = sw.bulkStep(victims)
				} else {
					victims = sw.heapStep(victims)
				}
				longest = max(longest, time.Since(t))
				s.mu.Unlock()
			}
		}
		if len(victims) != 0 {
			b.Fatalf("evicted %d", len(victims))
		}
	}
	b.ReportMetric(float64(longest.Microseconds()), "max-hold-µs")
}
