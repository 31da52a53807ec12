package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// buildRosterd builds rosterd into dir and returns its path. Under the
// race detector it builds with -race too, so that it links the packages
// go test has just compiled instead of compiling them all again.
func buildRosterd(t *testing.T, dir string) string {
	t.Helper()
	// go test puts the go command's own GOROOT/bin first in PATH, so this
	// is the go that runs the test (runtime.GOROOT is deprecated: SA1019).
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "go"
	}
	path := filepath.Join(dir, "rosterd")
	args := []string{"build", "-o", path}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// TestBinary builds rosterd and drives it as a user would, with curl.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rosterd: not in -short mode")
	}
	curlBin := curlPath(t)
	bin := buildRosterd(t, t.TempDir())
	t.Run("curl", func(t *testing.T) { testBinaryCurl(t, bin, curlBin) })
	t.Run("graceful shutdown", func(t *testing.T) { testBinaryGracefulShutdown(t, bin, curlBin) })
	t.Run("exit codes", func(t *testing.T) { testBinaryExitCodes(t, bin) })
}

// testBinaryExitCodes: -h and -version succeed; a bad flag or environment
// variable fails, naming it.
func testBinaryExitCodes(t *testing.T, bin string) {
	for _, tc := range []struct {
		args []string
		env  string
		code int
		want string
	}{
		{[]string{"-h"}, "", 0, "-max-conns int"},
		{[]string{"-version"}, "", 0, "rosterd "},
		{[]string{"-max-sessions", "x"}, "", 1, "-max-sessions"},
		{nil, "ROSTER_IDLE_TIMEOUT=soon", 1, `ROSTER_IDLE_TIMEOUT="soon"`},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(os.Environ(), "ROSTER_LISTEN=127.0.0.1:0")
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("rosterd %v %s: exit %d, want %d; output lacks %q?\n%s", tc.args, tc.env, code, tc.code, tc.want, out)
		}
	}
}

// curlPath finds curl: a missing curl skips the test locally and fails
// it in CI, which installs curl.
func curlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("curl is needed in CI: %v", err)
		}
		t.Skipf("no curl: %v", err)
	}
	return p
}

// daemonProc is a running rosterd.
type daemonProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's error, once exited is closed
}

// startDaemon starts the binary with args and waits for its ready line.
func startDaemon(t *testing.T, bin string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{stderr: newSyncBuffer(), exited: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	// A race-enabled binary sleeps a second at exit unless told not to; a
	// race it finds makes it exit 66, which waitExit reports.
	d.cmd.Env = append(os.Environ(), strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	d.cmd.Stderr = d.stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := readyRe.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	go func() {
		<-readerDone // Wait closes the pipe: read it all first
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		_ = d.cmd.Process.Kill()
		<-d.exited
	})
	select {
	case d.addr = <-ready:
	case <-d.exited:
		t.Fatalf("rosterd exited before it was ready: %v\n%s", d.err, d.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("rosterd not ready after 30 s\n%s", d.stderr.String())
	}
	return d
}

// waitExit waits for the process to exit and returns its exit code.
func (d *daemonProc) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(within):
		t.Fatalf("rosterd still running %v after the signal\n%s", within, d.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case d.err == nil:
		return 0
	case errors.As(d.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("Wait: %v", d.err)
	return -1
}

// curl runs curl with args and returns its standard output; it fails the
// test if curl fails. It runs without the environment's proxy variables,
// so that only -x sets a proxy.
func curl(t *testing.T, curlBin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(curlBin, append([]string{"-sS", "--max-time", "30"}, args...)...)
	cmd.Env = curlEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %q: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// curlEnv is the environment without proxy variables.
func curlEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// backend serves httpbin plus /slow, which tells arrived when a request
// comes, waits a second and sends slowBody.
func backend(t *testing.T, arrived chan<- struct{}) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/", httpbin.New())
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, slowBody)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

var slowBody = strings.Repeat("0123456789abcdef", 4096) // 64 KiB

func testBinaryCurl(t *testing.T, bin, curlBin string) {
	be := backend(t, nil)
	const tok = "T0K-bin-0123456789"
	d := startDaemon(t, bin, "-listen", "127.0.0.1:0", "-token", tok)
	api := "http://" + d.addr

	// The API, with and without the token.
	if out := curl(t, curlBin, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", api+"/v1/sessions"); out != "401" {
		t.Fatalf("POST without token: %s, want 401", out)
	}
	var ids [2]string
	for i := range ids {
		out := curl(t, curlBin, "-X", "POST", "-H", "Authorization: Bearer "+tok, api+"/v1/sessions")
		var created struct{ ID string }
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
			t.Fatalf("POST /v1/sessions: %q: %v", out, err)
		}
		ids[i] = created.ID
	}
	if out := curl(t, curlBin, "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Authorization: Bearer "+tok,
		"-d", `{"timeout":-1}`, api+"/v1/sessions"); out != "400" {
		t.Fatalf("POST with a bad config: %s, want 400", out)
	}

	cookies := func(out string) map[string]string {
		t.Helper()
		var c struct{ Cookies map[string]string }
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("cookies: %q: %v", out, err)
		}
		return c.Cookies
	}
	proxy := func(id string) string { return "http://" + id + ":" + tok + "@" + d.addr }
	for i, who := range []string{"a", "b"} {
		// -L: the proxy passes the redirect on, as a forward proxy must.
		got := cookies(curl(t, curlBin, "-L", "-x", proxy(ids[i]), be.URL+"/cookies/set?who="+who))
		if len(got) != 1 || got["who"] != who {
			t.Fatalf("session %d after /cookies/set?who=%s: %v", i, who, got)
		}
	}
	for i, who := range []string{"a", "b"} {
		got := cookies(curl(t, curlBin, "-x", proxy(ids[i]), be.URL+"/cookies"))
		if len(got) != 1 || got["who"] != who {
			t.Fatalf("session %d reads %v, want only who=%s", i, got, who)
		}
	}
	// The proxy enforces the token.
	if out := curl(t, curlBin, "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://"+ids[0]+":wrong@"+d.addr, be.URL+"/cookies"); out != "407" {
		t.Fatalf("proxy with a wrong token: %s, want 407", out)
	}
	// curl's User-Agent does not reach the server.
	var ua struct {
		UA string `json:"user-agent"`
	}
	if out := curl(t, curlBin, "-x", proxy(ids[0]), be.URL+"/user-agent"); json.Unmarshal([]byte(out), &ua) != nil || strings.HasPrefix(ua.UA, "curl/") || ua.UA == "" {
		t.Fatalf("User-Agent through the proxy: %q", out)
	}
	// /metrics counts what happened.
	m := curl(t, curlBin, "-H", "Authorization: Bearer "+tok, api+"/metrics")
	for _, want := range []string{"roster_sessions_active 2", `roster_proxy_requests_total{class="2xx"} 5`, `roster_proxy_requests_total{class="4xx"} 1`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, d.stderr.String())
	}
}

func testBinaryGracefulShutdown(t *testing.T, bin, curlBin string) {
	arrived := make(chan struct{}, 1)
	be := backend(t, arrived)
	const tok = "T-0123456789abcdef"
	d := startDaemon(t, bin, "-listen", "127.0.0.1:0", "-token", tok, "-shutdown-timeout", "20s")
	id := strings.TrimSpace(curl(t, curlBin, "-X", "POST", "-H", "Authorization: Bearer "+tok, "http://"+d.addr+"/v1/sessions"))
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(id), &created); err != nil || created.ID == "" {
		t.Fatalf("POST /v1/sessions: %q: %v", id, err)
	}

	type result struct {
		code string
		err  error
	}
	slow := make(chan result, 1)
	bodyFile := filepath.Join(t.TempDir(), "body")
	go func() {
		cmd := exec.Command(curlBin, "-sS", "--max-time", "30", "-o", bodyFile, "-w", "%{http_code}",
			"-x", "http://"+created.ID+":"+tok+"@"+d.addr, be.URL+"/slow")
		cmd.Env = curlEnv()
		out, err := cmd.Output()
		slow <- result{code: string(out), err: err}
	}()
	select {
	case <-arrived:
	case r := <-slow:
		t.Fatalf("the slow request ended before it reached the backend: %+v", r)
	case <-time.After(30 * time.Second):
		t.Fatal("the slow request never reached the backend")
	}

	start := time.Now()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-slow:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow request did not finish")
	}
	if r.err != nil || r.code != "200" {
		t.Fatalf("slow request during shutdown: code %q, err %v\n%s", r.code, r.err, d.stderr.String())
	}
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != slowBody {
		t.Fatalf("slow request body: %d bytes, want %d", len(body), len(slowBody))
	}
	if code := d.waitExit(t, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT\n%s", code, d.stderr.String())
	}
	t.Logf("exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"shutting down", "stopped"} {
		if !strings.Contains(d.stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, d.stderr.String())
		}
	}
}
