package session

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
)

// BenchmarkGetSession looks up uniformly random IDs among 100k sessions from
// every goroutine.
func BenchmarkGetSession(b *testing.B) {
	m := NewManager(WithMaxSessions(0), WithSessionTimeout(0))
	defer m.Shutdown()
	const n = 100_000
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
}

// BenchmarkIdleSession reports the heap an idle, never-used session costs,
// registry entry included.
func BenchmarkIdleSession(b *testing.B) {
	const n = 10_000
	var total float64
	for b.Loop() {
		m := NewManager(WithMaxSessions(0), WithSessionTimeout(0))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range n {
			if _, err := m.CreateSession(nil); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		total += float64(after.HeapAlloc-before.HeapAlloc) / n
		m.Shutdown()
	}
	b.ReportMetric(total/float64(b.N), "bytes/session")
}

// BenchmarkRequest compares a GET through Session.Get with the same GET
// through a plain http.Client, both on loopback with keep-alive.
func BenchmarkRequest(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	drain := func(resp *http.Response, err error) {
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.Run("client=plain", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			drain(c.Do(req))
		}
	})
	// The same request with the preset's headers set by hand: what a
	// program would send to look like the same browser without roster.
	b.Run("client=plain+headers", func(b *testing.B) {
		p, err := preset.Lookup(protocol.DefaultPreset)
		if err != nil {
			b.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			p.Apply(req.Header)
			drain(c.Do(req))
		}
	})
	// Go's stack with the same headers: the session layer alone.
	b.Run("client=session-go", func(b *testing.B) {
		p, err := preset.Lookup(protocol.DefaultPreset)
		if err != nil {
			b.Fatal(err)
		}
		hdrs := map[string]string{}
		for _, h := range p.Headers {
			hdrs[h.Name] = h.Value
		}
		m := NewManager()
		defer m.Shutdown()
		id, err := m.CreateSession(&protocol.SessionConfig{Preset: "go", Headers: hdrs})
		if err != nil {
			b.Fatal(err)
		}
		s, _ := m.GetSession(id)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			drain(s.Get(ctx, srv.URL))
		}
	})
	// The default preset: the browser's header order, through the
	// fingerprinted session's own HTTP/1.1 client (http:// here).
	b.Run("client=session", func(b *testing.B) {
		m := NewManager()
		defer m.Shutdown()
		id, _ := m.CreateSession(nil)
		s, _ := m.GetSession(id)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			drain(s.Get(ctx, srv.URL))
		}
	})
}

// BenchmarkRequestParallel is BenchmarkRequest with 8 goroutines per
// GOMAXPROCS on one client or session, as a worker pool drives one
// identity: the sequential benchmark measures a ping-pong on an otherwise
// idle machine, where the scheduler's wake-ups weigh more than the client.
func BenchmarkRequestParallel(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	p, err := preset.Lookup(protocol.DefaultPreset)
	if err != nil {
		b.Fatal(err)
	}
	hdrs := map[string]string{}
	for _, h := range p.Headers {
		hdrs[h.Name] = h.Value
	}
	plain := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: protocol.DefaultMaxIdleConnsPerHost}}
	defer plain.CloseIdleConnections()
	m := NewManager()
	defer m.Shutdown()
	session := func(cfg *protocol.SessionConfig) func(context.Context, string) (*http.Response, error) {
		id, err := m.CreateSession(cfg)
		if err != nil {
			b.Fatal(err)
		}
		s, _ := m.GetSession(id)
		return s.Get
	}
	for _, c := range []struct {
		name string
		get  func(context.Context, string) (*http.Response, error)
	}{
		{"client=plain+headers", func(ctx context.Context, u string) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			p.Apply(req.Header)
			return plain.Do(req)
		}},
		{"client=session-go", session(&protocol.SessionConfig{Preset: "go", Headers: hdrs})},
		{"client=session", session(nil)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					resp, err := c.get(ctx, srv.URL)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
