package fingerprint

import (
	"encoding/hex"
	"net"
	"testing"

	utls "github.com/bogdanfinn/utls"
)

// TestUTLSReplaysCaptures checks that Raw is what utls's Fingerprinter
// accepts, and that a utls client built from a captured Chromium or Firefox
// hello shows the server the captured JA4 and sorted JA3.
func TestUTLSReplaysCaptures(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		file      string
		strictErr bool
	}{
		{"chromium-156-linux.json", true},
		{"firefox-153-esr-linux.json", false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := ReadCapture("../../testdata/fingerprints/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			want := c.Connections[0].TLS
			raw, err := hex.DecodeString(want.Raw)
			if err != nil {
				t.Fatal(err)
			}
			// Strictly, utls v1.7.4-barnius does not know Chromium 156's
			// extension 51764 (0xca34, trust anchor identifiers); with blunt
			// mimicry it copies it as a generic extension.
			_, err = (&utls.Fingerprinter{}).FingerprintClientHello(raw)
			if (err != nil) != tc.strictErr {
				t.Errorf("strict FingerprintClientHello(Raw): err = %v, want error %t", err, tc.strictErr)
			}
			spec, err := (&utls.Fingerprinter{AllowBluntMimicry: true}).FingerprintClientHello(raw)
			if err != nil {
				t.Fatalf("FingerprintClientHello(Raw): %v", err)
			}
			if len(spec.CipherSuites) != len(want.CipherSuites) || len(spec.Extensions) != len(want.Extensions) {
				t.Errorf("spec has %d ciphers, %d extensions; capture %d, %d", len(spec.CipherSuites), len(spec.Extensions), len(want.CipherSuites), len(want.Extensions))
			}
			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			uc := utls.UClient(conn, &utls.Config{ServerName: "localhost", RootCAs: s.RootCAs()}, utls.HelloCustom, false, false, false)
			if err := uc.ApplyPreset(spec); err != nil {
				t.Fatalf("ApplyPreset: %v", err)
			}
			if err := uc.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			hellos := s.Hellos()
			got := hellos[len(hellos)-1]
			if got.JA4 != want.JA4 || got.JA3SortedHash != want.JA3SortedHash {
				t.Errorf("utls from the capture: JA4 %s JA3 sorted %s; want %s %s\n got %s\nwant %s", got.JA4, got.JA3SortedHash, want.JA4, want.JA3SortedHash, got.JA4R, want.JA4R)
			}
		})
	}
}
