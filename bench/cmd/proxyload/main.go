// Command proxyload measures rosterd's proxy path against a direct client, a
// minimal Go forward proxy and goproxy (github.com/elazarl/goproxy v1.9.3)
// with a tuned transport, on plain-http GETs to a local upstream: req/s,
// p50 and p99 latency, the proxy's CPU per 1k requests (from the proxy
// process's /proc/PID/stat) and new upstream connections per 1k requests.
// `make load` runs it.
//
// Each proxy runs in a child process of its own (this binary, re-executed),
// so that its CPU time is its own; the upstream and the load generator run
// here. Rounds interleave the contenders, each round starting at a
// different one, and the table gives the median of the rounds.
//
// Environment: LOAD_DURATION per cell and contender (default 2s),
// LOAD_ROUNDS (default 3), LOAD_WARMUP (default 300ms), LOAD_CHILD_GOGC
// (GOGC of the proxy processes; default Go's 100). A proxy with a small
// live heap collects garbage more often at the same GOGC, so the minimal
// proxy pays more GC per request than rosterd at the default; a larger
// GOGC evens that out. PROXYLOAD_DEBUG=1 prints each proxy's accepted
// client connections at the end.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/rosterhq/roster/daemon"
)

const token = "proxyload-token-0123456789"

func main() {
	if kind := os.Getenv("PROXYLOAD_CHILD"); kind != "" {
		child(kind)
		return
	}
	if err := parent(); err != nil {
		log.Fatal(err)
	}
}

// ---- the proxies, each in its own process ----

// tunedTransport is the shared upstream transport of the minimal proxy and
// goproxy: an idle pool as large as the highest concurrency measured.
func tunedTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}
}

// minimalProxy is the forward proxy a Go programmer writes in 40 lines.
func minimalProxy() http.Handler {
	tr := tunedTransport()
	hop := []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.WithContext(r.Context())
		out.RequestURI = ""
		for _, h := range hop {
			out.Header.Del(h)
		}
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, h := range hop {
			resp.Header.Del(h)
		}
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

func child(kind string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var h http.Handler
	var ids []string
	switch kind {
	case "minimal":
		h = minimalProxy()
	case "goproxy":
		p := goproxy.NewProxyHttpServer()
		p.Tr = tunedTransport()
		h = p
	default: // rosterd-N
		n, err := strconv.Atoi(strings.TrimPrefix(kind, "rosterd-"))
		if err != nil {
			log.Fatalf("child kind %q", kind)
		}
		srv, err := daemon.New(daemon.Options{Token: token, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConns: -1})
		if err != nil {
			log.Fatal(err)
		}
		for range n {
			id, err := srv.Manager().CreateSession(nil)
			if err != nil {
				log.Fatal(err)
			}
			ids = append(ids, id)
		}
		hs := srv.HTTPServer()
		ln = srv.Listener(ln)
		h = hs.Handler
	}
	fmt.Printf("ADDR %s\nSESSIONS %s\n", ln.Addr(), strings.Join(ids, ","))
	var accepted atomic.Int64
	hs := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}}
	// Exit when the parent closes stdin.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		if os.Getenv("PROXYLOAD_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "%s: accepted %d connections\n", kind, accepted.Load())
		}
		os.Exit(0)
	}()
	_ = hs.Serve(ln)
}

// ---- the parent: upstream, load, table ----

type contender struct {
	name     string
	cmd      *exec.Cmd
	stdin    io.Closer
	addr     string
	sessions []string
}

func startChild(kind string) (*contender, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "PROXYLOAD_CHILD="+kind)
	if g := os.Getenv("LOAD_CHILD_GOGC"); g != "" {
		cmd.Env = append(cmd.Env, "GOGC="+g)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &contender{name: kind, cmd: cmd, stdin: stdin}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 2)
		switch f[0] {
		case "ADDR":
			c.addr = f[1]
		case "SESSIONS":
			if len(f) > 1 && f[1] != "" {
				c.sessions = strings.Split(f[1], ",")
			}
		}
		if f[0] == "SESSIONS" {
			break
		}
	}
	if c.addr == "" {
		return nil, fmt.Errorf("child %s did not start", kind)
	}
	return c, nil
}

// cpuTime is the process's user+system CPU time, from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

type result struct {
	rps, p50, p99, cpuPer1k, connsPer1k float64
}

// runCell drives c (nil: direct) with conc workers for d and measures.
func runCell(c *contender, upURL string, upConns *atomic.Int64, conc int, d, warm time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	if c != nil {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: c.addr})
	}
	client := &http.Client{Transport: tr}
	var measuring atomic.Bool
	var count atomic.Int64
	var failed atomic.Pointer[error]
	lat := make([][]time.Duration, conc)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += conc {
				req, _ := http.NewRequest(http.MethodGet, upURL, nil)
				if c != nil && len(c.sessions) > 0 {
					req.Header.Set(daemon.HeaderSession, c.sessions[i%len(c.sessions)])
					req.Header.Set(daemon.HeaderToken, token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				if measuring.Load() {
					lat[w] = append(lat[w], time.Since(t0))
					count.Add(1)
				}
			}
		})
	}
	time.Sleep(warm)
	pid := 0
	if c != nil {
		pid = c.cmd.Process.Pid
	}
	cpu0, conns0, t0 := cpuTime(pid), upConns.Load(), time.Now()
	measuring.Store(true)
	time.Sleep(d)
	measuring.Store(false)
	cpu1, conns1, el := cpuTime(pid), upConns.Load(), time.Since(t0)
	cancel()
	wg.Wait()
	if p := failed.Load(); p != nil {
		return result{}, *p
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	n := float64(count.Load())
	if n == 0 {
		return result{}, fmt.Errorf("no request completed")
	}
	r := result{
		rps:        n / el.Seconds(),
		p50:        float64(all[len(all)/2].Microseconds()),
		p99:        float64(all[len(all)*99/100].Microseconds()),
		connsPer1k: float64(conns1-conns0) / n * 1000,
	}
	if c != nil {
		r.cpuPer1k = float64((cpu1 - cpu0).Milliseconds()) / n * 1000
	}
	return r, nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("%s=%q: %v", name, v, err)
		}
		return d
	}
	return def
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func parent() error {
	dur := envDuration("LOAD_DURATION", 2*time.Second)
	warm := envDuration("LOAD_WARMUP", 300*time.Millisecond)
	rounds := 3
	if v := os.Getenv("LOAD_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("LOAD_ROUNDS=%q: want a whole number, 1 or more", v)
		}
		rounds = n
	}
	sizes := []int{1 << 10, 64 << 10}
	concs := []int{16, 64}

	var upConns atomic.Int64
	bodies := map[string][]byte{}
	for _, s := range sizes {
		bodies[strconv.Itoa(s)] = bytes.Repeat([]byte("x"), s)
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	up := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := bodies[strings.TrimPrefix(r.URL.Path, "/")]
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				upConns.Add(1)
			}
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = up.Serve(upLn) }()
	defer up.Close()

	names := []string{"direct", "minimal", "goproxy-tuned", "rosterd-1", "rosterd-100"}
	cs := map[string]*contender{"direct": nil}
	for _, kind := range []string{"minimal", "goproxy", "rosterd-1", "rosterd-100"} {
		c, err := startChild(kind)
		if err != nil {
			return err
		}
		defer func() { c.stdin.Close(); _ = c.cmd.Wait() }()
		if kind == "goproxy" {
			kind = "goproxy-tuned"
		}
		cs[kind] = c
	}

	type key struct {
		size, conc int
		name       string
	}
	samples := map[key][]result{}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "proxyload: %d rounds x %d cells x %d contenders, %v each (+%v warm-up); GOMAXPROCS %d, load average %s\n",
		rounds, len(sizes)*len(concs), len(names), dur, warm, runtime.GOMAXPROCS(0), loadavg())
	for round := range rounds {
		for _, size := range sizes {
			for _, conc := range concs {
				for i := range names {
					name := names[(i+round)%len(names)]
					r, err := runCell(cs[name], fmt.Sprintf("http://%s/%d", upLn.Addr(), size), &upConns, conc, dur, warm)
					if err != nil {
						return fmt.Errorf("%s, %d B, c%d: %w", name, size, conc, err)
					}
					k := key{size, conc, name}
					samples[k] = append(samples[k], r)
				}
			}
		}
		fmt.Fprintf(os.Stderr, "proxyload: round %d done after %v\n", round+1, time.Since(start).Round(time.Second))
	}

	med := func(k key, f func(result) float64) float64 {
		var xs []float64
		for _, r := range samples[k] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	gogc := os.Getenv("LOAD_CHILD_GOGC")
	if gogc == "" {
		gogc = "default"
	}
	fmt.Printf("proxyload %s, %d rounds of %v per contender and cell, medians; proxies' GOGC %s; load average at the end %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), rounds, dur, gogc, loadavg())
	fmt.Println("| body | conc | contender | req/s | p50 µs | p99 µs | proxy CPU ms / 1k req | new upstream conns / 1k req | req/s vs minimal, goproxy | CPU vs minimal, goproxy |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	rps := func(r result) float64 { return r.rps }
	cpu := func(r result) float64 { return r.cpuPer1k }
	for _, size := range sizes {
		for _, conc := range concs {
			for _, name := range names {
				k := key{size, conc, name}
				ratios := ""
				if strings.HasPrefix(name, "rosterd") {
					m, g := key{size, conc, "minimal"}, key{size, conc, "goproxy-tuned"}
					ratios = fmt.Sprintf("%.2f, %.2f | %.2f, %.2f",
						med(k, rps)/med(m, rps), med(k, rps)/med(g, rps), med(k, cpu)/med(m, cpu), med(k, cpu)/med(g, cpu))
				} else {
					ratios = " | "
				}
				cpuText := "—"
				if name != "direct" {
					cpuText = fmt.Sprintf("%.0f", med(k, cpu))
				}
				fmt.Printf("| %d KiB | %d | %s | %.0f | %.0f | %.0f | %s | %.1f | %s |\n", size>>10, conc, name,
					med(k, rps), med(k, func(r result) float64 { return r.p50 }), med(k, func(r result) float64 { return r.p99 }),
					cpuText, med(k, func(r result) float64 { return r.connsPer1k }), ratios)
			}
		}
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
