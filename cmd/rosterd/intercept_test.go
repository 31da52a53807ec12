package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseConfigIntercept(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		intercept bool
		caDir     string
		skip      string
	}{
		{"off by default", nil, nil, false, "", ""},
		{"flags", []string{"-intercept", "-ca-dir", "/x", "-intercept-skip", "*.a,b"}, nil, true, "/x", "*.a,b"},
		{"env", nil, map[string]string{"ROSTER_INTERCEPT": "1", "ROSTER_CA_DIR": "/y", "ROSTER_INTERCEPT_SKIP": "c"}, true, "/y", "c"},
		{"flag over env", []string{"-intercept=false"}, map[string]string{"ROSTER_INTERCEPT": "true"}, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.intercept != tc.intercept || c.caDir != tc.caDir || c.interceptSkip != tc.skip {
				t.Fatalf("intercept %v caDir %q skip %q, want %v %q %q", c.intercept, c.caDir, c.interceptSkip, tc.intercept, tc.caDir, tc.skip)
			}
		})
	}
	if _, err := parseConfig(nil, envOf(map[string]string{"ROSTER_INTERCEPT": "maybe"}), io.Discard); err == nil || !strings.Contains(err.Error(), "ROSTER_INTERCEPT") {
		t.Fatalf("ROSTER_INTERCEPT=maybe: %v", err)
	}
	var stderr bytes.Buffer
	if err := run(context.Background(), nil, []string{"-intercept", "-ca-dir", t.TempDir(), "-intercept-skip", "[", "-listen", "127.0.0.1:0"}, envOf(nil), io.Discard, &stderr); err == nil || !strings.Contains(err.Error(), "intercept-skip") {
		t.Fatalf("a bad -intercept-skip pattern: %v", err)
	}
}

var caRe = regexp.MustCompile(`(?m)^rosterd: https interception on; CA "roster local CA" (created|reused), valid until [0-9-]+\nrosterd: CA certificate: (\S+) `)

// First start creates the CA and says how to trust it; /v1/ca.pem serves
// it; the next start reuses it.
func TestRunIntercept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	start := func(want string) {
		t.Helper()
		cancel, done, stdout, _ := startRun(t, []string{"-listen", "127.0.0.1:0", "-token", "T-intercept-0123456789", "-intercept", "-ca-dir", dir}, nil)
		addr := stdout.waitMatch(t, readyRe, done)[1]
		m := stdout.waitMatch(t, caRe, done)
		if m[1] != want || m[2] != filepath.Join(dir, "roster-ca.pem") {
			t.Fatalf("CA %s at %s, want %s at %s", m[1], m[2], want, dir)
		}
		for _, hint := range []string{"curl --cacert " + m[2], "REQUESTS_CA_BUNDLE=" + m[2], "NODE_EXTRA_CA_CERTS=" + m[2], "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n \"roster local CA\" -i " + m[2]} {
			if !strings.Contains(stdout.String(), hint) {
				t.Errorf("no %q in\n%s", hint, stdout.String())
			}
		}
		file, err := os.ReadFile(m[2])
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/ca.pem", nil)
		req.Header.Set("Authorization", "Bearer T-intercept-0123456789")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		served, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(served, file) {
			t.Fatalf("GET /v1/ca.pem: %d %q, want the file", resp.StatusCode, served)
		}
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		done <- nil
	}
	start("created")
	first, _ := os.ReadFile(filepath.Join(dir, "roster-ca.pem"))
	start("reused")
	if again, _ := os.ReadFile(filepath.Join(dir, "roster-ca.pem")); !bytes.Equal(first, again) {
		t.Fatal("the second start replaced the CA")
	}
}

// Without -ca-dir the CA goes to roster under the user's config directory.
func TestRunInterceptDefaultDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home) // os.UserConfigDir on Linux
	t.Setenv("HOME", home)            // and on macOS
	cancel, done, stdout, _ := startRun(t, []string{"-listen", "127.0.0.1:0", "-token", "T-intercept-0123456789", "-intercept"}, nil)
	m := stdout.waitMatch(t, caRe, done)
	base, err := os.UserConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "roster", "roster-ca.pem"); m[2] != want {
		t.Fatalf("CA at %s, want %s", m[2], want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	done <- nil
}
