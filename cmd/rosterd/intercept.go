package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rosterhq/roster/daemon"
)

// loadCA loads or creates the interception CA in dir, by default roster
// under the user's config directory.
func loadCA(dir string) (*daemon.CA, bool, error) {
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return nil, false, fmt.Errorf("-intercept: no -ca-dir given and no user config directory: %w", err)
		}
		dir = filepath.Join(base, "roster")
	}
	return daemon.LoadOrCreateCA(dir, nil)
}

// printTrust says where the CA's certificate is and how clients trust it.
func printTrust(out io.Writer, ca *daemon.CA, created bool, addr string) {
	// One write: a reader of the output sees all of it or none.
	var w strings.Builder
	state := "reused"
	if created {
		state = "created"
	}
	p := ca.CertPath()
	cert := ca.Certificate()
	fmt.Fprintf(&w, "rosterd: https interception on; CA %q %s, valid until %s\n", cert.Subject.CommonName, state, cert.NotAfter.UTC().Format("2006-01-02"))
	fmt.Fprintf(&w, "rosterd: CA certificate: %s (its key sits next to it: keep the directory private)\n", p)
	fmt.Fprintf(&w, "rosterd: trust it in the clients that use this proxy, and only there:\n")
	fmt.Fprintf(&w, "  curl:     curl --cacert %s -x http://SESSION_ID:TOKEN@%s https://...\n", p, addr)
	fmt.Fprintf(&w, "  Python:   REQUESTS_CA_BUNDLE=%s  (replaces the default bundle; or verify=%q)\n", p, p)
	fmt.Fprintf(&w, "  Node:     NODE_EXTRA_CA_CERTS=%s\n", p)
	fmt.Fprintf(&w, "  NSS:      certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n %q -i %s  (Chrome on Linux; Firefox: -d sql:PROFILE_DIR)\n", daemon.CAName, p)
	fmt.Fprintf(&w, "  over the API: curl -H 'Authorization: Bearer TOKEN' http://%s/v1/ca.pem\n", addr)
	_, _ = io.WriteString(out, w.String())
}
