package daemon_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
)

func TestCACreateThenReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "roster")
	ca, created, err := daemon.LoadOrCreateCA(dir, nil)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, daemon.CAKeyFile): 0o600, filepath.Join(dir, daemon.CACertFile): 0o644} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
	cert := ca.Certificate()
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("CA key %T, want ECDSA P-256", cert.PublicKey)
	}
	if cert.Subject.CommonName != daemon.CAName || !cert.IsCA || !cert.MaxPathLenZero {
		t.Fatalf("CA certificate: %v, IsCA %v, MaxPathLenZero %v", cert.Subject, cert.IsCA, cert.MaxPathLenZero)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d < daemon.CAValidity || d > daemon.CAValidity+2*time.Hour {
		t.Fatalf("CA validity %v, want about %v", d, daemon.CAValidity)
	}
	again, created, err := daemon.LoadOrCreateCA(dir, nil)
	if err != nil || created {
		t.Fatalf("second start: created %v, %v", created, err)
	}
	if string(again.CertPEM()) != string(ca.CertPEM()) {
		t.Fatal("the second start made a new CA")
	}
}

func TestCARefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(dir string)
	}{
		{"key readable by others", func(dir string) { _ = os.Chmod(filepath.Join(dir, daemon.CAKeyFile), 0o644) }},
		{"key missing", func(dir string) { _ = os.Remove(filepath.Join(dir, daemon.CAKeyFile)) }},
		{"cert missing", func(dir string) { _ = os.Remove(filepath.Join(dir, daemon.CACertFile)) }},
		{"cert of another key", func(dir string) {
			other := t.TempDir()
			if _, _, err := daemon.LoadOrCreateCA(other, nil); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(other, daemon.CACertFile))
			_ = os.WriteFile(filepath.Join(dir, daemon.CACertFile), b, 0o644)
		}},
		{"garbage", func(dir string) { _ = os.WriteFile(filepath.Join(dir, daemon.CACertFile), []byte("nope"), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := daemon.LoadOrCreateCA(dir, nil); err != nil {
				t.Fatal(err)
			}
			tc.break_(dir)
			if _, _, err := daemon.LoadOrCreateCA(dir, nil); !errors.Is(err, daemon.ErrCA) {
				t.Fatalf("got %v, want an error wrapping ErrCA", err)
			}
		})
	}
}

func TestCALeaves(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ca, _, err := daemon.LoadOrCreateCA(t.TempDir(), clock)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, tc := range []struct {
		host       string
		dns        string
		ip         net.IP
		verifyName string
	}{
		{"Example.COM.", "example.com", nil, "example.com"},
		{"127.0.0.1", "", net.ParseIP("127.0.0.1"), "127.0.0.1"},
		{"[::1]", "", net.ParseIP("::1"), "::1"},
	} {
		leaf, err := ca.Leaf(tc.host)
		if err != nil {
			t.Fatalf("Leaf(%q): %v", tc.host, err)
		}
		c := leaf.Leaf
		if tc.dns != "" && (len(c.DNSNames) != 1 || c.DNSNames[0] != tc.dns || len(c.IPAddresses) != 0) {
			t.Errorf("Leaf(%q): DNS %v IP %v", tc.host, c.DNSNames, c.IPAddresses)
		}
		if tc.ip != nil && (len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(tc.ip) || len(c.DNSNames) != 0) {
			t.Errorf("Leaf(%q): DNS %v IP %v", tc.host, c.DNSNames, c.IPAddresses)
		}
		if _, err := c.Verify(x509.VerifyOptions{DNSName: tc.verifyName, Roots: roots, CurrentTime: clock()}); err != nil {
			t.Errorf("Leaf(%q) does not verify: %v", tc.host, err)
		}
	}
	first, _ := ca.Leaf("example.com")
	advance(daemon.LeafValidity - 2*24*time.Hour)
	if again, _ := ca.Leaf("example.com"); again != first {
		t.Fatal("a leaf with two days left was minted again")
	}
	advance(36 * time.Hour)
	renewed, _ := ca.Leaf("example.com")
	if renewed == first {
		t.Fatal("a leaf with half a day left was served from the cache")
	}
	if !renewed.Leaf.NotAfter.After(clock().Add(daemon.LeafValidity - time.Minute)) {
		t.Fatalf("renewed leaf ends %v", renewed.Leaf.NotAfter)
	}
}

func TestCALeafCacheBound(t *testing.T) {
	ca, _, err := daemon.LoadOrCreateCA(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ca.SetCacheSize(2)
	a, _ := ca.Leaf("a.test")
	_, _ = ca.Leaf("b.test")
	if again, _ := ca.Leaf("a.test"); again != a { // a is now the most recent
		t.Fatal("a cached leaf was minted again")
	}
	_, _ = ca.Leaf("c.test") // evicts b
	if n := daemon.CachedLeaves(ca); n != 2 {
		t.Fatalf("cache holds %d leaves, want 2", n)
	}
	if again, _ := ca.Leaf("a.test"); again != a {
		t.Fatal("the most recently used leaf was evicted")
	}
	if _, err := ca.Leaf(""); !errors.Is(err, daemon.ErrCA) {
		t.Fatalf("Leaf(\"\"): %v", err)
	}
}
