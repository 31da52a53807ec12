package fingerprint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// perRequestHeaders are left out of header-order comparisons: whether a
// client sends them depends on the request (a body, a stored cookie, a
// revalidation, a redirect), not on the client's identity.
var perRequestHeaders = []string{
	"authorization", "cache-control", "content-length", "content-type", "cookie",
	"if-modified-since", "if-none-match", "if-range", "origin", "pragma",
	"proxy-authorization", "range", "referer",
}

// Compare lists how got differs from want in what identifies a client: the
// protocol, JA4, the sorted JA3 hash and, for HTTP/2, the Akamai string and
// the HEADERS priority, and the header order (for HTTP/1.1 with the names'
// case). Header order ignores, in both, the headers that depend on the
// request rather than the client: authorization, cache-control,
// content-length, content-type, cookie, if-modified-since, if-none-match,
// if-range, origin, pragma, proxy-authorization, range and referer. Header
// values and extension order are not compared. An empty list means a match.
func Compare(want, got Result) []string {
	var diffs []string
	add := func(field string, w, g any) {
		diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", field, w, g))
	}
	if want.Protocol != got.Protocol {
		add("protocol", want.Protocol, got.Protocol)
	}
	if want.TLS.JA4 != got.TLS.JA4 {
		add("ja4", want.TLS.JA4+" ("+want.TLS.JA4R+")", got.TLS.JA4+" ("+got.TLS.JA4R+")")
	}
	if want.TLS.JA3SortedHash != got.TLS.JA3SortedHash {
		add("ja3 sorted", want.TLS.JA3SortedHash+" ("+want.TLS.JA3Sorted+")", got.TLS.JA3SortedHash+" ("+got.TLS.JA3Sorted+")")
	}
	switch {
	case want.HTTP2 != nil && got.HTTP2 != nil:
		w, g := want.HTTP2, got.HTTP2
		if w.Akamai != g.Akamai {
			add("http2 akamai", w.Akamai, g.Akamai)
		}
		if fmtPriority(w.HeadersPriority) != fmtPriority(g.HeadersPriority) {
			add("http2 headers priority", fmtPriority(w.HeadersPriority), fmtPriority(g.HeadersPriority))
		}
		if wo, gor := identityOrder(w.HeaderOrder), identityOrder(g.HeaderOrder); !slices.Equal(wo, gor) {
			add("http2 header order", wo, gor)
		}
	case want.HTTP1 != nil && got.HTTP1 != nil:
		if wo, gor := identityOrder(want.HTTP1.HeaderOrder), identityOrder(got.HTTP1.HeaderOrder); !slices.Equal(wo, gor) {
			add("http1 header order", wo, gor)
		}
	case want.HTTP2 != nil || want.HTTP1 != nil || got.HTTP2 != nil || got.HTTP1 != nil:
		add("http part", httpPart(want), httpPart(got))
	}
	return diffs
}

func httpPart(r Result) string {
	switch {
	case r.HTTP2 != nil:
		return "http2"
	case r.HTTP1 != nil:
		return "http1"
	}
	return "none"
}

func fmtPriority(p *Priority) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("exclusive=%t dep=%d weight=%d", p.Exclusive, p.StreamDep, p.Weight)
}

// identityOrder drops the per-request headers from a header order.
func identityOrder(names []string) []string {
	out := []string{}
	for _, n := range names {
		if !slices.Contains(perRequestHeaders, strings.ToLower(n)) {
			out = append(out, n)
		}
	}
	return out
}

// ExtensionOrderDiffers reports whether a and b's ClientHellos list their
// extensions in a different order (or different extensions), GREASE values
// left out since they change on every connection. Two connections of a
// client that shuffles its extensions, like Chrome, almost always differ;
// JA4 and the sorted JA3 do not.
func ExtensionOrderDiffers(a, b Result) bool {
	return !slices.Equal(noGREASE(a.TLS.Extensions), noGREASE(b.TLS.Extensions))
}

// Capture is a file under testdata/fingerprints: what a real browser showed
// the server, one navigation Result per connection (each from a fresh
// browser profile, so no session resumption).
type Capture struct {
	// Browser is the program run ("chromium", "firefox-esr") and Version
	// what its --version printed.
	Browser string `json:"browser"`
	Version string `json:"version"`
	// UserAgent is what the browser sent; headless Chromium says HeadlessChrome.
	UserAgent  string `json:"user_agent"`
	CapturedAt string `json:"captured_at"`
	// ExtensionOrderChanges says whether the extension order differed
	// between any two of the connections.
	ExtensionOrderChanges bool     `json:"extension_order_changes"`
	Connections           []Result `json:"connections"`
	// HTTP1Connections are navigations to a server that accepts only
	// http/1.1 in ALPN (the browser still offers h2): the browser's HTTP/1.1
	// header order, with case.
	HTTP1Connections []Result `json:"http1_connections,omitempty"`
	// InsecureHTTP1Connections are navigations to plain http:// under a
	// name the browser resolves to 127.0.0.1 but does not know as
	// loopback: what it sends to an origin that is not potentially
	// trustworthy, as an http:// site on the internet is.
	InsecureHTTP1Connections []Result `json:"insecure_http1_connections,omitempty"`
	// LoopbackHTTP1Connections are navigations to http://localhost, an
	// origin browsers count as potentially trustworthy although it is
	// plain http.
	LoopbackHTTP1Connections []Result `json:"loopback_http1_connections,omitempty"`
	// WebSocketConnections are WebSockets the browser opened, from a page
	// on http://127.0.0.1, to wss://localhost on the TLS server: the
	// ClientHello of the WebSocket's connection and its handshake request.
	// (The server answers 200, so the socket then fails.)
	WebSocketConnections []Result `json:"websocket_connections,omitempty"`
}

// ReadCapture reads a Capture from a JSON file and checks it holds at least
// one connection.
func ReadCapture(path string) (*Capture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fingerprint: reading capture: %w", err)
	}
	var c Capture
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("fingerprint: capture %s: %w", path, err)
	}
	if len(c.Connections) == 0 {
		return nil, fmt.Errorf("fingerprint: capture %s has no connections", path)
	}
	return &c, nil
}

// LoadCapture reads the committed capture called name ("chromium-156-linux",
// "firefox-153-esr-linux") from testdata/fingerprints at the repository root,
// found from this package's source location, so tests in any package can use
// it. It needs the source tree, as tests have.
func LoadCapture(name string) (*Capture, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return nil, fmt.Errorf("fingerprint: capture %s: cannot locate the source tree", name)
	}
	return ReadCapture(filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fingerprints", name+".json"))
}
