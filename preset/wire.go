package preset

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	utls "github.com/bogdanfinn/utls"
)

// TLS is a browser's TLS ClientHello, as data. A session whose preset has
// one speaks TLS through uTLS with this hello instead of crypto/tls.
//
// Exactly one of ClientHello and Spec is set. Each connection gets a fresh
// spec built from it (key shares, GREASE values and the client random are
// new every time, as in the browser).
type TLS struct {
	// ClientHello is a ClientHello captured from the browser: the TLS
	// record as sent, from its 5-byte record header on. uTLS's
	// Fingerprinter turns it into a spec. In JSON it is hex
	// ("clientHello").
	ClientHello []byte

	// Spec is a ClientHello in uTLS's JSON form ("spec": cipher_suites,
	// compression_methods and extensions by name with their parameters;
	// see utls.ClientHelloSpecJSONUnmarshaler), for a hello written by
	// hand rather than captured.
	Spec json.RawMessage

	// ShuffleExtensions permutes the extensions on every connection, as
	// Chrome has since version 110 (GREASE, padding and pre_shared_key
	// keep their places). JA4 sorts extensions, so it does not change;
	// JA3 does.
	ShuffleExtensions bool
}

// NewSpec returns a fresh uTLS ClientHelloSpec for one connection. The
// spec offers resumption (a pre_shared_key extension) only where the
// browser would: when the hello has psk_key_exchange_modes and the
// connection has a session to resume; with uTLS's OmitEmptyPsk set in the
// utls.Config, a first connection carries no pre_shared_key, as in the
// capture.
func (t *TLS) NewSpec() (spec *utls.ClientHelloSpec, err error) {
	// uTLS's parsers index into what they are given: a JSON spec without
	// extensions panics (found by FuzzParse). Bad data must be an error.
	defer func() {
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("uTLS could not read the hello: %v", r)
		}
	}()
	// Blunt mimicry passes extensions uTLS does not know (Chrome 156 sends
	// trust anchor IDs, 0xca34) through as the bytes captured.
	f := &utls.Fingerprinter{AllowBluntMimicry: true}
	if len(t.ClientHello) > 0 {
		spec, err = f.RawClientHello(t.ClientHello)
	} else {
		spec, err = f.UnmarshalJSONClientHello(t.Spec)
	}
	if err != nil {
		return nil, err
	}
	hasModes, hasPSK := false, false
	for _, e := range spec.Extensions {
		switch e.(type) {
		case *utls.PSKKeyExchangeModesExtension:
			hasModes = true
		case utls.PreSharedKeyExtension:
			hasPSK = true
		}
	}
	if hasModes && !hasPSK {
		// pre_shared_key must be the last extension (RFC 8446 4.2.11).
		spec.Extensions = append(spec.Extensions, &utls.UtlsPreSharedKeyExtension{})
	}
	if t.ShuffleExtensions {
		spec.Extensions = utls.ShuffleChromeTLSExtensions(spec.Extensions)
	}
	return spec, nil
}

// validate checks that t turns into a spec.
func (t *TLS) validate() error {
	switch {
	case len(t.ClientHello) > 0 && len(t.Spec) > 0:
		return fmt.Errorf("tls: clientHello and spec are both set; give one")
	case len(t.ClientHello) == 0 && len(t.Spec) == 0:
		return fmt.Errorf("tls: neither clientHello nor spec is set")
	}
	if _, err := t.NewSpec(); err != nil {
		if len(t.ClientHello) > 0 {
			return fmt.Errorf("tls.clientHello: %v", err)
		}
		return fmt.Errorf("tls.spec: %v", err)
	}
	return nil
}

// HTTP2 is how a browser opens an HTTP/2 connection and sends a request's
// HEADERS: what the Akamai HTTP/2 fingerprint reads.
type HTTP2 struct {
	// Settings are the SETTINGS of the connection preface, in the order
	// the browser sends them.
	Settings []Setting
	// WindowUpdate is the increment of the connection-level WINDOW_UPDATE
	// sent after SETTINGS (Chrome 15663105, Firefox 12517377), 1 to
	// 2^31-1: every browser sends one, and so does the transport.
	WindowUpdate uint32
	// Priorities are PRIORITY frames sent after the preface, in order
	// (older Firefox builds its dependency tree this way; current
	// browsers send none).
	Priorities []StreamPriority
	// HeadersPriority is the priority carried by each HEADERS frame; nil
	// sends HEADERS without the PRIORITY flag.
	HeadersPriority *Priority
	// PseudoHeaderOrder is the order of :method, :authority, :scheme and
	// :path.
	PseudoHeaderOrder []string
}

// Setting is one HTTP/2 setting: its identifier (RFC 9113 section 6.5.2:
// 1 HEADER_TABLE_SIZE, 2 ENABLE_PUSH, 3 MAX_CONCURRENT_STREAMS,
// 4 INITIAL_WINDOW_SIZE, 5 MAX_FRAME_SIZE, 6 MAX_HEADER_LIST_SIZE, 8
// ENABLE_CONNECT_PROTOCOL, 9 NO_RFC7540_PRIORITIES) and value. In JSON it is
// a pair [id, value].
type Setting struct {
	ID    uint16
	Value uint32
}

// Priority is an HTTP/2 stream priority (RFC 7540 section 5.3): the
// stream it depends on, whether exclusively, and its weight, 1 to 256 (the
// wire carries weight-1).
type Priority struct {
	DependsOn uint32 `json:"dependsOn"`
	Weight    int    `json:"weight"`
	Exclusive bool   `json:"exclusive"`
}

// StreamPriority is a PRIORITY frame: the priority of one stream.
type StreamPriority struct {
	StreamID uint32 `json:"streamID"`
	Priority
}

// Akamai returns the HTTP/2 part of the Akamai fingerprint that these
// settings produce: SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order,
// e.g. "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p".
func (h *HTTP2) Akamai() string {
	var b strings.Builder
	for i, s := range h.Settings {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, "%d:%d", s.ID, s.Value)
	}
	fmt.Fprintf(&b, "|%d|", h.WindowUpdate)
	if len(h.Priorities) == 0 {
		b.WriteByte('0')
	}
	for i, p := range h.Priorities {
		if i > 0 {
			b.WriteByte(',')
		}
		ex := 0
		if p.Exclusive {
			ex = 1
		}
		fmt.Fprintf(&b, "%d:%d:%d:%d", p.StreamID, ex, p.DependsOn, p.Weight)
	}
	b.WriteByte('|')
	for i, p := range h.PseudoHeaderOrder {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(p[1])
	}
	return b.String()
}

var pseudoHeaders = []string{":method", ":authority", ":scheme", ":path"}

// validate reports the first problem with h.
func (h *HTTP2) validate() error {
	seen := map[uint16]bool{}
	for i, s := range h.Settings {
		if s.ID == 0 || s.ID > 0xff {
			return fmt.Errorf("http2.settings[%d]: identifier %d is not a setting", i, s.ID)
		}
		if seen[s.ID] {
			return fmt.Errorf("http2.settings[%d]: setting %d appears twice", i, s.ID)
		}
		seen[s.ID] = true
		switch {
		case s.ID == 2 && s.Value > 1:
			return fmt.Errorf("http2.settings[%d]: ENABLE_PUSH is %d; it must be 0 or 1", i, s.Value)
		case s.ID == 4 && s.Value > 1<<31-1:
			return fmt.Errorf("http2.settings[%d]: INITIAL_WINDOW_SIZE %d is above 2^31-1", i, s.Value)
		case s.ID == 5 && (s.Value < 1<<14 || s.Value > 1<<24-1):
			return fmt.Errorf("http2.settings[%d]: MAX_FRAME_SIZE %d is outside 16384..16777215", i, s.Value)
		}
	}
	if h.WindowUpdate < 1 || h.WindowUpdate > 1<<31-1 {
		return fmt.Errorf("http2.windowUpdate: %d is outside 1..2^31-1 (a zero increment is a protocol error)", h.WindowUpdate)
	}
	check := func(field string, p Priority) error {
		if p.Weight < 1 || p.Weight > 256 {
			return fmt.Errorf("%s.weight: %d is outside 1..256", field, p.Weight)
		}
		return nil
	}
	for i, p := range h.Priorities {
		if p.StreamID == 0 || p.StreamID%2 == 0 {
			return fmt.Errorf("http2.priorities[%d].streamID: %d is not an odd client stream", i, p.StreamID)
		}
		if err := check(fmt.Sprintf("http2.priorities[%d]", i), p.Priority); err != nil {
			return err
		}
	}
	if h.HeadersPriority != nil {
		if err := check("http2.headersPriority", *h.HeadersPriority); err != nil {
			return err
		}
	}
	if len(h.PseudoHeaderOrder) != len(pseudoHeaders) {
		return fmt.Errorf("http2.pseudoHeaderOrder: %q must list each of %s once", h.PseudoHeaderOrder, strings.Join(pseudoHeaders, ", "))
	}
	for i, p := range h.PseudoHeaderOrder {
		if !strings.HasPrefix(p, ":") || !containsString(pseudoHeaders, p) || containsString(h.PseudoHeaderOrder[:i], p) {
			return fmt.Errorf("http2.pseudoHeaderOrder[%d]: %q; the order must list each of %s once", i, p, strings.Join(pseudoHeaders, ", "))
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// tlsFile and http2File are the JSON forms of TLS and HTTP2 in a preset
// file.
type tlsFile struct {
	ClientHello       string          `json:"clientHello"`
	Spec              json.RawMessage `json:"spec"`
	ShuffleExtensions bool            `json:"shuffleExtensions"`
}

type http2File struct {
	Settings          [][2]uint32      `json:"settings"`
	WindowUpdate      uint32           `json:"windowUpdate"`
	Priorities        []StreamPriority `json:"priorities"`
	HeadersPriority   *Priority        `json:"headersPriority"`
	PseudoHeaderOrder []string         `json:"pseudoHeaderOrder"`
}

func (f *tlsFile) decode() (*TLS, error) {
	t := &TLS{Spec: f.Spec, ShuffleExtensions: f.ShuffleExtensions}
	if f.ClientHello != "" {
		b, err := hex.DecodeString(strings.Join(strings.Fields(f.ClientHello), ""))
		if err != nil {
			return nil, fmt.Errorf("tls.clientHello: not hex: %v", err)
		}
		t.ClientHello = b
	}
	return t, nil
}

func (f *http2File) decode() (*HTTP2, error) {
	h := &HTTP2{
		WindowUpdate:      f.WindowUpdate,
		Priorities:        f.Priorities,
		HeadersPriority:   f.HeadersPriority,
		PseudoHeaderOrder: f.PseudoHeaderOrder,
	}
	for i, s := range f.Settings {
		if s[0] > 0xffff {
			return nil, fmt.Errorf("http2.settings[%d]: identifier %d is not a setting", i, s[0])
		}
		h.Settings = append(h.Settings, Setting{ID: uint16(s[0]), Value: s[1]})
	}
	return h, nil
}
