package fingerprint

import (
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ext is one extension of a hand-built ClientHello.
type ext struct {
	id   uint16
	data []byte
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func vec16(b []byte) []byte { return append(be16(uint16(len(b))), b...) }

func vec8(b []byte) []byte { return append([]byte{byte(len(b))}, b...) }

func list16(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, be16(v)...)
	}
	return b
}

func sniExt(name string) ext {
	return ext{extServerName, vec16(append([]byte{0}, vec16([]byte(name))...))}
}

func alpnExt(protos ...string) ext {
	var b []byte
	for _, p := range protos {
		b = append(b, vec8([]byte(p))...)
	}
	return ext{extALPN, vec16(b)}
}

// hello builds a ClientHello handshake message.
func hello(version uint16, ciphers []uint16, exts []ext) []byte {
	body := be16(version)
	body = append(body, make([]byte, 32)...)          // random
	body = append(body, vec8(make([]byte, 32))...)    // session id
	body = append(body, vec16(list16(ciphers...))...) // cipher suites
	body = append(body, 1, 0)                         // compression: null
	if exts != nil {
		var eb []byte
		for _, e := range exts {
			eb = append(eb, be16(e.id)...)
			eb = append(eb, vec16(e.data)...)
		}
		body = append(body, vec16(eb)...)
	}
	n := len(body)
	return append([]byte{handshakeClientHello, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// records wraps msg in TLS records, cutting it after each of the given sizes.
func records(msg []byte, cuts ...int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := len(msg)
		if len(cuts) > 0 {
			n, cuts = min(cuts[0], n), cuts[1:]
		}
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// foxioHello is the Chrome ClientHello of the JA4 specification's example,
// whose JA4 FoxIO publishes: t13d1516h2_8daaf6152771_e5627efa2ab1.
func foxioHello(grease bool) []byte {
	ciphers := []uint16{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035}
	exts := []ext{
		sniExt("example.com"),
		{0x0017, nil},
		{0xff01, []byte{0}},
		{extSupportedGroups, vec16(list16(0x001d, 0x0017, 0x0018))},
		{extECPointFormats, vec8([]byte{0})},
		{extSessionTicket, nil},
		alpnExt("h2", "http/1.1"),
		{extStatusRequest, []byte{1, 0, 0, 0, 0}},
		{extSignatureAlgorithms, vec16(list16(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601))},
		{0x0012, nil},
		{extKeyShare, vec16(append(be16(0x001d), vec16(make([]byte, 32))...))},
		{extPSKModes, vec8([]byte{1})},
		{extSupportedVersions, vec8(list16(0x0304, 0x0303))},
		{extCompressCert, vec8(list16(0x0002))},
		{extALPSOld, vec16(vec8([]byte("h2")))},
		{extPadding, make([]byte, 17)},
	}
	if grease {
		ciphers = append([]uint16{0x3a3a}, ciphers...)
		exts = append([]ext{{0xdada, nil}}, exts...)
		exts = append(exts, ext{0x8a8a, []byte{0}})
		exts[4] = ext{extSupportedGroups, vec16(list16(0x6a6a, 0x001d, 0x0017, 0x0018))}
		exts[13] = ext{extSupportedVersions, vec8(list16(0x2a2a, 0x0304, 0x0303))}
	}
	return hello(0x0303, ciphers, exts)
}

const (
	foxioJA4  = "t13d1516h2_8daaf6152771_e5627efa2ab1"
	foxioJA4R = "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
)

func TestParseClientHello(t *testing.T) {
	plain := foxioHello(false)
	greased := foxioHello(true)
	// JA3's own documentation gives this string and hash.
	ja3Doc := hello(0x0301,
		[]uint16{47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4},
		[]ext{{0, vec16(nil)}, {10, vec16(list16(23, 24, 25))}, {11, vec8([]byte{0})}})
	tests := []struct {
		name    string
		in      []byte
		records int
		ja4     string
		ja4r    string
		ja3     string
		ja3Hash string
	}{
		{name: "handshake message", in: plain, ja4: foxioJA4, ja4r: foxioJA4R},
		{name: "one record", in: records(plain), records: 1, ja4: foxioJA4, ja4r: foxioJA4R},
		{name: "split over three records", in: records(plain, 3, 100), records: 3, ja4: foxioJA4, ja4r: foxioJA4R},
		{name: "record header split from length", in: records(plain, 2), records: 2, ja4: foxioJA4, ja4r: foxioJA4R},
		{name: "GREASE ignored", in: records(greased), records: 1, ja4: foxioJA4, ja4r: foxioJA4R},
		{name: "JA3 documentation example", in: ja3Doc,
			ja3: "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0", ja3Hash: "ada70206e40642a3e4461f35503241d5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClientHello(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Records != tc.records {
				t.Errorf("Records = %d, want %d", got.Records, tc.records)
			}
			if tc.ja4 != "" && (got.JA4 != tc.ja4 || got.JA4R != tc.ja4r) {
				t.Errorf("JA4 = %s\n JA4_r %s\nwant %s\n      %s", got.JA4, got.JA4R, tc.ja4, tc.ja4r)
			}
			if tc.ja3 != "" && (got.JA3 != tc.ja3 || got.JA3Hash != tc.ja3Hash) {
				t.Errorf("JA3 = %s %s, want %s %s", got.JA3, got.JA3Hash, tc.ja3, tc.ja3Hash)
			}
			// Raw is one record that parses to the same hello.
			raw, err := hex.DecodeString(got.Raw)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseClientHello(raw)
			if err != nil {
				t.Fatalf("reparsing Raw: %v", err)
			}
			if again.Records != 1 || again.JA4 != got.JA4 || again.JA3 != got.JA3 {
				t.Errorf("Raw reparses to %d records, %s %s; want 1, %s %s", again.Records, again.JA4, again.JA3, got.JA4, got.JA3)
			}
		})
	}
}

func TestParseClientHelloFields(t *testing.T) {
	got, err := ParseClientHello(records(foxioHello(true)))
	if err != nil {
		t.Fatal(err)
	}
	// GREASE stays in the lists as sent; only the fingerprints drop it.
	if got.CipherSuites[0] != 0x3a3a || got.Extensions[0] != 0xdada || got.Extensions[len(got.Extensions)-1] != 0x8a8a {
		t.Errorf("GREASE not kept in order: ciphers %v extensions %v", got.CipherSuites[:2], got.Extensions)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"server name", got.ServerName == "example.com"},
		{"alpn", slices.Equal(got.ALPN, []string{"h2", "http/1.1"})},
		{"alps", slices.Equal(got.ALPS, []string{"h2"}) && got.ALPSCodepoint == extALPSOld},
		{"groups", slices.Equal(got.SupportedGroups, []uint16{0x6a6a, 0x001d, 0x0017, 0x0018})},
		{"versions", slices.Equal(got.SupportedVersions, []uint16{0x2a2a, 0x0304, 0x0303})},
		{"key share", slices.Equal(got.KeyShares, []KeyShare{{0x001d, 32}})},
		{"cert compression", slices.Equal(got.CertCompression, []uint16{2})},
		{"psk modes", slices.Equal(got.PSKModes, []uint8{1})},
		{"padding", got.PaddingLength == 17},
		{"session ticket", got.SessionTicket && got.SessionTicketLength == 0},
		{"no psk", !got.PreSharedKey},
		{"status request", got.StatusRequest},
		{"no ech", got.ECH == nil},
		{"ext data", len(got.ExtensionData) == len(got.Extensions) && got.ExtensionData[1] == Extension{0, hex.EncodeToString(sniExt("example.com").data)}},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s wrong: %+v", c.name, got)
		}
	}
}

func TestParseClientHelloExtensions(t *testing.T) {
	ech := append([]byte{0}, list16(1, 1)...)
	ech = append(ech, 7)
	ech = append(ech, vec16(make([]byte, 32))...)
	ech = append(ech, vec16(make([]byte, 144))...)
	msg := hello(0x0303, []uint16{0x1301}, []ext{
		{extECH, ech},
		{extRecordSizeLimit, be16(16385)},
		{extPreSharedKey, []byte{0, 0}},
		{extSessionTicket, make([]byte, 80)},
		{extDelegatedCreds, vec16(list16(0x0403))},
		{extALPSNew, vec16(vec8([]byte("h2")))},
	})
	got, err := ParseClientHello(msg)
	if err != nil {
		t.Fatal(err)
	}
	wantECH := ECH{Type: 0, KDF: 1, AEAD: 1, ConfigID: 7, EncLength: 32, PayloadLength: 144}
	if got.ECH == nil || *got.ECH != wantECH {
		t.Errorf("ECH = %+v, want %+v", got.ECH, wantECH)
	}
	if got.RecordSizeLimit != 16385 || !got.PreSharedKey || got.SessionTicketLength != 80 ||
		!slices.Equal(got.DelegatedCredentials, []uint16{0x0403}) || got.ALPSCodepoint != extALPSNew || got.PaddingLength != -1 {
		t.Errorf("extensions parsed wrong: %+v", got)
	}
	// No SNI and no ALPN: "i" and "00"; no signature algorithms: no "_" in the c part.
	if !strings.HasPrefix(got.JA4R, "t12i010600_1301_") || strings.Count(got.JA4R, "_") != 2 {
		t.Errorf("JA4_r = %s", got.JA4R)
	}
}

func TestJA4ALPN(t *testing.T) {
	tests := []struct {
		alpn []string
		want string
	}{
		{nil, "00"},
		{[]string{""}, "00"},
		{[]string{"h2", "http/1.1"}, "h2"},
		{[]string{"http/1.1"}, "h1"},
		{[]string{"h3"}, "h3"},
		{[]string{"x"}, "xx"},
		{[]string{"\xab\xcd"}, "ad"}, // not alphanumeric: first and last hex digit
	}
	for _, tc := range tests {
		if got := ja4ALPN(tc.alpn); got != tc.want {
			t.Errorf("ja4ALPN(%q) = %s, want %s", tc.alpn, got, tc.want)
		}
	}
}

func TestIsGREASE(t *testing.T) {
	for _, v := range []uint16{0x0a0a, 0x1a1a, 0xfafa} {
		if !IsGREASE(v) {
			t.Errorf("IsGREASE(%#04x) = false", v)
		}
	}
	for _, v := range []uint16{0x0a1a, 0x0000, 0x1301, 0xfe0d, 0x0b0b} {
		if IsGREASE(v) {
			t.Errorf("IsGREASE(%#04x) = true", v)
		}
	}
}

func TestParseClientHelloErrors(t *testing.T) {
	msg := foxioHello(false)
	bad := func(f func(b []byte) []byte) []byte { return f(slices.Clone(msg)) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not handshake record", []byte{0x17, 3, 1, 0, 1, 1}, "type 23"},
		{"record length zero", []byte{0x16, 3, 1, 0, 0}, "length 0"},
		{"record too long", []byte{0x16, 3, 1, 0x40, 0x01}, "length 16385"},
		{"truncated record", records(msg)[:100], "reading record 1"},
		{"not a ClientHello", records(append([]byte{2}, msg[1:]...)), "type 2"},
		{"bare message not a ClientHello", append([]byte{2}, msg[1:]...), "type 2"},
		{"hello too long", records([]byte{1, 1, 0, 0, 0}), "exceeds"},
		{"odd cipher suites", bad(func(b []byte) []byte {
			// cipher suite length sits after type(1) len(3) version(2) random(32) sid(1+32).
			b[4+2+32+1+32+1]--
			return b
		}), "cipher suites"},
		{"trailing bytes", bad(func(b []byte) []byte {
			b = append(b, 0)
			b[3]++
			return b
		}), "after the extensions"},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), "type 71"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClientHello(tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
	// Every truncation of a valid hello is an error, never a panic.
	for _, in := range [][]byte{msg, records(msg, 50)} {
		for i := range len(in) {
			if _, err := ParseClientHello(in[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseClientHello of %d of %d bytes: err = %v, want ErrMalformed", i, len(in), err)
			}
		}
	}
}

// TestCapturesConsistent checks the committed browser captures: each
// connection's raw ClientHello gives the JA4 and JA3 recorded next to it, and
// Chrome shuffles its extensions while Firefox does not.
func TestCapturesConsistent(t *testing.T) {
	for _, tc := range []struct {
		file    string
		ja4     string
		akamai  string
		shuffle bool
	}{
		{"chromium-156-linux.json", "t13d1517h2_8daaf6152771_cb7bf5808d99", "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p", true},
		{"firefox-153-esr-linux.json", "t13d1617h2_86a278354501_3cbfd9057e0d", "1:65536;2:0;4:131072;5:16384|12517377|0|m,p,a,s", false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := LoadCapture(strings.TrimSuffix(tc.file, ".json"))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Connections) < 2 {
				t.Fatalf("%d connections, want at least 2", len(c.Connections))
			}
			for i, r := range c.Connections {
				raw, err := hex.DecodeString(r.TLS.Raw)
				if err != nil {
					t.Fatal(err)
				}
				p, err := ParseClientHello(raw)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				if p.JA4 != r.TLS.JA4 || p.JA3 != r.TLS.JA3 || p.JA3SortedHash != r.TLS.JA3SortedHash || r.TLS.JA4 != tc.ja4 {
					t.Errorf("connection %d: parsed %s %s, recorded %s %s, want JA4 %s", i, p.JA4, p.JA3, r.TLS.JA4, r.TLS.JA3, tc.ja4)
				}
				if r.HTTP2 == nil || r.HTTP2.Akamai != tc.akamai {
					t.Errorf("connection %d: HTTP/2 %+v, want akamai %s", i, r.HTTP2, tc.akamai)
				}
				if d := Compare(c.Connections[0], r); len(d) > 0 {
					t.Errorf("connection %d differs from connection 0: %v", i, d)
				}
			}
			if len(c.HTTP1Connections) == 0 {
				t.Fatal("no HTTP/1.1 connection")
			}
			for i, r := range c.HTTP1Connections {
				if r.HTTP1 == nil || r.Protocol != "http/1.1" || r.TLS.JA4 != tc.ja4 || len(r.HTTP1.HeaderOrder) < 5 || r.HTTP1.HeaderOrder[0] != "Host" {
					t.Errorf("HTTP/1.1 connection %d: %s %s %+v", i, r.Protocol, r.TLS.JA4, r.HTTP1)
				}
			}
			if c.ExtensionOrderChanges != tc.shuffle {
				t.Errorf("ExtensionOrderChanges = %t, want %t", c.ExtensionOrderChanges, tc.shuffle)
			}
		})
	}
}

func TestReadCaptureErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"bad.json": "{", "empty.json": `{"connections":[]}`} {
		if err := os.WriteFile(dir+"/"+name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadCapture(dir + "/" + name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("ReadCapture(%s) = %v, want an error naming the file", name, err)
		}
	}
	if _, err := ReadCapture(dir + "/missing.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadCapture(missing) = %v, want os.ErrNotExist", err)
	}
	if _, err := LoadCapture("no-such-browser"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCapture(no-such-browser) = %v, want os.ErrNotExist", err)
	}
}
