package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// BenchmarkHTTPS compares one small https GET (1 KiB body, HTTP/2 where
// the client can) by way of: a Go client straight to the server (direct),
// the session's own Do (session), a Go client through rosterd's plain
// CONNECT tunnel (interceptTunnel), and through rosterd with interception
// (intercept), with connections kept alive (keepalive) or a new client
// connection per request (newconn: a CONNECT and a handshake each time).
// It reports requests/s and the 99th percentile latency.
func BenchmarkHTTPS(b *testing.B) {
	body := make([]byte, 1<<10)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(body)
	}))
	backend.Config.ErrorLog = quietLog
	backend.EnableHTTP2 = true
	backend.StartTLS()
	defer backend.Close()
	backendPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: backend.Certificate().Raw}))
	_, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	origin := "https://example.com:" + port + "/"

	ca, _, err := daemon.LoadOrCreateCA(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := daemon.New(daemon.Options{
		Token:          token,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ManagerOptions: []session.Option{session.WithCleanupInterval(0)},
		Intercept:      &daemon.InterceptOptions{CA: ca},
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = quietLog
	ts.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	}()
	cfg := func(intercept bool) *protocol.SessionConfig {
		c := &protocol.SessionConfig{CACerts: backendPEM, Intercept: &intercept,
			ConnectTo: map[string]string{"example.com:" + port: backend.Listener.Addr().String()}}
		return c
	}
	create := func(c *protocol.SessionConfig) string {
		id, err := srv.Manager().CreateSession(c)
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	interceptID, tunnelID := create(cfg(true)), create(cfg(false))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	roots.AddCert(backend.Certificate())

	goClient := func(id string, keepAlive bool) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true,
			DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64}
		if id == "" {
			// Straight to the server, by its name.
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, backend.Listener.Addr().String())
			}
		} else {
			tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: ts.Listener.Addr().String(), User: url.UserPassword(id, token)})
		}
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	sess, err := srv.Manager().GetSession(create(cfg(true)))
	if err != nil {
		b.Fatal(err)
	}

	for _, conn := range []string{"keepalive", "newconn"} {
		keep := conn == "keepalive"
		for _, mode := range []struct {
			name string
			c    *http.Client
		}{
			{"direct", goClient("", keep)},
			{"session", sess.Client()},
			{"tunnel", goClient(tunnelID, keep)},
			{"intercept", goClient(interceptID, keep)},
		} {
			if mode.name == "session" && !keep {
				continue // the session keeps its connections
			}
			b.Run(conn+"/"+mode.name, func(b *testing.B) {
				benchGets(b, mode.c, origin)
				mode.c.CloseIdleConnections()
			})
		}
	}
}

func benchGets(b *testing.B, c *http.Client, target string) {
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.SetParallelism(4) // 4 × GOMAXPROCS clients
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			resp, err := c.Get(target)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}
