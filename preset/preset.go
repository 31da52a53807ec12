// Package preset holds named browser identities: what a given browser, at a
// given version and on a given platform, looks like on the wire when it
// loads a page (a top-level navigation).
//
// A preset has three parts:
//
//   - Headers: the request headers that browser sends (User-Agent, client
//     hints, Accept, Accept-Language, Accept-Encoding, Sec-Fetch-*,
//     Upgrade-Insecure-Requests, Priority), with their values and names in
//     its spelling, and HeaderOrder, the order of every header it may send
//     (including per-request ones such as cookie and referer).
//   - TLS: its ClientHello, as a capture of the real browser's bytes that
//     uTLS's Fingerprinter turns into a spec for each connection, or as a
//     spec in uTLS's JSON form; and whether it shuffles its extensions, as
//     Chrome does.
//   - HTTP2: its connection preface and HEADERS shape: SETTINGS and their
//     order, the connection WINDOW_UPDATE, PRIORITY frames, the HEADERS
//     priority and the pseudo-header order (the Akamai fingerprint).
//
// A session whose preset has TLS and HTTP2 (Fingerprinted) connects with
// that browser's handshake (uTLS) and HTTP/2 (fhttp), and writes headers in
// the browser's order; JA3, JA4 and the Akamai fingerprint see the browser.
// The preset named "go" has none of this: Go's crypto/tls and HTTP/2, and
// no preset headers, for targets that do not fingerprint and as a
// baseline.
//
// The shipped presets are JSON files embedded in the binary, one per preset,
// named like chrome-158-windows, firefox-157-linux or safari-26-ios; the
// identities they share live once per engine under presets/wire/ (chrome,
// firefox, safari). chrome-156-linux and firefox-153-esr-linux are copied
// field for field from Debian's chromium 156 and firefox-esr 153, captured
// on loopback (make fingerprints); every other chrome-* and firefox-*
// preset carries the same engine identity with its own headers. The safari
// identity is uTLS's Safari hello with Safari's HTTP/2 settings: no Safari
// runs here to check it against. Aliases such as chrome-latest name the
// newest preset of a browser and platform; Names lists every name and
// alias. Register adds a preset of your own, and Parse reads one in the
// embedded JSON form.
//
// # Plain http://
//
// Browsers send less to an origin that is not potentially trustworthy
// (plain http:// to anything but the loopback): Chrome no client hints and
// no Sec-Fetch-*, Firefox no Sec-Fetch-*, and both offer only gzip and
// deflate. OmitOnInsecure and InsecureAcceptEncoding say so per preset
// (per engine, in presets/wire/); make fingerprints captures both browsers
// on such an origin and on http://localhost.
//
// # WebSockets
//
// A browser's WebSocket handshake is not a navigation: Chrome's leaves out
// its client hints, Accept and Sec-Fetch-*, adds Pragma and Cache-Control,
// and has an order of its own. WebSocket says so (chrome's, in
// presets/wire/, from make fingerprints' capture); a preset without one
// sends the navigation's headers on a handshake.
//
// # Accept-Encoding
//
// A request that carries its own Accept-Encoding (every browser preset has
// one) is not decoded by net/http, which only decodes gzip it asked for
// itself. The session decodes gzip, deflate, br and zstd bodies itself when
// the preset, not the request, asked for them; package codec does that.
package preset

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrUnknownPreset is wrapped by the error Lookup returns for a name that is
// neither a preset nor an alias.
var ErrUnknownPreset = errors.New("unknown preset")

// ErrInvalidPreset is wrapped by the error Register returns for a preset that
// fails validation.
var ErrInvalidPreset = errors.New("invalid preset")

// ErrPresetExists is wrapped by the error Register returns for a name that is
// already a preset or an alias.
var ErrPresetExists = errors.New("preset already exists")

// Header is one request header field of a preset.
type Header struct {
	Name  string
	Value string
}

// Preset is a browser's request headers for a top-level navigation.
//
// A Preset returned by Lookup is shared by every caller and must be treated
// as read-only; to derive one, copy it, change the copy (with a new Headers
// slice) and Register it under a new name.
type Preset struct {
	Name     string   // unique name, e.g. "chrome-158-windows"
	Browser  string   // "chrome", "firefox", "safari" or a user's own
	Version  string   // the browser version, e.g. "158" or "26.0"
	Platform string   // "windows", "macos", "linux", "android", "ios" or a user's own
	Mobile   bool     // whether the browser presents itself as mobile
	Headers  []Header // in the order the browser sends them, names in its case

	// HeaderOrder is the order of every header name the browser may send
	// on a request, lowercase, including those a request adds (cookie,
	// referer, origin, content-type, content-length). A fingerprinted
	// transport writes headers in this order, over HTTP/1.1 and HTTP/2;
	// headers it does not list follow, sorted. Empty means the order of
	// Headers.
	HeaderOrder []string

	// OmitOnHTTP1 lists headers, lowercase, that the browser sends over
	// HTTP/2 only (Chrome's priority, Firefox's te). A fingerprinted
	// transport leaves them out of requests it writes over HTTP/1.1.
	OmitOnHTTP1 []string

	// OmitOnInsecure lists headers, lowercase, that the browser leaves
	// out of requests to an origin that is not potentially trustworthy:
	// plain http:// (or ws://) to a host other than the loopback
	// (localhost, *.localhost, 127.0.0.0/8, ::1). Chrome leaves out its
	// client hints (sec-ch-ua*) and Sec-Fetch-*, Firefox Sec-Fetch-*.
	// A fingerprinted session leaves them out of such requests unless the
	// session's config set them.
	OmitOnInsecure []string
	// InsecureAcceptEncoding is the Accept-Encoding the browser sends to
	// such an origin: "gzip, deflate" for Chrome and Firefox, which offer
	// br and zstd over secure connections only. Empty keeps the value in
	// Headers everywhere.
	InsecureAcceptEncoding string

	// WebSocket is how the browser's WebSocket handshake differs from its
	// navigation; nil sends a handshake with the navigation's headers.
	WebSocket *WebSocket

	// TLS is the browser's ClientHello; nil keeps Go's crypto/tls.
	TLS *TLS
	// HTTP2 is the browser's HTTP/2 connection preface and HEADERS shape;
	// nil keeps Go's HTTP/2. A preset with TLS needs HTTP2 too: the two
	// are one transport.
	HTTP2 *HTTP2

	// Set when the preset is registered, so that Apply does no string work.
	compiled *Header  // &Headers[0] when keys were computed, to detect a replaced slice
	keys     []string // canonical form of each Headers[i].Name
	ae       int      // index of Accept-Encoding in Headers, or -1
	order    []string // HeaderOrder, or the lowercase names of Headers
	wire     map[string]string
}

// WebSocket is a browser's WebSocket handshake (a request with
// "Upgrade: websocket"), as it differs from a navigation: the handshake's
// own header order, with names in the browser's spelling, the navigation
// headers it leaves out, and the headers it adds. The caller's request
// supplies what only it knows (Origin, Sec-WebSocket-Key, -Version,
// -Extensions); a fingerprinted session writes them in this order and
// spelling (but Accept-Encoding, in lower case, and the names fhttp acts
// on, Connection, Upgrade and Host, canonical). On Go's stack (a preset
// without TLS) Omit and Headers apply; the order is net/http's.
type WebSocket struct {
	// HeaderOrder names every header the handshake may carry, in the
	// browser's order and spelling (e.g. "Sec-WebSocket-Key").
	HeaderOrder []string
	// Omit lists navigation headers, lowercase, the handshake leaves out.
	Omit []string
	// Headers are added to the handshake, names in the browser's spelling.
	Headers []Header
}

// Fingerprinted reports whether p shapes TLS and HTTP/2 as well as headers.
func (p *Preset) Fingerprinted() bool { return p.TLS != nil }

// Order returns the lowercase header order a fingerprinted transport
// writes: HeaderOrder, or the names of Headers. The slice is shared: do
// not change it.
func (p *Preset) Order() []string {
	if p.order != nil {
		return p.order
	}
	return orderOf(p)
}

// WireName returns how the browser spells the header whose canonical name
// is key on HTTP/1.1 (e.g. "sec-ch-ua" for "Sec-Ch-Ua"), and false for a
// header the preset does not have.
func (p *Preset) WireName(key string) (string, bool) {
	n, ok := p.wire[key]
	return n, ok
}

func orderOf(p *Preset) []string {
	if len(p.HeaderOrder) > 0 {
		return p.HeaderOrder
	}
	o := make([]string, len(p.Headers))
	for i, h := range p.Headers {
		o[i] = strings.ToLower(h.Name)
	}
	return o
}

// Apply sets in h every header of p that h does not already have, so that
// headers the request set itself win. A name present in h counts as set even
// with no values: h["Priority"] = nil keeps Apply from adding Priority.
//
// Apply expects h to hold canonical keys, as Header.Set and Header.Add make
// them, and h must not be nil. For a registered preset it does no string
// work and makes at most one allocation, whatever the number of headers.
func (p *Preset) Apply(h http.Header) {
	if !p.isCompiled() {
		for _, f := range p.Headers {
			k := http.CanonicalHeaderKey(f.Name)
			if _, ok := h[k]; !ok {
				h[k] = []string{f.Value}
			}
		}
		return
	}
	// One backing array for every value set; each entry gets a one-element
	// slice with its capacity capped, so an append by the caller copies
	// instead of writing into its neighbour.
	var vals []string
	for i, k := range p.keys {
		if _, ok := h[k]; ok {
			continue
		}
		if vals == nil {
			vals = make([]string, len(p.keys))
		}
		vals[i] = p.Headers[i].Value
		h[k] = vals[i : i+1 : i+1]
	}
}

// AcceptEncoding returns the value of p's Accept-Encoding header, or "" if p
// has none.
func (p *Preset) AcceptEncoding() string {
	if p.isCompiled() {
		if p.ae < 0 {
			return ""
		}
		return p.Headers[p.ae].Value
	}
	for _, f := range p.Headers {
		if strings.EqualFold(f.Name, "Accept-Encoding") {
			return f.Value
		}
	}
	return ""
}

// isCompiled reports whether p.keys still describes p.Headers.
func (p *Preset) isCompiled() bool {
	return len(p.keys) == len(p.Headers) && len(p.keys) > 0 && p.compiled == &p.Headers[0]
}

// compile precomputes the canonical header names of p.
func (p *Preset) compile() {
	p.keys = make([]string, len(p.Headers))
	p.ae = -1
	for i, f := range p.Headers {
		p.keys[i] = http.CanonicalHeaderKey(f.Name)
		if p.keys[i] == "Accept-Encoding" {
			p.ae = i
		}
	}
	if len(p.Headers) > 0 {
		p.compiled = &p.Headers[0]
	}
	p.order = orderOf(p)
	p.wire = make(map[string]string, len(p.Headers))
	for i, k := range p.keys {
		p.wire[k] = p.Headers[i].Name
	}
}

// registry is one immutable snapshot of every preset; Register replaces it
// whole, so Lookup reads it without a lock.
type registry struct {
	byName map[string]*Preset // presets under their names and aliases
	names  []string           // every key of byName, sorted
	known  string             // names joined by ", ", for error messages
}

var (
	current     atomic.Pointer[registry]
	registerMu  sync.Mutex // serialises Register
	builtinOnce sync.Once
)

// snapshot returns the current registry, loading the embedded presets the
// first time.
func snapshot() *registry {
	if r := current.Load(); r != nil {
		return r
	}
	builtinOnce.Do(func() {
		r, err := loadBuiltin()
		if err != nil {
			// The files are compiled in, and the tests load every one.
			panic("preset: " + err.Error())
		}
		current.Store(r)
	})
	return current.Load()
}

// Lookup returns the preset registered under name, a preset name or an alias.
// The error for an unknown name wraps ErrUnknownPreset and lists the known
// names. Lookup is safe for concurrent use and does not allocate when it
// finds the name.
func Lookup(name string) (*Preset, error) {
	r := snapshot()
	if p, ok := r.byName[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q: known presets are %s", ErrUnknownPreset, name, r.known)
}

// Names returns every preset name and alias, sorted.
func Names() []string {
	return slices.Clone(snapshot().names)
}

// Register adds p under p.Name, for Lookup to find. Register copies p, so
// later changes to p or its Headers do not affect the registered preset.
//
// The name must be printable ASCII without spaces and not yet used by a
// preset or an alias (else the error wraps ErrPresetExists). There must be at
// least one header; every header name must be an HTTP token (RFC 9110), used
// once, and no value may hold CR, LF or NUL. A failure wraps
// ErrInvalidPreset and says which value was at fault. Register is safe for
// concurrent use with Lookup and with itself.
func Register(p Preset) error {
	q := p
	q.Headers = slices.Clone(p.Headers)
	q.HeaderOrder = slices.Clone(p.HeaderOrder)
	q.OmitOnHTTP1 = slices.Clone(p.OmitOnHTTP1)
	q.OmitOnInsecure = slices.Clone(p.OmitOnInsecure)
	if p.WebSocket != nil {
		ws := *p.WebSocket
		ws.HeaderOrder = slices.Clone(ws.HeaderOrder)
		ws.Omit = slices.Clone(ws.Omit)
		ws.Headers = slices.Clone(ws.Headers)
		q.WebSocket = &ws
	}
	if p.TLS != nil {
		t := *p.TLS
		t.ClientHello = slices.Clone(t.ClientHello)
		t.Spec = slices.Clone(t.Spec)
		q.TLS = &t
	}
	if p.HTTP2 != nil {
		h := *p.HTTP2
		h.Settings = slices.Clone(h.Settings)
		h.Priorities = slices.Clone(h.Priorities)
		h.PseudoHeaderOrder = slices.Clone(h.PseudoHeaderOrder)
		if h.HeadersPriority != nil {
			hp := *h.HeadersPriority
			h.HeadersPriority = &hp
		}
		q.HTTP2 = &h
	}
	if err := q.validate(); err != nil {
		return err
	}
	q.compile()

	registerMu.Lock()
	defer registerMu.Unlock()
	old := snapshot()
	if _, ok := old.byName[q.Name]; ok {
		return fmt.Errorf("%w: %q", ErrPresetExists, q.Name)
	}
	byName := make(map[string]*Preset, len(old.byName)+1)
	for k, v := range old.byName {
		byName[k] = v
	}
	byName[q.Name] = &q
	current.Store(newRegistry(byName))
	return nil
}

// newRegistry builds the sorted name list of byName.
func newRegistry(byName map[string]*Preset) *registry {
	names := make([]string, 0, len(byName))
	for k := range byName {
		names = append(names, k)
	}
	slices.Sort(names)
	return &registry{byName: byName, names: names, known: strings.Join(names, ", ")}
}

// validate reports the first problem with p, wrapping ErrInvalidPreset.
func (p *Preset) validate() error {
	if err := validateName("name", p.Name); err != nil {
		return err
	}
	seen := make(map[string]bool, len(p.Headers))
	for i, f := range p.Headers {
		if f.Name == "" {
			return fmt.Errorf("%w %q: header %d has an empty name", ErrInvalidPreset, p.Name, i)
		}
		for j := 0; j < len(f.Name); j++ {
			if !isTokenByte(f.Name[j]) {
				return fmt.Errorf("%w %q: header name %q has byte %#02x at offset %d, which is not allowed in an HTTP token",
					ErrInvalidPreset, p.Name, f.Name, f.Name[j], j)
			}
		}
		if j := strings.IndexAny(f.Value, "\r\n\x00"); j >= 0 {
			return fmt.Errorf("%w %q: value of header %q has byte %#02x at offset %d; CR, LF and NUL are not allowed",
				ErrInvalidPreset, p.Name, f.Name, f.Value[j], j)
		}
		k := http.CanonicalHeaderKey(f.Name)
		if seen[k] {
			return fmt.Errorf("%w %q: header %q appears twice", ErrInvalidPreset, p.Name, f.Name)
		}
		seen[k] = true
	}
	for i, n := range p.HeaderOrder {
		if !isLowerToken(n) {
			return fmt.Errorf("%w %q: headerOrder[%d] %q is not a lowercase HTTP token", ErrInvalidPreset, p.Name, i, n)
		}
		if slices.Contains(p.HeaderOrder[:i], n) {
			return fmt.Errorf("%w %q: headerOrder[%d] %q appears twice", ErrInvalidPreset, p.Name, i, n)
		}
	}
	if len(p.HeaderOrder) > 0 {
		for _, f := range p.Headers {
			if !slices.Contains(p.HeaderOrder, strings.ToLower(f.Name)) {
				return fmt.Errorf("%w %q: header %q is missing from headerOrder", ErrInvalidPreset, p.Name, f.Name)
			}
		}
	}
	for _, list := range []struct {
		field string
		names []string
	}{{"omitOnHTTP1", p.OmitOnHTTP1}, {"omitOnInsecure", p.OmitOnInsecure}} {
		for i, n := range list.names {
			if !isLowerToken(n) {
				return fmt.Errorf("%w %q: %s[%d] %q is not a lowercase HTTP token", ErrInvalidPreset, p.Name, list.field, i, n)
			}
		}
	}
	if ws := p.WebSocket; ws != nil {
		for i, n := range ws.HeaderOrder {
			if !isToken(n) {
				return fmt.Errorf("%w %q: webSocket.headerOrder[%d] %q is not an HTTP token", ErrInvalidPreset, p.Name, i, n)
			}
		}
		for i, n := range ws.Omit {
			if !isLowerToken(n) {
				return fmt.Errorf("%w %q: webSocket.omit[%d] %q is not a lowercase HTTP token", ErrInvalidPreset, p.Name, i, n)
			}
		}
		for i, f := range ws.Headers {
			if !isToken(f.Name) || strings.ContainsAny(f.Value, "\r\n\x00") {
				return fmt.Errorf("%w %q: webSocket.headers[%d] %q: a name must be an HTTP token, a value without CR, LF or NUL", ErrInvalidPreset, p.Name, i, f.Name)
			}
		}
	}
	if j := strings.IndexAny(p.InsecureAcceptEncoding, "\r\n\x00"); j >= 0 {
		return fmt.Errorf("%w %q: insecureAcceptEncoding has byte %#02x at offset %d; CR, LF and NUL are not allowed",
			ErrInvalidPreset, p.Name, p.InsecureAcceptEncoding[j], j)
	}
	if (p.TLS == nil) != (p.HTTP2 == nil) {
		return fmt.Errorf("%w %q: tls and http2 go together: give both or neither", ErrInvalidPreset, p.Name)
	}
	if p.TLS != nil {
		if err := p.TLS.validate(); err != nil {
			return fmt.Errorf("%w %q: %v", ErrInvalidPreset, p.Name, err)
		}
		if err := p.HTTP2.validate(); err != nil {
			return fmt.Errorf("%w %q: %v", ErrInvalidPreset, p.Name, err)
		}
	}
	return nil
}

// validateName checks a preset name or alias: non-empty printable ASCII
// without spaces.
func validateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidPreset, what)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: %s %q has byte %#02x at offset %d; a preset name must be printable ASCII without spaces",
				ErrInvalidPreset, what, name, c, i)
		}
	}
	return nil
}

// isLowerToken reports whether n is a non-empty HTTP token without upper
// case letters, as the header lists of a preset hold names.
func isLowerToken(n string) bool { return isToken(n) && n == strings.ToLower(n) }

// isToken reports whether n is a non-empty HTTP token.
func isToken(n string) bool {
	return n != "" && strings.IndexFunc(n, func(r rune) bool { return r > '~' || !isTokenByte(byte(r)) }) < 0
}

// isTokenByte reports whether c may appear in an HTTP token (RFC 9110
// section 5.6.2).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

//go:embed presets/*.json presets/wire/*.json
var builtinFS embed.FS

// presetFile is the JSON form of one embedded preset.
type presetFile struct {
	Name     string     `json:"name"`
	Browser  string     `json:"browser"`
	Version  string     `json:"version"`
	Platform string     `json:"platform"`
	Mobile   bool       `json:"mobile"`
	Aliases  []string   `json:"aliases"`
	Headers  [][]string `json:"headers"` // each a [name, value] pair

	// The engine's identity, given here or (Wire) taken from a shared
	// file under presets/wire/, so that every preset of one browser engine
	// carries the same identity from one place.
	wireFile
	Wire string `json:"wire"`
}

// wireFile is the JSON form of an engine's identity: a shared file under
// presets/wire/, or the same sections in a preset file.
type wireFile struct {
	HeaderOrder            []string       `json:"headerOrder"`
	OmitOnHTTP1            []string       `json:"omitOnHTTP1"`
	OmitOnInsecure         []string       `json:"omitOnInsecure"`
	InsecureAcceptEncoding string         `json:"insecureAcceptEncoding"`
	WebSocket              *webSocketFile `json:"webSocket"`
	TLS                    *tlsFile       `json:"tls"`
	HTTP2                  *http2File     `json:"http2"`
}

// given reports whether any section of w is set.
func (w *wireFile) given() bool {
	return w.TLS != nil || w.HTTP2 != nil || w.WebSocket != nil || len(w.HeaderOrder) > 0 ||
		len(w.OmitOnHTTP1) > 0 || len(w.OmitOnInsecure) > 0 || w.InsecureAcceptEncoding != ""
}

// webSocketFile is the JSON form of WebSocket.
type webSocketFile struct {
	HeaderOrder []string   `json:"headerOrder"`
	Omit        []string   `json:"omit"`
	Headers     [][]string `json:"headers"` // each a [name, value] pair
}

func (f *webSocketFile) decode() (*WebSocket, error) {
	if f == nil {
		return nil, nil
	}
	ws := &WebSocket{HeaderOrder: f.HeaderOrder, Omit: f.Omit, Headers: make([]Header, len(f.Headers))}
	for i, pair := range f.Headers {
		if len(pair) != 2 {
			return nil, fmt.Errorf("webSocket.headers[%d] has %d elements, want [name, value]", i, len(pair))
		}
		ws.Headers[i] = Header{Name: pair[0], Value: pair[1]}
	}
	return ws, nil
}

// Parse decodes a preset in the JSON form of the embedded presets (name,
// browser, version, platform, mobile, headers as [name, value] pairs,
// headerOrder, and the tls and http2 sections; aliases are ignored) and
// validates it, for Register. A "wire" field names one of the shipped
// identities ("chrome", "firefox", "safari") to take tls, http2 and
// headerOrder from. Errors wrap ErrInvalidPreset and name the field.
func Parse(data []byte) (Preset, error) {
	p, _, err := parseFile("", data)
	if err != nil {
		return Preset{}, fmt.Errorf("%w: %w", ErrInvalidPreset, err)
	}
	q := *p
	q.compiled, q.keys, q.order, q.wire = nil, nil, nil, nil
	return q, nil
}

// parseFile decodes and validates one preset file; its name must match the
// file name (when file is not "").
func parseFile(file string, data []byte) (*Preset, []string, error) {
	where := func(err error) error {
		if file == "" {
			return err
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	var f presetFile
	if err := decodeStrict(data, &f); err != nil {
		return nil, nil, where(err)
	}
	if want := strings.TrimSuffix(path.Base(file), ".json"); file != "" && f.Name != want {
		return nil, nil, where(fmt.Errorf("name %q does not match the file name (want %q)", f.Name, want))
	}
	p := &Preset{
		Name:     f.Name,
		Browser:  f.Browser,
		Version:  f.Version,
		Platform: f.Platform,
		Mobile:   f.Mobile,
		Headers:  make([]Header, len(f.Headers)),
	}
	for i, pair := range f.Headers {
		if len(pair) != 2 {
			return nil, nil, where(fmt.Errorf("header %d has %d elements, want [name, value]", i, len(pair)))
		}
		p.Headers[i] = Header{Name: pair[0], Value: pair[1]}
	}
	w := &f.wireFile
	if f.Wire != "" {
		if w.given() {
			return nil, nil, where(fmt.Errorf("wire %q: give either wire or tls, http2, headerOrder, omitOnHTTP1, omitOnInsecure, insecureAcceptEncoding and webSocket", f.Wire))
		}
		var err error
		if w, err = loadWire(f.Wire); err != nil {
			return nil, nil, where(err)
		}
	}
	p.HeaderOrder, p.OmitOnHTTP1 = w.HeaderOrder, w.OmitOnHTTP1
	p.OmitOnInsecure, p.InsecureAcceptEncoding = w.OmitOnInsecure, w.InsecureAcceptEncoding
	var err error
	if p.WebSocket, err = w.WebSocket.decode(); err != nil {
		return nil, nil, where(err)
	}
	if w.TLS != nil {
		if p.TLS, err = w.TLS.decode(); err != nil {
			return nil, nil, where(err)
		}
	}
	if w.HTTP2 != nil {
		if p.HTTP2, err = w.HTTP2.decode(); err != nil {
			return nil, nil, where(err)
		}
	}
	if err := p.validate(); err != nil {
		return nil, nil, where(err)
	}
	for _, a := range f.Aliases {
		if err := validateName("alias", a); err != nil {
			return nil, nil, where(err)
		}
	}
	p.compile()
	return p, f.Aliases, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// loadWire reads the shared identity presets/wire/NAME.json.
func loadWire(name string) (*wireFile, error) {
	if err := validateName("wire", name); err != nil {
		return nil, err
	}
	data, err := builtinFS.ReadFile("presets/wire/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("wire %q: no such identity (the shipped ones are chrome, firefox and safari)", name)
	}
	var w wireFile
	if err := decodeStrict(data, &w); err != nil {
		return nil, fmt.Errorf("wire %q: %w", name, err)
	}
	return &w, nil
}

// loadBuiltin reads every embedded preset file.
func loadBuiltin() (*registry, error) {
	files, err := fs.Glob(builtinFS, "presets/*.json")
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*Preset)
	for _, file := range files {
		data, err := builtinFS.ReadFile(file)
		if err != nil {
			return nil, err
		}
		p, aliases, err := parseFile(file, data)
		if err != nil {
			return nil, err
		}
		for _, name := range append([]string{p.Name}, aliases...) {
			if other, ok := byName[name]; ok {
				return nil, fmt.Errorf("%s: %w: %q is also used by %s", file, ErrPresetExists, name, other.Name)
			}
			byName[name] = p
		}
	}
	return newRegistry(byName), nil
}
