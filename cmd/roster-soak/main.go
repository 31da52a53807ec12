// Command roster-soak runs a Manager under a bounded, mixed load and checks
// that nothing leaks: many goroutines create sessions, use them for real
// requests against a local go-httpbin, close some and let others expire,
// while an observer checks the cap. At the end the counters must add up
// (created = closed + evicted + active), the goroutine count must be back to
// its baseline and the heap after GC must not have grown. It prints one
// summary line and exits 1 if a check failed.
//
//	roster-soak -duration 60s -workers 32
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/rosterhq/roster"
)

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "how long to run")
	flag.IntVar(&c.workers, "workers", 32, "concurrent workers")
	flag.IntVar(&c.maxSessions, "max-sessions", 200, "the Manager's cap")
	flag.DurationVar(&c.timeout, "session-timeout", 300*time.Millisecond, "idle timeout, short so that eviction happens")
	flag.Parse()
	res, err := soak(c)
	fmt.Println(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "roster-soak:", err)
		os.Exit(1)
	}
}

type config struct {
	duration    time.Duration
	workers     int
	maxSessions int
	timeout     time.Duration
}

type result struct {
	cfg                      config
	creates, requests        int64
	stats                    roster.ManagerStats
	maxSeen                  int
	goroutines0, goroutines1 int
	heap0, heap1             uint64
	ok                       bool
}

func (r result) String() string {
	verdict := "FAIL"
	if r.ok {
		verdict = "OK"
	}
	return fmt.Sprintf("soak %s: %v, %d workers, cap %d: %d creates, %d requests (%.0f/s), %d closed, %d evicted, %d rejected, max count %d, goroutines %d->%d, heap %.1f->%.1f MiB",
		verdict, r.cfg.duration, r.cfg.workers, r.cfg.maxSessions, r.creates, r.requests,
		float64(r.requests)/r.cfg.duration.Seconds(), r.stats.Closed, r.stats.Evicted, r.stats.Rejected,
		r.maxSeen, r.goroutines0, r.goroutines1, float64(r.heap0)/(1<<20), float64(r.heap1)/(1<<20))
}

func soak(c config) (result, error) {
	res := result{cfg: c}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: httpbin.New(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	res.goroutines0 = runtime.NumGoroutine()
	m := roster.NewManager(roster.WithMaxSessions(c.maxSessions), roster.WithSessionTimeout(c.timeout),
		roster.WithCleanupInterval(c.timeout/4))

	var (
		mu       sync.Mutex
		ids      []string
		creates  atomic.Int64
		requests atomic.Int64
		maxSeen  atomic.Int64
		failure  atomic.Pointer[error]
	)
	fail := func(err error) { failure.CompareAndSwap(nil, &err) }
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() { // the observer
		for ctx.Err() == nil {
			n := m.SessionCount()
			if n > m.MaxSessions() {
				fail(fmt.Errorf("SessionCount %d above the cap %d", n, m.MaxSessions()))
			}
			for old := maxSeen.Load(); int64(n) > old && !maxSeen.CompareAndSwap(old, int64(n)); old = maxSeen.Load() {
			}
			time.Sleep(time.Millisecond)
		}
	})
	var heapWarm atomic.Uint64
	wg.Go(func() { // a heap reading once the load is warm
		select {
		case <-time.After(c.duration / 5):
			heapWarm.Store(heapAfterGC())
		case <-ctx.Done():
		}
	})
	for w := range c.workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				switch op := r.IntN(10); {
				case op < 3: // create
					id, err := m.CreateSession(&roster.SessionConfig{BaseURL: base})
					switch {
					case err == nil:
						creates.Add(1)
						mu.Lock()
						ids = append(ids, id)
						mu.Unlock()
					case errors.Is(err, roster.ErrMaxSessions):
					default:
						fail(fmt.Errorf("create: %w", err))
					}
				default: // use or close a session some worker made
					mu.Lock()
					if len(ids) == 0 {
						mu.Unlock()
						continue
					}
					i := r.IntN(len(ids))
					id := ids[i]
					if op == 9 { // forget it: it will be closed or left to expire
						ids[i] = ids[len(ids)-1]
						ids = ids[:len(ids)-1]
					}
					mu.Unlock()
					if op == 9 && r.IntN(2) == 0 {
						if err := m.CloseSession(id); err != nil && !errors.Is(err, roster.ErrSessionNotFound) {
							fail(fmt.Errorf("close: %w", err))
						}
						continue
					}
					s, err := m.GetSession(id)
					if errors.Is(err, roster.ErrSessionNotFound) {
						continue // evicted
					}
					if err != nil {
						fail(fmt.Errorf("get: %w", err))
						continue
					}
					path := []string{"/get", "/cookies/set?k=v", "/cookies", "/bytes/2048"}[r.IntN(4)]
					resp, err := s.Get(context.Background(), path)
					if errors.Is(err, roster.ErrSessionClosed) {
						continue // evicted or closed under the request
					}
					if err != nil {
						fail(fmt.Errorf("GET %s: %w", path, err))
						continue
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil && !errors.Is(err, roster.ErrSessionClosed) {
						fail(fmt.Errorf("GET %s body: %w", path, err))
					}
					requests.Add(1)
				}
			}
		})
	}
	wg.Wait()
	m.Shutdown()
	srv.Close()

	res.creates, res.requests, res.maxSeen = creates.Load(), requests.Load(), int(maxSeen.Load())
	res.stats = m.Stats()
	res.heap0 = heapWarm.Load()
	res.heap1 = heapAfterGC()
	// Goroutines of closed connections need a moment to see the close.
	deadline := time.Now().Add(5 * time.Second)
	for res.goroutines1 = runtime.NumGoroutine(); res.goroutines1 > res.goroutines0 && time.Now().Before(deadline); res.goroutines1 = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}

	var errs []error
	if p := failure.Load(); p != nil {
		errs = append(errs, *p)
	}
	st := res.stats
	if st.Active != 0 || st.Created != st.Closed+st.Evicted || st.Created != res.creates || st.InFlight != 0 {
		errs = append(errs, fmt.Errorf("counters do not add up: %+v with %d creates", st, res.creates))
	}
	if res.goroutines1 > res.goroutines0 {
		buf := make([]byte, 1<<20)
		errs = append(errs, fmt.Errorf("%d goroutines left over the baseline of %d:\n%s",
			res.goroutines1-res.goroutines0, res.goroutines0, buf[:runtime.Stack(buf, true)]))
	}
	// Everything is closed now: the heap must be back under its warm level
	// (plus slack for the runtime's own caches).
	if res.heap0 > 0 && res.heap1 > res.heap0+4<<20 {
		errs = append(errs, fmt.Errorf("heap grew from %d to %d bytes", res.heap0, res.heap1))
	}
	res.ok = len(errs) == 0
	return res, errors.Join(errs...)
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
