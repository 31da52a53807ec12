// Package http3 is a stand-in for github.com/bogdanfinn/quic-go-utls/http3,
// the one package of quic-go-utls that github.com/bogdanfinn/tls-client
// imports. quic-go-utls v1.0.4-utls does not build against
// github.com/quic-go/qpack v0.6.0, which roster's quic-go v0.65.0 needs, and
// a module graph holds one qpack; so the bench module, which compiles
// tls-client and roster into one test binary, replaces quic-go-utls by this.
//
// tls-client takes its HTTP/3 transport only when ALPN on a TCP connection
// picks "h3", which no server in the benchmarks offers (they choose h2), so
// nothing here runs: tls-client's TCP, TLS and HTTP/2 code is its own.
// RoundTrip fails, so a benchmark that reached it would fail loudly.
package http3

import (
	"errors"

	http "github.com/bogdanfinn/fhttp"
	tls "github.com/bogdanfinn/utls"
)

// NextProtoH3 is the ALPN protocol of HTTP/3, as in quic-go-utls.
const NextProtoH3 = "h3"

// ErrNotBuilt is what RoundTrip returns: HTTP/3 is not in this build.
var ErrNotBuilt = errors.New("quic-go-utls stand-in: HTTP/3 is not built into the bench module")

// Transport has the fields tls-client sets on quic-go-utls's Transport.
type Transport struct {
	TLSClientConfig        *tls.Config
	AdditionalSettings     map[uint64]uint64
	MaxResponseHeaderBytes int64
	DisableCompression     bool
}

// RoundTrip fails with ErrNotBuilt.
func (t *Transport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, ErrNotBuilt
}

// CloseIdleConnections does nothing: there are none.
func (t *Transport) CloseIdleConnections() {}
