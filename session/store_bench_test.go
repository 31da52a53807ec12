package session

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rosterhq/roster/internal/redistest"
	"github.com/rosterhq/roster/store"
	rstore "github.com/rosterhq/roster/store/redis"
)

// benchStore starts a redis-server for b and returns a client and a store.
func benchStore(b *testing.B) (*redistest.Server, goredis.UniversalClient, *rstore.Store) {
	srv := redistest.Start(b)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), PoolSize: 64})
	b.Cleanup(func() { _ = c.Close() })
	st, err := rstore.New(c, rstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return srv, c, st
}

// BenchmarkFleetGetSessionHit is BenchmarkGetSession on 10k sessions, with
// and without a store: a hit must not touch the store.
func BenchmarkFleetGetSessionHit(b *testing.B) {
	for _, withStore := range []bool{false, true} {
		name := "without-store"
		if withStore {
			name = "with-store"
		}
		b.Run(name, func(b *testing.B) {
			opts := []Option{WithMaxSessions(0), WithSessionTimeout(0), WithLogger(quietLogger)}
			if withStore {
				_, _, st := benchStore(b)
				opts = append(opts, WithStore(st))
			}
			m := NewManager(opts...)
			defer m.Shutdown()
			const n = 10_000
			ids := make([]string, n)
			for i := range ids {
				var err error
				if ids[i], err = m.CreateSession(nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 2))
				for pb.Next() {
					if _, err := m.GetSession(ids[r.IntN(n)]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer() // not the deferred Shutdown, which saves every session
		})
	}
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkFleetRestoreOnMiss times a GetSession miss that restores a
// session (with a few cookies) from a loopback Redis: one round trip to
// take the lease and read the state, then the decode.
func BenchmarkFleetRestoreOnMiss(b *testing.B) {
	_, _, st := benchStore(b)
	m := NewManager(WithMaxSessions(0), WithSessionTimeout(0), WithStore(st), WithLogger(quietLogger))
	defer m.Shutdown()
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		id, err := m.CreateSession(nil)
		if err != nil {
			b.Fatal(err)
		}
		s, _ := m.GetSession(id)
		var cs []CookieState
		for j := range 5 {
			c := testCookie[0]
			c.Name = fmt.Sprint("c", j)
			cs = append(cs, c)
		}
		_ = s.SetCookies(cs)
		_ = m.CloseSession(id)
		ids[i] = id
	}
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := ids[i%n]
		t0 := time.Now()
		if _, err := m.GetSession(id); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
		b.StopTimer()
		_ = m.CloseSession(id)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

// BenchmarkFleetCreateWithCap times CreateSession under a fleet cap: one
// round trip carrying the fleet script and the lease script.
func BenchmarkFleetCreateWithCap(b *testing.B) {
	_, _, st := benchStore(b)
	for _, capN := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("fleet-cap-%d", capN), func(b *testing.B) {
			m := NewManager(WithMaxSessions(0), WithSessionTimeout(0), WithStore(st), WithFleetMaxSessions(capN), WithLogger(quietLogger))
			defer m.Shutdown()
			d := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				id, err := m.CreateSession(nil)
				if err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(t0))
				b.StopTimer()
				_ = m.DeleteSession(id)
				b.StartTimer()
			}
			b.StopTimer()
			reportPercentiles(b, d)
		})
	}
}

// BenchmarkFleetRenew100k times one renewal tick for 100k held sessions
// and reports its round trips (pipelines of at most 10,000 leases).
func BenchmarkFleetRenew100k(b *testing.B) {
	_, rc, st := benchStore(b)
	m := NewManager(WithMaxSessions(0), WithSessionTimeout(0), WithStore(st), WithLeaseTTL(time.Hour), WithLogger(quietLogger))
	defer m.Shutdown()
	const n = 100_000
	held := make([]*Session, n)
	var wg sync.WaitGroup
	for g := range 32 { // creates in parallel: each is a round trip
		wg.Go(func() {
			for i := g; i < n; i += 32 {
				id, err := m.CreateSession(nil)
				if err != nil {
					b.Error(err)
					return
				}
				held[i], _ = m.PeekSession(id)
			}
		})
	}
	wg.Wait()
	f := m.c.fleet
	leases := make([]store.Lease, n)
	for i, s := range held {
		leases[i] = f.leaseOf(s)
	}
	// The same leases renewed as on a Cluster: one script call per lease.
	perKey, err := rstore.New(rc, rstore.Options{ClusterSafe: true})
	if err != nil {
		b.Fatal(err)
	}
	var perKeyTook time.Duration
	for range 3 {
		t0 := time.Now()
		ok, err := perKey.Renew(context.Background(), leases, time.Hour)
		perKeyTook += time.Since(t0)
		if err != nil || !ok[n-1] {
			b.Fatalf("cluster-safe renewal: %v", err)
		}
	}
	before := f.ops.Load()
	b.ResetTimer()
	for b.Loop() {
		f.renew(held)
	}
	b.StopTimer()
	info := rc.Info(context.Background(), "memory").Val()
	b.Logf("redis memory with %d held sessions: %s", n, infoField(info, "used_memory_human"))
	b.ReportMetric(float64(f.ops.Load()-before)/float64(b.N), "store-calls/op")
	b.ReportMetric(float64((n+9999)/10000), "round-trips/op")
	b.ReportMetric(float64(perKeyTook.Milliseconds())/3, "ms/tick-cluster-safe")
	if st := m.StoreStats(); st.LeasesLost != 0 {
		b.Fatalf("%d leases lost", st.LeasesLost)
	}
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// BenchmarkFleetBytesPerSession reports what a session costs in Redis
// (MEMORY USAGE of its state, lease and fence keys): a fresh one, and one
// with 20 cookies.
func BenchmarkFleetBytesPerSession(b *testing.B) {
	_, rc, st := benchStore(b)
	m := NewManager(WithMaxSessions(0), WithSessionTimeout(0), WithStore(st), WithLogger(quietLogger))
	defer m.Shutdown()
	ctx := context.Background()
	for _, cookies := range []int{0, 20} {
		b.Run(fmt.Sprintf("cookies-%d", cookies), func(b *testing.B) {
			var total, state int64
			for b.Loop() {
				id, err := m.CreateSession(nil)
				if err != nil {
					b.Fatal(err)
				}
				s, _ := m.GetSession(id)
				var cs []CookieState
				for j := range cookies {
					c := testCookie[0]
					c.Name = fmt.Sprint("cookie", j)
					c.Value = fmt.Sprintf("%032x", rand.Uint64())
					cs = append(cs, c)
				}
				if len(cs) > 0 {
					_ = s.SetCookies(cs)
				}
				_ = m.CloseSession(id)
				// Held again, so that the lease key exists too.
				if _, err := m.GetSession(id); err != nil {
					b.Fatal(err)
				}
				sz := rc.MemoryUsage(ctx, st.StateKey(id)).Val()
				state += sz
				total += sz + rc.MemoryUsage(ctx, st.LeaseKey(id)).Val() + rc.MemoryUsage(ctx, "roster:{"+id+"}:f").Val()
			}
			b.StopTimer()
			b.ReportMetric(float64(total)/float64(b.N), "redis-bytes/session")
			b.ReportMetric(float64(state)/float64(b.N), "state-bytes/session")
		})
	}
}

// BenchmarkFleetGetSessionHitRatio measures hits on two Managers of 10k
// sessions each, one with a store and one without, in alternating chunks
// of 4096 lookups on one goroutine, and reports the median of the
// per-chunk ratios: alternating in small chunks cancels most of the noise
// of a shared machine, which a run of each after the other does not.
func BenchmarkFleetGetSessionHitRatio(b *testing.B) {
	_, _, st := benchStore(b)
	plain := NewManager(WithMaxSessions(0), WithSessionTimeout(0))
	defer plain.Shutdown()
	stored := NewManager(WithMaxSessions(0), WithSessionTimeout(0), WithStore(st), WithLogger(quietLogger))
	defer stored.Shutdown()
	const n, chunk = 10_000, 4096
	var pids, sids [n]string
	for i := range n {
		pids[i], _ = plain.CreateSession(nil)
		var err error
		if sids[i], err = stored.CreateSession(nil); err != nil {
			b.Fatal(err)
		}
	}
	order := make([]int, chunk)
	for i := range order {
		order[i] = rand.IntN(n)
	}
	run := func(m *Manager, ids *[n]string) time.Duration {
		t0 := time.Now()
		for _, i := range order {
			if _, err := m.GetSession(ids[i]); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	var ratios []float64
	var tp, ts time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += 2 * chunk {
		p, s := run(plain, &pids), run(stored, &sids)
		if len(ratios)%2 == 1 { // and the other order, half of the time
			s, p = run(stored, &sids), run(plain, &pids)
		}
		tp, ts = tp+p, ts+s
		ratios = append(ratios, float64(s)/float64(p))
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(float64(tp.Nanoseconds())/float64(len(ratios)*chunk), "ns/hit-without")
	b.ReportMetric(float64(ts.Nanoseconds())/float64(len(ratios)*chunk), "ns/hit-with-store")
	b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
}
