package fingerprint

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every error about bytes that are not a
// well-formed TLS ClientHello (or HTTP/2 preface), so callers can tell bad
// input from I/O failures with errors.Is.
var ErrMalformed = errors.New("fingerprint: malformed input")

// TLS extension numbers this package reads the contents of.
const (
	extServerName          = 0
	extStatusRequest       = 5
	extSupportedGroups     = 10
	extECPointFormats      = 11
	extSignatureAlgorithms = 13
	extALPN                = 16
	extPadding             = 21
	extCompressCert        = 27
	extRecordSizeLimit     = 28
	extDelegatedCreds      = 34
	extSessionTicket       = 35
	extPreSharedKey        = 41
	extSupportedVersions   = 43
	extPSKModes            = 45
	extKeyShare            = 51
	extALPSOld             = 17513
	extALPSNew             = 17613
	extECH                 = 0xfe0d
)

const (
	recordTypeHandshake  = 0x16
	handshakeClientHello = 0x01
	// maxRecordPayload is the largest plaintext record TLS allows (RFC 8446 5.1).
	maxRecordPayload = 1 << 14
	// maxHelloLen bounds how much a peer can make the reader buffer; a
	// ClientHello message up to this size still fits one record header's
	// length field, which Raw needs.
	maxHelloLen = 0xffff
)

// Extension is one ClientHello extension as sent: its number and its body in
// hex, so a caller can rebuild parameters this package does not decode.
type Extension struct {
	ID   uint16 `json:"id"`
	Data string `json:"data"`
}

// KeyShare is one key_share entry: the group and the length of its key.
type KeyShare struct {
	Group     uint16 `json:"group"`
	KeyLength int    `json:"key_length"`
}

// ECH describes an encrypted_client_hello (0xfe0d) extension. A browser
// without an ECH config for the server sends GREASE ECH, which looks like this
// on the wire; its field sizes are what a client must copy to look the same.
type ECH struct {
	Type          uint8  `json:"type"`
	KDF           uint16 `json:"kdf"`
	AEAD          uint16 `json:"aead"`
	ConfigID      uint8  `json:"config_id"`
	EncLength     int    `json:"enc_length"`
	PayloadLength int    `json:"payload_length"`
}

// TLS is what a ClientHello shows: every list in the order the client sent
// it, GREASE values included (they are removed only where JA3/JA4 say so),
// and the fingerprints computed from it.
type TLS struct {
	// RecordVersion is the version field of the first record header
	// (0x0301 for browsers); Version is the ClientHello's legacy_version.
	RecordVersion uint16 `json:"record_version"`
	Version       uint16 `json:"version"`
	// Records is how many TLS records the ClientHello arrived in.
	Records         int    `json:"records"`
	SessionIDLength int    `json:"session_id_length"`
	ServerName      string `json:"server_name,omitempty"`

	CipherSuites         []uint16    `json:"cipher_suites"`
	CompressionMethods   []uint8     `json:"compression_methods"`
	Extensions           []uint16    `json:"extensions"`
	ExtensionData        []Extension `json:"extension_data"`
	SupportedGroups      []uint16    `json:"supported_groups,omitempty"`
	KeyShares            []KeyShare  `json:"key_shares,omitempty"`
	ECPointFormats       []uint8     `json:"ec_point_formats,omitempty"`
	SignatureAlgorithms  []uint16    `json:"signature_algorithms,omitempty"`
	DelegatedCredentials []uint16    `json:"delegated_credentials,omitempty"`
	ALPN                 []string    `json:"alpn,omitempty"`
	SupportedVersions    []uint16    `json:"supported_versions,omitempty"`
	PSKModes             []uint8     `json:"psk_key_exchange_modes,omitempty"`
	CertCompression      []uint16    `json:"cert_compression_algs,omitempty"`
	// ALPS lists the protocols of the application_settings extension and
	// ALPSCodepoint says which codepoint carried it (17513 old, 17613 new).
	ALPS          []string `json:"alps,omitempty"`
	ALPSCodepoint uint16   `json:"alps_codepoint,omitempty"`
	ECH           *ECH     `json:"ech,omitempty"`
	// RecordSizeLimit is 0 when the extension is absent.
	RecordSizeLimit uint16 `json:"record_size_limit,omitempty"`
	// PaddingLength is the body length of the padding extension, -1 when absent.
	PaddingLength int  `json:"padding_length"`
	StatusRequest bool `json:"status_request"`
	SessionTicket bool `json:"session_ticket"`
	// SessionTicketLength is the length of a ticket offered for resumption.
	SessionTicketLength int  `json:"session_ticket_length,omitempty"`
	PreSharedKey        bool `json:"pre_shared_key"`

	JA3           string `json:"ja3"`
	JA3Hash       string `json:"ja3_hash"`
	JA3Sorted     string `json:"ja3_sorted"`
	JA3SortedHash string `json:"ja3_sorted_hash"`
	JA4           string `json:"ja4"`
	JA4R          string `json:"ja4_r"`

	// Raw is the ClientHello as one TLS record in hex: a 5-byte record
	// header (type 22, RecordVersion, length) then the handshake message. It is
	// what utls's Fingerprinter.FingerprintClientHello accepts, even when the
	// client split the hello over several records.
	Raw string `json:"raw"`
}

// IsGREASE reports whether v is one of the reserved GREASE values of RFC 8701
// (0x0a0a, 0x1a1a, ..., 0xfafa).
func IsGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

// ReadClientHello reads TLS records from r until it holds one whole
// ClientHello handshake message. It returns every byte it read (to be
// replayed to crypto/tls), the handshake message itself, the version of the
// first record header and how many records it took.
func ReadClientHello(r io.Reader) (wire, msg []byte, recordVersion uint16, records int, err error) {
	var hdr [5]byte
	for {
		if _, err = io.ReadFull(r, hdr[:]); err != nil {
			return wire, nil, 0, records, fmt.Errorf("fingerprint: reading record header %d: %w", records+1, err)
		}
		wire = append(wire, hdr[:]...)
		if hdr[0] != recordTypeHandshake {
			return wire, nil, 0, records, fmt.Errorf("%w: record %d has type %d, want %d (handshake)", ErrMalformed, records+1, hdr[0], recordTypeHandshake)
		}
		if records == 0 {
			recordVersion = uint16(hdr[1])<<8 | uint16(hdr[2])
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > maxRecordPayload {
			return wire, nil, 0, records, fmt.Errorf("%w: record %d has length %d, want 1..%d", ErrMalformed, records+1, n, maxRecordPayload)
		}
		start := len(wire)
		wire = append(wire, make([]byte, n)...)
		if _, err = io.ReadFull(r, wire[start:]); err != nil {
			return wire[:start], nil, 0, records, fmt.Errorf("fingerprint: reading record %d (%d bytes): %w", records+1, n, err)
		}
		records++
		msg = append(msg, wire[start:]...)
		if len(msg) < 4 {
			continue
		}
		if msg[0] != handshakeClientHello {
			return wire, nil, 0, records, fmt.Errorf("%w: handshake message type %d, want %d (ClientHello)", ErrMalformed, msg[0], handshakeClientHello)
		}
		want := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
		if want > maxHelloLen {
			return wire, nil, 0, records, fmt.Errorf("%w: ClientHello message of %d bytes exceeds %d", ErrMalformed, want, maxHelloLen)
		}
		if len(msg) >= want {
			return wire, msg[:want], recordVersion, records, nil
		}
	}
}

// ParseClientHello parses a ClientHello given either as TLS records as sent
// on the wire (first byte 22; the hello may span several records) or as the
// bare handshake message (first byte 1), and computes its fingerprints.
// Malformed or truncated input gives an error wrapping ErrMalformed.
func ParseClientHello(data []byte) (*TLS, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty ClientHello", ErrMalformed)
	}
	recordVersion, records := uint16(0x0301), 0
	msg := data
	if data[0] == recordTypeHandshake {
		var err error
		_, msg, recordVersion, records, err = ReadClientHello(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				err = fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			return nil, err
		}
	}
	return newTLS(msg, recordVersion, records)
}

// newTLS parses a ClientHello handshake message that arrived in records
// records, the first with version recordVersion, and fingerprints it.
func newTLS(msg []byte, recordVersion uint16, records int) (*TLS, error) {
	t, err := parseHandshake(msg)
	if err != nil {
		return nil, err
	}
	t.RecordVersion, t.Records = recordVersion, records
	n := len(msg)
	rec := append([]byte{recordTypeHandshake, byte(recordVersion >> 8), byte(recordVersion), byte(n >> 8), byte(n)}, msg...)
	t.Raw = hex.EncodeToString(rec)
	t.computeFingerprints()
	return t, nil
}

// reader walks a byte slice; every read reports truncation instead of
// panicking, naming what it was reading.
type reader struct {
	b   []byte
	off int
}

func (r *reader) errAt(what string, need int) error {
	return fmt.Errorf("%w: truncated reading %s at offset %d (need %d bytes, have %d)", ErrMalformed, what, r.off, need, len(r.b)-r.off)
}

func (r *reader) bytes(n int, what string) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, r.errAt(what, n)
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v, nil
}

func (r *reader) u8(what string) (uint8, error) {
	b, err := r.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	b, err := r.bytes(2, what)
	if err != nil {
		return 0, err
	}
	return uint16(b[0])<<8 | uint16(b[1]), nil
}

func (r *reader) vec8(what string) ([]byte, error) {
	n, err := r.u8(what + " length")
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n), what)
}

func (r *reader) vec16(what string) ([]byte, error) {
	n, err := r.u16(what + " length")
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n), what)
}

func (r *reader) empty() bool { return r.off == len(r.b) }

func u16s(b []byte, what string) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("%w: %s: length %d is odd", ErrMalformed, what, len(b))
	}
	v := make([]uint16, 0, len(b)/2)
	for i := 0; i < len(b); i += 2 {
		v = append(v, uint16(b[i])<<8|uint16(b[i+1]))
	}
	return v, nil
}

func strs(b []byte, what string) ([]string, error) {
	r := &reader{b: b}
	var v []string
	for !r.empty() {
		s, err := r.vec8(what)
		if err != nil {
			return nil, err
		}
		v = append(v, string(s))
	}
	return v, nil
}

// parseHandshake parses a ClientHello handshake message (type, 24-bit length, body).
func parseHandshake(msg []byte) (*TLS, error) {
	r := &reader{b: msg}
	typ, err := r.u8("handshake type")
	if err != nil {
		return nil, err
	}
	if typ != handshakeClientHello {
		return nil, fmt.Errorf("%w: handshake message type %d, want %d (ClientHello)", ErrMalformed, typ, handshakeClientHello)
	}
	l, err := r.bytes(3, "handshake length")
	if err != nil {
		return nil, err
	}
	n := int(l[0])<<16 | int(l[1])<<8 | int(l[2])
	if 4+n > maxHelloLen {
		return nil, fmt.Errorf("%w: ClientHello message of %d bytes exceeds %d", ErrMalformed, 4+n, maxHelloLen)
	}
	body, err := r.bytes(n, "ClientHello body")
	if err != nil {
		return nil, err
	}
	r = &reader{b: body}
	t := &TLS{PaddingLength: -1}
	if t.Version, err = r.u16("legacy_version"); err != nil {
		return nil, err
	}
	if _, err = r.bytes(32, "random"); err != nil {
		return nil, err
	}
	sid, err := r.vec8("session id")
	if err != nil {
		return nil, err
	}
	t.SessionIDLength = len(sid)
	cs, err := r.vec16("cipher suites")
	if err != nil {
		return nil, err
	}
	if t.CipherSuites, err = u16s(cs, "cipher suites"); err != nil {
		return nil, err
	}
	cm, err := r.vec8("compression methods")
	if err != nil {
		return nil, err
	}
	t.CompressionMethods = append([]uint8{}, cm...)
	t.Extensions = []uint16{}
	t.ExtensionData = []Extension{}
	if r.empty() {
		return t, nil // a hello without extensions is legal
	}
	exts, err := r.vec16("extensions")
	if err != nil {
		return nil, err
	}
	if !r.empty() {
		return nil, fmt.Errorf("%w: %d bytes after the extensions", ErrMalformed, len(body)-r.off)
	}
	er := &reader{b: exts}
	for !er.empty() {
		id, err := er.u16("extension type")
		if err != nil {
			return nil, err
		}
		data, err := er.vec16(fmt.Sprintf("extension %d", id))
		if err != nil {
			return nil, err
		}
		t.Extensions = append(t.Extensions, id)
		t.ExtensionData = append(t.ExtensionData, Extension{ID: id, Data: hex.EncodeToString(data)})
		if err := t.parseExtension(id, data); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *TLS) parseExtension(id uint16, data []byte) error {
	r := &reader{b: data}
	var err error
	switch id {
	case extServerName:
		list, err := r.vec16("server_name list")
		if err != nil {
			return err
		}
		lr := &reader{b: list}
		for !lr.empty() {
			typ, err := lr.u8("server_name type")
			if err != nil {
				return err
			}
			name, err := lr.vec16("server_name")
			if err != nil {
				return err
			}
			if typ == 0 && t.ServerName == "" {
				t.ServerName = string(name)
			}
		}
	case extStatusRequest:
		t.StatusRequest = true
	case extSupportedGroups:
		b, err := r.vec16("supported_groups")
		if err != nil {
			return err
		}
		t.SupportedGroups, err = u16s(b, "supported_groups")
		return err
	case extECPointFormats:
		b, err := r.vec8("ec_point_formats")
		if err != nil {
			return err
		}
		t.ECPointFormats = append([]uint8{}, b...)
	case extSignatureAlgorithms:
		b, err := r.vec16("signature_algorithms")
		if err != nil {
			return err
		}
		t.SignatureAlgorithms, err = u16s(b, "signature_algorithms")
		return err
	case extDelegatedCreds:
		b, err := r.vec16("delegated_credentials")
		if err != nil {
			return err
		}
		t.DelegatedCredentials, err = u16s(b, "delegated_credentials")
		return err
	case extALPN:
		b, err := r.vec16("alpn")
		if err != nil {
			return err
		}
		t.ALPN, err = strs(b, "alpn protocol")
		return err
	case extALPSOld, extALPSNew:
		b, err := r.vec16("application_settings")
		if err != nil {
			return err
		}
		t.ALPSCodepoint = id
		t.ALPS, err = strs(b, "application_settings protocol")
		return err
	case extPadding:
		t.PaddingLength = len(data)
	case extCompressCert:
		b, err := r.vec8("compress_certificate")
		if err != nil {
			return err
		}
		t.CertCompression, err = u16s(b, "compress_certificate")
		return err
	case extRecordSizeLimit:
		t.RecordSizeLimit, err = r.u16("record_size_limit")
		return err
	case extSessionTicket:
		t.SessionTicket = true
		t.SessionTicketLength = len(data)
	case extPreSharedKey:
		t.PreSharedKey = true
	case extSupportedVersions:
		b, err := r.vec8("supported_versions")
		if err != nil {
			return err
		}
		t.SupportedVersions, err = u16s(b, "supported_versions")
		return err
	case extPSKModes:
		b, err := r.vec8("psk_key_exchange_modes")
		if err != nil {
			return err
		}
		t.PSKModes = append([]uint8{}, b...)
	case extKeyShare:
		b, err := r.vec16("key_share")
		if err != nil {
			return err
		}
		kr := &reader{b: b}
		for !kr.empty() {
			g, err := kr.u16("key_share group")
			if err != nil {
				return err
			}
			k, err := kr.vec16("key_share key")
			if err != nil {
				return err
			}
			t.KeyShares = append(t.KeyShares, KeyShare{Group: g, KeyLength: len(k)})
		}
	case extECH:
		e := &ECH{}
		if e.Type, err = r.u8("ech type"); err != nil {
			return err
		}
		if e.Type == 0 { // outer ClientHello; an inner one (1) has no more fields
			if e.KDF, err = r.u16("ech kdf"); err != nil {
				return err
			}
			if e.AEAD, err = r.u16("ech aead"); err != nil {
				return err
			}
			if e.ConfigID, err = r.u8("ech config id"); err != nil {
				return err
			}
			enc, err := r.vec16("ech enc")
			if err != nil {
				return err
			}
			payload, err := r.vec16("ech payload")
			if err != nil {
				return err
			}
			e.EncLength, e.PayloadLength = len(enc), len(payload)
		}
		t.ECH = e
	}
	return nil
}

func noGREASE(v []uint16) []uint16 {
	out := make([]uint16, 0, len(v))
	for _, x := range v {
		if !IsGREASE(x) {
			out = append(out, x)
		}
	}
	return out
}

func joinDec(v []uint16) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, "-")
}

func joinHex(v []uint16) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%04x", x)
	}
	return strings.Join(s, ",")
}

func (t *TLS) computeFingerprints() {
	ciphers := noGREASE(t.CipherSuites)
	exts := noGREASE(t.Extensions)
	groups := noGREASE(t.SupportedGroups)
	pf := make([]string, len(t.ECPointFormats))
	for i, f := range t.ECPointFormats {
		pf[i] = strconv.Itoa(int(f))
	}
	ja3 := func(e []uint16) string {
		return strings.Join([]string{strconv.Itoa(int(t.Version)), joinDec(ciphers), joinDec(e), joinDec(groups), strings.Join(pf, "-")}, ",")
	}
	t.JA3 = ja3(exts)
	sum := md5.Sum([]byte(t.JA3))
	t.JA3Hash = hex.EncodeToString(sum[:])
	sorted := slices.Clone(exts)
	slices.Sort(sorted)
	t.JA3Sorted = ja3(sorted)
	sum = md5.Sum([]byte(t.JA3Sorted))
	t.JA3SortedHash = hex.EncodeToString(sum[:])

	// JA4 (FoxIO): the a part, then hashes of the sorted ciphers and of the
	// sorted extensions (without SNI and ALPN) followed by the signature
	// algorithms in the order sent.
	a := "t" + ja4Version(t) + ja4SNI(t) + fmt.Sprintf("%02d%02d", min(len(ciphers), 99), min(len(exts), 99)) + ja4ALPN(t.ALPN)
	sc := slices.Clone(ciphers)
	slices.Sort(sc)
	var se []uint16
	for _, e := range sorted {
		if e != extServerName && e != extALPN {
			se = append(se, e)
		}
	}
	b := joinHex(sc)
	c := joinHex(se)
	if sig := noGREASE(t.SignatureAlgorithms); len(sig) > 0 {
		c += "_" + joinHex(sig)
	}
	t.JA4 = a + "_" + ja4Hash(b, len(sc) == 0) + "_" + ja4Hash(c, len(se) == 0)
	t.JA4R = a + "_" + b + "_" + c
}

func ja4Hash(s string, none bool) string {
	if none {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

func ja4Version(t *TLS) string {
	v := t.Version
	if sv := noGREASE(t.SupportedVersions); len(sv) > 0 {
		v = slices.Max(sv)
	}
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

func ja4SNI(t *TLS) string {
	if slices.Contains(t.Extensions, extServerName) {
		return "d"
	}
	return "i"
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func ja4ALPN(alpn []string) string {
	if len(alpn) == 0 || alpn[0] == "" {
		return "00"
	}
	p := alpn[0]
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return string([]byte{first, last})
	}
	h := hex.EncodeToString([]byte(p))
	return string([]byte{h[0], h[len(h)-1]})
}
