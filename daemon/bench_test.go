package daemon_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/rosterhq/roster/daemon"
)

// BenchmarkProxyRequest is the cost of one plain-http GET with a 1 KiB or
// 64 KiB answer, through rosterd (one session) and directly, all in this process:
// the difference between the two is what the proxy adds. Each op is one
// request from a keep-alive client; allocations count client, proxy and
// upstream together, so read the proxy's share as proxy minus direct.
//
//	go test -run '^$' -bench BenchmarkProxyRequest -benchmem -count 6 ./daemon
func BenchmarkProxyRequest(b *testing.B) {
	small, large := bytes.Repeat([]byte("x"), 1<<10), bytes.Repeat([]byte("x"), 64<<10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Path == "/64k" {
			_, _ = w.Write(large)
			return
		}
		_, _ = w.Write(small)
	}))
	defer up.Close()
	srv, err := daemon.New(daemon.Options{Token: "bench-token-0123456789", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(b.Context())
	ds := httptest.NewServer(srv)
	defer ds.Close()
	id, err := srv.Manager().CreateSession(nil)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, tr *http.Transport, body []byte) {
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		path := "/"
		if len(body) == len(large) {
			path = "/64k"
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			resp, err := c.Get(up.URL + path)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
				b.Fatalf("%d, %d bytes", resp.StatusCode, n)
			}
		}
	}
	pu := &url.URL{Scheme: "http", Host: ds.Listener.Addr().String(), User: url.UserPassword(id, "bench-token-0123456789")}
	for _, body := range [][]byte{small, large} {
		size := fmt.Sprintf("body=%dKiB", len(body)>>10)
		b.Run(size+"/via=direct", func(b *testing.B) { run(b, &http.Transport{}, body) })
		b.Run(size+"/via=rosterd", func(b *testing.B) { run(b, &http.Transport{Proxy: http.ProxyURL(pu)}, body) })
	}
}
