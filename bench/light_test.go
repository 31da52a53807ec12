package bench

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/rosterhq/roster/idgen"
)

// getSessions is the registry size of BenchmarkGet.
const getSessions = 100_000

// BenchmarkGet measures Get throughput: uniform random keys over 100k
// registered IDs, from GOMAXPROCS goroutines. Each contender is built once
// and reused by the framework's calls with growing b.N.
func BenchmarkGet(b *testing.B) {
	ks := keys(getSessions)
	benchGets(b, ks, ks, true)
}

// BenchmarkGetMiss measures Gets of IDs that are not registered: the same
// 100k registered IDs as BenchmarkGet, looked up with 100k other IDs of the
// same shape, from GOMAXPROCS goroutines. A registry sees misses for
// sessions that were closed or evicted, and from clients that guess.
func BenchmarkGetMiss(b *testing.B) {
	all := keys(2 * getSessions)
	benchGets(b, all[:getSessions], all[getSessions:], false)
}

// benchGets registers ks in each contender, once, and measures Gets of
// random IDs from lookup, each of which must hit (or miss) as want says.
func benchGets(b *testing.B, ks, lookup []string, want bool) {
	for _, c := range rotate(Contenders) {
		var r Registry
		b.Run("impl="+c.Name, func(b *testing.B) {
			if r == nil {
				r = c.New(Config{Cap: 2 * getSessions})
				for _, k := range ks {
					if err := r.Create(k); err != nil {
						b.Fatalf("Create: %v", err)
					}
				}
			}
			var seed atomic.Uint64
			var wrong atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				x := newRNG(seed.Add(1))
				n := 0
				for pb.Next() {
					if r.Get(lookup[x.intn(len(lookup))]) != want {
						n++
					}
				}
				wrong.Add(int64(n))
			})
			if n := wrong.Load(); n > 0 {
				b.Errorf("%d Gets answered %v, want %v", n, !want, want)
			}
		})
		if r != nil {
			r.Close()
		}
	}
}

// Churn: a registry near its cap, each op creates one session and closes
// one created churnWindow ops earlier by the same goroutine.
const (
	churnCap     = 100_000
	churnPrefill = churnCap - 1_000
	churnWindow  = 64
	churnWorkers = 64 // most goroutines served disjoint keys
	churnKeys    = 1 << 20
)

// BenchmarkChurn measures create+close pairs against a cap: the registry
// holds churnPrefill sessions under a cap of churnCap, and each op creates
// a session and closes one. ns/op is per pair; pairs/s is its inverse.
func BenchmarkChurn(b *testing.B) {
	ks := keys(churnKeys)
	per := (len(ks) - churnPrefill) / churnWorkers
	for _, c := range rotate(Contenders) {
		var r Registry
		b.Run("impl="+c.Name, func(b *testing.B) {
			if r == nil {
				r = c.New(Config{Cap: churnCap})
				for _, k := range ks[:churnPrefill] {
					if err := r.Create(k); err != nil {
						b.Fatalf("Create: %v", err)
					}
				}
			}
			var worker, fails atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := int(worker.Add(1)-1) % churnWorkers
				mine := ks[churnPrefill+w*per : churnPrefill+(w+1)*per]
				i, fail := 0, 0
				for pb.Next() {
					if r.Create(mine[i%per]) != nil {
						fail++
					}
					if i >= churnWindow {
						r.Delete(mine[(i-churnWindow)%per])
					}
					i++
				}
				for j := max(0, i-churnWindow); j < i; j++ {
					r.Delete(mine[j%per])
				}
				fails.Add(int64(fail))
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			b.ReportMetric(float64(fails.Load())/float64(b.N), "fails/op")
		})
		if r != nil {
			r.Close()
		}
	}
}

var idSink atomic.Pointer[string]

// BenchmarkNewID compares roster's idgen.New with ulid.Make and 16 bytes
// of crypto/rand in hex, all returning a string.
func BenchmarkNewID(b *testing.B) {
	impls := []struct {
		name string
		f    func() string
	}{
		{"roster", idgen.New},
		{"ulid.Make", func() string { return ulid.Make().String() }},
		{"randhex", func() string {
			var r [16]byte
			_, _ = rand.Read(r[:])
			return hex.EncodeToString(r[:])
		}},
	}
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var s string
				for pb.Next() {
					s = impl.f()
				}
				idSink.Store(&s)
			})
		})
	}
}
