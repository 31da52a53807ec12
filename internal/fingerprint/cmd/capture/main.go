// Command capture runs the real browsers installed here (Debian's chromium
// and firefox-esr), headless, against the fingerprinting server on loopback
// and writes what they showed to testdata/fingerprints/. `make fingerprints`
// runs it; it is not part of the tests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rosterhq/roster/internal/fingerprint"
)

func main() {
	out := flag.String("out", "testdata/fingerprints", "directory for the capture files")
	runs := flag.Int("runs", 3, "connections (fresh browser profiles) per browser")
	timeout := flag.Duration("timeout", 90*time.Second, "time allowed per browser run")
	only := flag.String("only", "", "capture only this browser (chromium or firefox-esr)")
	flag.Parse()
	log.SetFlags(0)

	s, err := fingerprint.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	s1, err := fingerprint.NewServer(fingerprint.WithALPN("http/1.1"))
	if err != nil {
		log.Fatal(err)
	}
	defer s1.Close()
	sp, err := fingerprint.NewServer(fingerprint.WithoutTLS())
	if err != nil {
		log.Fatal(err)
	}
	defer sp.Close()
	log.Printf("server at %s (%s), http/1.1 only at %s, plain http at %s and %s",
		s.URL(), s.Addr(), s1.URL(), sp.URLFor(insecureHost), sp.URL())

	browsers := []struct {
		name, file string
		run        startFunc
	}{
		{"chromium", "chromium-156-linux.json", chromium},
		{"firefox-esr", "firefox-153-esr-linux.json", firefox},
	}
	failed := false
	for _, b := range browsers {
		if *only != "" && *only != b.name {
			continue
		}
		if err := capture(s, s1, sp, b.name, filepath.Join(*out, b.file), *runs, *timeout, b.run); err != nil {
			log.Printf("%s: %v", b.name, err)
			failed = true
		}
	}
	if failed {
		s.Close()
		s1.Close()
		sp.Close()
		os.Exit(1)
	}
}

// insecureHost is the name the browsers are told resolves to 127.0.0.1.
// It is not loopback's name, so to them http://insecureHost is an origin
// that is not potentially trustworthy (.test is reserved: no real site).
const insecureHost = "roster-fingerprint.test"

// startFunc makes the command that runs a browser with a fresh profile in
// dir and has it load url; ca is the certificate to trust for https (nil
// for plain http).
type startFunc func(ctx context.Context, url string, ca []byte, dir string) *exec.Cmd

func capture(s, s1, sp *fingerprint.Server, name, path string, runs int, timeout time.Duration, start startFunc) error {
	v, err := exec.Command(name, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", name, err)
	}
	c := fingerprint.Capture{
		Browser:    name,
		Version:    strings.TrimSpace(string(v)),
		CapturedAt: time.Now().UTC().Format(time.RFC3339),
	}
	for i := 0; i < runs; i++ {
		r, err := runOnce(s, s.URL(), "/", timeout, start)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		log.Printf("%s run %d: conn %d %s %s %s", name, i+1, r.Conn, r.Protocol, r.TLS.JA4, akamai(r))
		c.Connections = append(c.Connections, r)
	}
	// One navigation to the http/1.1-only server for the HTTP/1.1 header order.
	r, err := runOnce(s1, s1.URL(), "/", timeout, start)
	if err != nil {
		return fmt.Errorf("http/1.1 run: %w", err)
	}
	if r.HTTP1 == nil {
		return fmt.Errorf("http/1.1 run: the browser spoke %s", r.Protocol)
	}
	log.Printf("%s http/1.1 run: conn %d %s %v", name, r.Conn, r.TLS.JA4, r.HTTP1.HeaderOrder)
	c.HTTP1Connections = append(c.HTTP1Connections, r)
	// Plain http://, to a site and to the loopback: what changes when the
	// origin is not potentially trustworthy (client hints, Sec-Fetch-*,
	// Accept-Encoding), and that localhost is not such an origin.
	for _, p := range []struct {
		url  string
		into *[]fingerprint.Result
	}{
		{sp.URLFor(insecureHost), &c.InsecureHTTP1Connections},
		{sp.URL(), &c.LoopbackHTTP1Connections},
	} {
		r, err := runOnce(sp, p.url, "/", timeout, start)
		if err != nil {
			return fmt.Errorf("%s: %w", p.url, err)
		}
		log.Printf("%s %s: conn %d %v", name, p.url, r.Conn, r.HTTP1.HeaderOrder)
		*p.into = append(*p.into, r)
	}
	// A WebSocket, opened by a page served over plain http (so that no
	// certificate is involved but the server's own).
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = fmt.Fprintf(w, "<!doctype html><title>ws</title><script>new WebSocket(%q)</script>", "wss://localhost:"+s.Port()+"/ws")
	}))
	r, err = runOnce(s, page.URL+"/", "/ws", timeout, start)
	page.Close()
	if err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	log.Printf("%s websocket: conn %d %s %v", name, r.Conn, r.TLS.JA4, r.HTTP1.HeaderOrder)
	c.WebSocketConnections = append(c.WebSocketConnections, r)
	c.UserAgent = c.Connections[0].UserAgent()
	for i := range c.Connections {
		for j := i + 1; j < len(c.Connections); j++ {
			if fingerprint.ExtensionOrderDiffers(c.Connections[i], c.Connections[j]) {
				c.ExtensionOrderChanges = true
			}
		}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	log.Printf("%s: wrote %s (%s; extension order changes: %t)", name, path, c.Version, c.ExtensionOrderChanges)
	return nil
}

func akamai(r fingerprint.Result) string {
	if r.HTTP2 == nil {
		return "(no HTTP/2)"
	}
	return r.HTTP2.Akamai
}

// runOnce starts the browser with a fresh profile on url and returns the
// first request for path on a connection the server had not seen before.
func runOnce(s *fingerprint.Server, url, path string, timeout time.Duration, start startFunc) (fingerprint.Result, error) {
	dir, err := os.MkdirTemp("", "roster-capture-")
	if err != nil {
		return fingerprint.Result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seen := 0
	for _, r := range s.Results() {
		seen = max(seen, r.Conn)
	}
	cmd := start(ctx, url, s.CertPEM(), dir)
	var logBuf strings.Builder
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fingerprint.Result{}, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		// The browser's helpers are in its process group; end them all.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	for n := len(s.Results()) + 1; ; n++ {
		rs, err := s.WaitResults(ctx, n)
		if err != nil {
			stop()
			return fingerprint.Result{}, fmt.Errorf("%w; browser output:\n%s", err, tail(logBuf.String()))
		}
		r := rs[len(rs)-1]
		if r.Conn > seen && r.Request == 1 && r.Path == path {
			// Let the browser finish (it exits after the page loads); stop it if not.
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				stop()
			}
			return r, nil
		}
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

func chromium(ctx context.Context, url string, _ []byte, dir string) *exec.Cmd {
	return exec.CommandContext(ctx, "chromium",
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--ignore-certificate-errors", "--host-resolver-rules=MAP "+insecureHost+" 127.0.0.1",
		// Time for a page's script (the WebSocket) before the DOM is dumped.
		"--virtual-time-budget=3000",
		"--user-data-dir="+dir, "--dump-dom", url)
}

// firefoxPrefs keep a fresh profile from calling out, and resolve
// insecureHost to the loopback; none of them touches TLS, HTTP/2 or headers.
const firefoxPrefs = `user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.normandy.enabled", false);
user_pref("app.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("network.dns.localDomains", "` + insecureHost + `");
`

func firefox(ctx context.Context, url string, caPEM []byte, dir string) *exec.Cmd {
	profile := filepath.Join(dir, "profile")
	ca := filepath.Join(dir, "ca.pem")
	err := errors.Join(
		os.MkdirAll(profile, 0o700),
		os.WriteFile(ca, caPEM, 0o600),
		os.WriteFile(filepath.Join(profile, "user.js"), []byte(firefoxPrefs), 0o600),
	)
	if err == nil && len(caPEM) > 0 {
		// Trust the server's CA in the profile's NSS database, so Firefox
		// completes the handshake and sends its HTTP/2 frames.
		for _, args := range [][]string{
			{"-N", "-d", "sql:" + profile, "--empty-password"},
			{"-A", "-n", "roster-fingerprint-ca", "-t", "C,,", "-i", ca, "-d", "sql:" + profile},
		} {
			if b, e := exec.Command("certutil", args...).CombinedOutput(); e != nil {
				err = fmt.Errorf("certutil %s: %w: %s", strings.Join(args, " "), e, b)
				break
			}
		}
	}
	if err != nil {
		log.Printf("firefox profile: %v", err)
	}
	cmd := exec.CommandContext(ctx, "firefox-esr", "--headless", "--no-remote", "--profile", profile,
		"--screenshot", filepath.Join(dir, "shot.png"), url)
	cmd.Env = append(os.Environ(), "HOME="+dir, "MOZ_HEADLESS=1")
	return cmd
}
