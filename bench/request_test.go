package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// BenchmarkRequest measures a GET on loopback through Session.Get against
// the same GET through a plain http.Client, keep-alive on both, server in
// the same process (or, with -server-process, in a child process; cpu-ns/op
// is then the client's CPU alone):
//
//   - impl=plain: http.Client with a transport of its own and Go's default
//     headers;
//   - impl=plain+headers: the same, sending the preset's browser headers,
//     set by hand on each request: what a program would send to look like
//     the same browser without roster; the fair reference for roster's own
//     cost;
//   - impl=roster: Session.Get on a session with the default preset.
//
// Sending fifteen more headers costs both sides (the server is in the same
// process), so plain and plain+headers bracket roster.
func BenchmarkRequest(b *testing.B) {
	var srvURL string
	if *serverProcess {
		url, _, stop := startServerProcess(b, "plain")
		defer stop()
		srvURL = url
	} else {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
		}))
		defer srv.Close()
		srvURL = srv.URL
	}
	p, err := preset.Lookup(protocol.DefaultPreset)
	if err != nil {
		b.Fatal(err)
	}
	drain := func(b *testing.B, resp *http.Response, err error) {
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ctx := context.Background()
	impls := []struct {
		name string
		run  func(b *testing.B)
	}{
		{"plain", func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			cpu, ok := processCPU()
			defer func() { cpuPerOp(b, cpu, ok) }()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srvURL, nil)
				resp, err := c.Do(req)
				drain(b, resp, err)
			}
		}},
		{"plain+headers", func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			cpu, ok := processCPU()
			defer func() { cpuPerOp(b, cpu, ok) }()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srvURL, nil)
				p.Apply(req.Header)
				resp, err := c.Do(req)
				drain(b, resp, err)
			}
		}},
		{"roster", func(b *testing.B) {
			m := session.NewManager()
			defer m.Shutdown()
			id, err := m.CreateSession(nil)
			if err != nil {
				b.Fatal(err)
			}
			s, _ := m.GetSession(id)
			b.ReportAllocs()
			cpu, ok := processCPU()
			defer func() { cpuPerOp(b, cpu, ok) }()
			for b.Loop() {
				resp, err := s.Get(ctx, srvURL)
				drain(b, resp, err)
			}
		}},
	}
	k := *round % len(impls)
	for _, impl := range append(impls[k:], impls[:k]...) {
		b.Run("impl="+impl.name, impl.run)
	}
}
