// Package preset holds named browser header profiles: the request headers a
// given browser, at a given version and on a given platform, sends when it
// loads a page (a top-level navigation, the document request), in the order
// that browser sends them.
//
// A session built from a preset sends that browser's User-Agent, client hints
// (sec-ch-ua, sec-ch-ua-mobile and sec-ch-ua-platform, which only Chrome
// sends), Accept, Accept-Language, Accept-Encoding, the Sec-Fetch-* headers,
// Upgrade-Insecure-Requests and Priority, each exactly where that browser
// sends it. Per-request headers (Cookie, Referer, Origin, Content-Type) and
// connection-level ones (Host, Connection, and the "TE: trailers" Firefox
// adds over HTTP/2) are not part of a preset: the transport writes those.
//
// The shipped presets are JSON files embedded in the binary, one per preset,
// named like chrome-158-windows, firefox-157-linux or safari-26-ios. Aliases
// such as chrome-latest name the newest preset of a browser and platform;
// Names lists every name and alias. Register adds a preset of your own.
//
// # What a preset does not change
//
// A preset shapes HTTP headers only. The TLS ClientHello (cipher suites,
// extensions and their order, key shares) and the HTTP/2 connection preface
// (SETTINGS, WINDOW_UPDATE, priority frames, pseudo-header order) are Go's
// own: crypto/tls and net/http write them, not the browser. A server that
// fingerprints TLS (JA3, JA4) or HTTP/2 (the Akamai fingerprint) sees a Go
// client, whatever the User-Agent says.
//
// Nor does net/http keep a preset's header order: it writes HTTP/1.1 header
// fields sorted by name and HTTP/2 fields in map order. Preset.Headers keeps
// the browser's order for a transport that can honour it.
//
// # Accept-Encoding
//
// A request that carries its own Accept-Encoding (every preset has one) is
// not decoded by net/http, which only decodes gzip it asked for itself. The
// session must decode gzip, deflate, br and zstd bodies itself; package codec
// does that.
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
	Headers  []Header // in the order the browser sends them

	// Set when the preset is registered, so that Apply does no string work.
	compiled *Header  // &Headers[0] when keys were computed, to detect a replaced slice
	keys     []string // canonical form of each Headers[i].Name
	ae       int      // index of Accept-Encoding in Headers, or -1
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
	p.compiled = &p.Headers[0]
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
	if len(p.Headers) == 0 {
		return fmt.Errorf("%w %q: no headers", ErrInvalidPreset, p.Name)
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

// isTokenByte reports whether c may appear in an HTTP token (RFC 9110
// section 5.6.2).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

//go:embed presets/*.json
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
}

// parseFile decodes and validates one preset file; its name must match the
// file name.
func parseFile(file string, data []byte) (*Preset, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f presetFile
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%s: data after the JSON object", file)
	}
	if want := strings.TrimSuffix(path.Base(file), ".json"); f.Name != want {
		return nil, nil, fmt.Errorf("%s: name %q does not match the file name (want %q)", file, f.Name, want)
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
			return nil, nil, fmt.Errorf("%s: header %d has %d elements, want [name, value]", file, i, len(pair))
		}
		p.Headers[i] = Header{Name: pair[0], Value: pair[1]}
	}
	if err := p.validate(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, a := range f.Aliases {
		if err := validateName("alias", a); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	p.compile()
	return p, f.Aliases, nil
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
