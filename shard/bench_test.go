package shard

import (
	"math/rand/v2"
	"testing"
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
