// Package fingerprint is roster's own fingerprinting server, a test helper:
// a TLS server on 127.0.0.1 that reads each client's raw ClientHello before
// crypto/tls does and its HTTP/2 frames up to the first HEADERS (or its
// HTTP/1.1 request head), computes JA3, sorted JA3, JA4, JA4_r and the Akamai
// HTTP/2 string, and answers every request with all of it as JSON. Made
// WithoutTLS, it is a plain HTTP/1.1 server, for what a client sends to an
// http:// origin.
//
// Tests take a client's fingerprint through a Server and check it against a
// real browser's with Compare and the captures that `make fingerprints`
// writes to testdata/fingerprints (LoadCapture):
//
//	s, err := fingerprint.NewServer()
//	...
//	defer s.Close()
//	// make a request to s.URL(), trusting s.RootCAs()
//	got, _ := s.Last()
//	want, err := fingerprint.LoadCapture("chromium-156-linux")
//	...
//	if d := fingerprint.Compare(want.Connections[0], got); len(d) > 0 { t.Error(d) }
package fingerprint
