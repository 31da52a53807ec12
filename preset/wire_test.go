package preset

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	utls "github.com/bogdanfinn/utls"
)

// chrome returns the shipped Chrome identity, for tests to derive from.
func chrome(t testing.TB) *Preset {
	t.Helper()
	p, err := Lookup("chrome-156-linux")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWireValidation(t *testing.T) {
	c := chrome(t)
	ok := []Header{{"User-Agent", "test/1.0"}}
	h2 := func(f func(*HTTP2)) *HTTP2 {
		h := *c.HTTP2
		f(&h)
		return &h
	}
	for _, tc := range []struct {
		name string
		p    Preset
		want string
	}{
		{"tls without http2", Preset{Name: "x", Headers: ok, TLS: c.TLS}, "tls and http2 go together"},
		{"http2 without tls", Preset{Name: "x", Headers: ok, HTTP2: c.HTTP2}, "tls and http2 go together"},
		{"empty tls", Preset{Name: "x", Headers: ok, TLS: &TLS{}, HTTP2: c.HTTP2}, "tls: neither clientHello nor spec is set"},
		{"both hello and spec", Preset{Name: "x", Headers: ok, TLS: &TLS{ClientHello: c.TLS.ClientHello, Spec: []byte(`{}`)}, HTTP2: c.HTTP2}, "clientHello and spec are both set"},
		{"garbage hello", Preset{Name: "x", Headers: ok, TLS: &TLS{ClientHello: []byte{0x16, 3, 1, 0, 2, 1, 0}}, HTTP2: c.HTTP2}, "tls.clientHello: "},
		{"bad spec", Preset{Name: "x", Headers: ok, TLS: &TLS{Spec: []byte(`{"cipher_suites":["NOPE"]}`)}, HTTP2: c.HTTP2}, "tls.spec: "},
		{"setting id 0", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.Settings = []Setting{{0, 1}} })}, "http2.settings[0]: identifier 0 is not a setting"},
		{"setting twice", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.Settings = []Setting{{1, 1}, {1, 2}} })}, "http2.settings[1]: setting 1 appears twice"},
		{"push 2", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.Settings = []Setting{{2, 2}} })}, "ENABLE_PUSH is 2"},
		{"small frame", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.Settings = []Setting{{5, 100}} })}, "MAX_FRAME_SIZE 100"},
		{"window", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.WindowUpdate = 1 << 31 })}, "http2.windowUpdate: 2147483648"},
		{"no window update", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.WindowUpdate = 0 })}, "http2.windowUpdate: 0 is outside"},
		{"weight 0", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.HeadersPriority = &Priority{Weight: 0} })}, "http2.headersPriority.weight: 0 is outside 1..256"},
		{"even stream", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) {
			h.Priorities = []StreamPriority{{StreamID: 2, Priority: Priority{Weight: 1}}}
		})}, "http2.priorities[0].streamID: 2"},
		{"pseudo missing", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) { h.PseudoHeaderOrder = []string{":method"} })}, "http2.pseudoHeaderOrder"},
		{"pseudo twice", Preset{Name: "x", Headers: ok, TLS: c.TLS, HTTP2: h2(func(h *HTTP2) {
			h.PseudoHeaderOrder = []string{":method", ":method", ":scheme", ":path"}
		})}, `http2.pseudoHeaderOrder[1]: ":method"`},
		{"order not lowercase", Preset{Name: "x", Headers: ok, HeaderOrder: []string{"User-Agent"}}, `headerOrder[0] "User-Agent" is not a lowercase HTTP token`},
		{"order twice", Preset{Name: "x", Headers: ok, HeaderOrder: []string{"user-agent", "user-agent"}}, `headerOrder[1] "user-agent" appears twice`},
		{"order lacks a header", Preset{Name: "x", Headers: ok, HeaderOrder: []string{"accept"}}, `header "User-Agent" is missing from headerOrder`},
		{"omit not lowercase", Preset{Name: "x", Headers: ok, OmitOnHTTP1: []string{"TE"}}, `omitOnHTTP1[0] "TE"`},
		{"websocket order not a token", Preset{Name: "x", Headers: ok, WebSocket: &WebSocket{HeaderOrder: []string{"Host", "Bad Name"}}}, `webSocket.headerOrder[1] "Bad Name"`},
		{"websocket omit not lowercase", Preset{Name: "x", Headers: ok, WebSocket: &WebSocket{Omit: []string{"Accept"}}}, `webSocket.omit[0] "Accept"`},
		{"websocket header value", Preset{Name: "x", Headers: ok, WebSocket: &WebSocket{Headers: []Header{{"Pragma", "a\r\nb"}}}}, `webSocket.headers[0] "Pragma"`},
		{"insecure omit not a token", Preset{Name: "x", Headers: ok, OmitOnInsecure: []string{"sec-fetch-site", "sec fetch"}}, `omitOnInsecure[1] "sec fetch"`},
		{"insecure encoding with a line break", Preset{Name: "x", Headers: ok, InsecureAcceptEncoding: "gzip\r\nX: 1"}, "insecureAcceptEncoding has byte 0x0d at offset 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Register(tc.p)
			if !errors.Is(err, ErrInvalidPreset) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Register: %v, want ErrInvalidPreset containing %q", err, tc.want)
			}
			if _, err := Lookup(tc.p.Name); err == nil {
				t.Errorf("a preset that failed validation was registered")
			}
		})
	}
}

func TestAkamai(t *testing.T) {
	for name, want := range map[string]string{
		"chrome-156-linux":      "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p",
		"firefox-153-esr-linux": "1:65536;2:0;4:131072;5:16384|12517377|0|m,p,a,s",
	} {
		p, _ := Lookup(name)
		if got := p.HTTP2.Akamai(); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	h := HTTP2{WindowUpdate: 1, PseudoHeaderOrder: []string{":method", ":path", ":authority", ":scheme"},
		Priorities: []StreamPriority{{StreamID: 3, Priority: Priority{DependsOn: 0, Weight: 201}}, {StreamID: 5, Priority: Priority{Exclusive: true, Weight: 101}}}}
	if got, want := h.Akamai(), "|1|3:0:0:201,5:1:0:101|m,p,a,s"; got != want {
		t.Errorf("priorities: %s, want %s", got, want)
	}
}

// TestNewSpecIsFresh: every connection gets its own spec, and a shuffling
// preset's order is not the capture's every time.
func TestNewSpecIsFresh(t *testing.T) {
	c := chrome(t)
	a, err := c.TLS.NewSpec()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.TLS.NewSpec()
	// Compared through an extension with state: zero-size ones (SCT, for
	// one) may share an address however they were made, and the shuffle
	// puts any of them first.
	alpn := func(s *utls.ClientHelloSpec) *utls.ALPNExtension {
		for _, e := range s.Extensions {
			if x, ok := e.(*utls.ALPNExtension); ok {
				return x
			}
		}
		return nil
	}
	if &a.Extensions[0] == &b.Extensions[0] || alpn(a) == nil || alpn(a) == alpn(b) {
		t.Error("two specs share their extensions")
	}
	if len(a.Extensions) != len(b.Extensions) {
		t.Errorf("%d and %d extensions", len(a.Extensions), len(b.Extensions))
	}
}

func TestParse(t *testing.T) {
	p, err := Parse([]byte(`{"name":"my-chrome","browser":"chrome","version":"156","platform":"linux",
		"headers":[["User-Agent","mine/1"],["Accept","*/*"]],"wire":"chrome"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Fingerprinted() || p.HTTP2.Akamai() != chrome(t).HTTP2.Akamai() {
		t.Errorf("wire chrome not applied: %+v", p.HTTP2)
	}
	if err := Register(p); err != nil {
		t.Fatal(err)
	}
	got, _ := Lookup("my-chrome")
	if w, _ := got.WireName("User-Agent"); w != "User-Agent" || got.Order()[0] != "host" {
		t.Errorf("registered preset: wire name %q, order %q", w, got.Order())
	}

	hello := hex.EncodeToString(chrome(t).TLS.ClientHello)
	for _, tc := range []struct{ data, want string }{
		{`{"name":"x","headers":[],"wire":"opera"}`, `wire "opera": no such identity`},
		{`{"name":"x","headers":[],"wire":"../x"}`, `wire`},
		{`{"name":"x","headers":[],"wire":"chrome","headerOrder":["a"]}`, "give either wire or"},
		{`{"name":"x","headers":[],"wire":"chrome","webSocket":{"omit":["accept"]}}`, "give either wire or"},
		{`{"name":"x","headers":[],"wire":"chrome","insecureAcceptEncoding":"gzip"}`, "give either wire or"},
		{`{"name":"x","headers":[],"webSocket":{"headers":[["Pragma"]]}}`, "webSocket.headers[0] has 1 elements"},
		{`{"name":"x","headers":[],"tls":{"clientHello":"zz"},"http2":{}}`, "tls.clientHello: not hex"},
		{`{"name":"x","headers":[],"tls":{"clientHello":"` + hello + `"},"http2":{"settings":[[70000,1]]}}`, "http2.settings[0]: identifier 70000"},
		{`{"name":"x","headers":[],"tls":{"clientHello":"` + hello + `"},"http2":{"settings":[[1,1]],"pseudoHeaderOrder":[":method",":path",":authority",":scheme"]},"extra":1}`, `unknown field "extra"`},
	} {
		if _, err := Parse([]byte(tc.data)); !errors.Is(err, ErrInvalidPreset) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%.60s...) = %v, want ErrInvalidPreset containing %q", tc.data, err, tc.want)
		}
	}
}

// TestRegisterCopiesWire: changing the caller's TLS or HTTP/2 after
// Register does not change the registered preset.
func TestRegisterCopiesWire(t *testing.T) {
	c := chrome(t)
	tl := *c.TLS
	tl.ClientHello = append([]byte(nil), c.TLS.ClientHello...)
	h := *c.HTTP2
	h.Settings = append([]Setting(nil), c.HTTP2.Settings...)
	p := Preset{Name: "copy-test", Headers: []Header{{"User-Agent", "x"}}, TLS: &tl, HTTP2: &h}
	if err := Register(p); err != nil {
		t.Fatal(err)
	}
	tl.ClientHello[0] = 0
	h.Settings[0].Value = 7
	got, _ := Lookup("copy-test")
	if got.TLS.ClientHello[0] != 0x16 || got.HTTP2.Settings[0].Value == 7 {
		t.Error("Register kept the caller's slices")
	}
}

// FuzzParse: any input is a preset or an error wrapping ErrInvalidPreset,
// never a panic.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"presets/chrome-156-linux.json", "presets/firefox-153-esr-linux.json", "presets/go.json"} {
		data, err := builtinFS.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPreset) {
				t.Fatalf("error %v does not wrap ErrInvalidPreset", err)
			}
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("Parse accepted a preset that fails validation: %v", err)
		}
	})
}
