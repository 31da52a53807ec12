package preset

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// headerOrder is the order in which each browser sends its navigation headers.
var headerOrder = map[string][]string{
	"chrome": {
		"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "Upgrade-Insecure-Requests",
		"User-Agent", "Accept", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-User",
		"Sec-Fetch-Dest", "Accept-Encoding", "Accept-Language", "Priority",
	},
	"firefox": {
		"User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Upgrade-Insecure-Requests",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Priority",
	},
	"safari": {
		"Sec-Fetch-Dest", "User-Agent", "Accept", "Sec-Fetch-Site", "Sec-Fetch-Mode",
		"Accept-Language", "Priority", "Accept-Encoding",
	},
}

// captured names the presets copied field for field from a browser
// captured on this machine (make fingerprints); package session's
// TestPresetsMatchCaptures checks them against the captures, so the
// rules below, written for presets assembled by hand, leave them out.
var captured = map[string]bool{"chrome-156-linux": true, "firefox-153-esr-linux": true}

// handBuilt reports whether the consistency rules apply to p: a browser
// preset not copied from a capture.
func handBuilt(p *Preset) bool { return p.Browser != "go" && !captured[p.Name] }

// acceptEncoding is what each browser offers.
var acceptEncoding = map[string]string{
	"chrome":  "gzip, deflate, br, zstd",
	"firefox": "gzip, deflate, br, zstd", // Firefox 133 and later
	"safari":  "gzip, deflate, br",
}

// uaPlatform is the platform part of each browser's User-Agent.
var uaPlatform = map[string]map[string]string{
	"chrome": {
		"windows": "(Windows NT 10.0; Win64; x64)",
		"macos":   "(Macintosh; Intel Mac OS X 10_15_7)",
		"android": "(Linux; Android 10; K)",
	},
	"firefox": {
		"windows": "(Windows NT 10.0; Win64; x64; rv:",
		"linux":   "(X11; Linux x86_64; rv:",
		"macos":   "(Macintosh; Intel Mac OS X 10.15; rv:",
	},
	"safari": {
		"macos": "(Macintosh; Intel Mac OS X 10_15_7)",
		"ios":   "(iPhone; CPU iPhone OS 18_6 like Mac OS X)",
	},
}

// chPlatform is Chrome's sec-ch-ua-platform for each platform.
var chPlatform = map[string]string{
	"windows": `"Windows"`,
	"macos":   `"macOS"`,
	"android": `"Android"`,
	"linux":   `"Linux"`,
}

// chromeBrands computes Chrome's sec-ch-ua for a major version the way
// Chromium does (components/embedder_support/user_agent_utils.cc): the
// GREASE brand, its version and the order of the three brands are all
// picked by the major version.
func chromeBrands(major int) string {
	chars := []string{" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_"}
	versions := []string{"8", "99", "24"}
	orders := [6][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	o := orders[major%6]
	var list [3]string
	list[o[0]] = fmt.Sprintf(`"Not%sA%sBrand";v="%s"`, chars[major%11], chars[(major+1)%11], versions[major%3])
	list[o[1]] = fmt.Sprintf(`"Chromium";v="%d"`, major)
	list[o[2]] = fmt.Sprintf(`"Google Chrome";v="%d"`, major)
	return strings.Join(list[:], ", ")
}

// TestChromeBrandsMatchesRealChrome pins chromeBrands to values real Chrome
// releases sent, so the consistency test below checks against Chrome and not
// against itself.
func TestChromeBrandsMatchesRealChrome(t *testing.T) {
	for _, tc := range []struct {
		major int
		want  string
	}{
		{112, `"Chromium";v="112", "Google Chrome";v="112", "Not:A-Brand";v="99"`},
		{120, `"Not_A Brand";v="8", "Chromium";v="120", "Google Chrome";v="120"`},
		{124, `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`},
		{131, `"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`},
		{138, `"Not)A;Brand";v="8", "Chromium";v="138", "Google Chrome";v="138"`},
		{146, `"Chromium";v="146", "Not-A.Brand";v="24", "Google Chrome";v="146"`},
	} {
		if got := chromeBrands(tc.major); got != tc.want {
			t.Errorf("chromeBrands(%d) = %s, want %s", tc.major, got, tc.want)
		}
	}
}

func get(p *Preset, name string) (string, bool) {
	for _, h := range p.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func builtinFiles(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(builtinFS, "presets/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d embedded preset files: %v", len(files), files)
	}
	return files
}

func TestEmbeddedFilesParseAndValidate(t *testing.T) {
	for _, file := range builtinFiles(t) {
		t.Run(file, func(t *testing.T) {
			data, err := builtinFS.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p, aliases, err := parseFile(file, data)
			if err != nil {
				t.Fatalf("parseFile: %v", err)
			}
			if err := p.validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
			if p.Browser != "go" {
				if _, ok := headerOrder[p.Browser]; !ok {
					t.Errorf("browser %q is not one of chrome, firefox, safari", p.Browser)
				}
				if _, ok := uaPlatform[p.Browser][p.Platform]; !ok && handBuilt(p) {
					t.Errorf("platform %q is not known for %s", p.Platform, p.Browser)
				}
				major := strings.SplitN(p.Version, ".", 2)[0]
				want := p.Browser + "-" + major + "-" + p.Platform
				if esr := p.Browser + "-" + major + "-esr-" + p.Platform; p.Name != want && p.Name != esr {
					t.Errorf("name %q, want %q or %q (browser-major[-esr]-platform)", p.Name, want, esr)
				}
				if !p.Fingerprinted() {
					t.Errorf("browser preset %s has no TLS and HTTP/2 identity", p.Name)
				}
			}
			got, err := Lookup(p.Name)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", p.Name, err)
			}
			if got.Name != p.Name || got.Browser != p.Browser || got.Version != p.Version ||
				got.Platform != p.Platform || got.Mobile != p.Mobile || !slices.Equal(got.Headers, p.Headers) {
				t.Errorf("Lookup(%q) = %+v, want %+v", p.Name, got, p)
			}
			for _, a := range aliases {
				if ap, err := Lookup(a); err != nil || ap != got {
					t.Errorf("Lookup(alias %q) = %v, %v; want the preset %q", a, ap, err, p.Name)
				}
			}
		})
	}
}

func TestParseFileRejects(t *testing.T) {
	for _, tc := range []struct {
		name, file, data, want string
	}{
		{"bad JSON", "presets/x.json", `{"name":`, "unexpected EOF"},
		{"unknown field", "presets/x.json", `{"name":"x","extra":1}`, `unknown field "extra"`},
		{"trailing data", "presets/x.json", `{"name":"x","headers":[["A","b"]]} {}`, "data after the JSON object"},
		{"name differs from file", "presets/x.json", `{"name":"y","headers":[["A","b"]]}`, `name "y" does not match the file name (want "x")`},
		{"header not a pair", "presets/x.json", `{"name":"x","headers":[["A"]]}`, "header 0 has 1 elements"},
		{"invalid header", "presets/x.json", `{"name":"x","headers":[["A B","b"]]}`, `header name "A B" has byte 0x20`},
		{"invalid alias", "presets/x.json", `{"name":"x","aliases":["a b"],"headers":[["A","b"]]}`, `alias "a b" has byte 0x20`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseFile(tc.file, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseFile(%s) = %v, want an error containing %q", tc.data, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.file+": ") {
				t.Errorf("error %q does not name the file %s", err, tc.file)
			}
		})
	}
}

func TestPresetsAreSelfConsistent(t *testing.T) {
	for _, file := range builtinFiles(t) {
		name := strings.TrimSuffix(strings.TrimPrefix(file, "presets/"), ".json")
		t.Run(name, func(t *testing.T) {
			p, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if !handBuilt(p) {
				t.Skipf("%s is checked against its capture (package session)", name)
			}
			var names []string
			for _, h := range p.Headers {
				names = append(names, h.Name)
			}
			if want := headerOrder[p.Browser]; !slices.Equal(names, want) {
				t.Errorf("headers in order\n%q\nwant %s's\n%q", names, p.Browser, want)
			}
			if got, want := p.AcceptEncoding(), acceptEncoding[p.Browser]; got != want {
				t.Errorf("Accept-Encoding %q, want %q", got, want)
			}
			ua, _ := get(p, "User-Agent")
			if !strings.HasPrefix(ua, "Mozilla/5.0 "+uaPlatform[p.Browser][p.Platform]) {
				t.Errorf("User-Agent %q does not start with the %s %s platform %q", ua, p.Browser, p.Platform, uaPlatform[p.Browser][p.Platform])
			}
			major, err := strconv.Atoi(strings.SplitN(p.Version, ".", 2)[0])
			if err != nil {
				t.Fatalf("version %q: %v", p.Version, err)
			}
			switch p.Browser {
			case "chrome":
				checkChrome(t, p, ua, major)
			case "firefox":
				if want := fmt.Sprintf("; rv:%d.0) Gecko/20100101 Firefox/%d.0", major, major); !strings.HasSuffix(ua, want) {
					t.Errorf("User-Agent %q does not end with %q", ua, want)
				}
				if p.Mobile {
					t.Errorf("desktop Firefox preset marked mobile")
				}
				// Firefox 147 changed its q-values to match Chrome's (Mozilla bug 2000765).
				wantLang := "en-US,en;q=0.5"
				if major >= 147 {
					wantLang = "en-US,en;q=0.9"
				}
				if got, _ := get(p, "Accept-Language"); got != wantLang {
					t.Errorf("Accept-Language %q, want %q for Firefox %d", got, wantLang, major)
				}
			case "safari":
				want := fmt.Sprintf(") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%s Safari/605.1.15", p.Version)
				if p.Mobile {
					want = fmt.Sprintf(") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%s Mobile/15E148 Safari/604.1", p.Version)
				}
				if !strings.HasSuffix(ua, want) {
					t.Errorf("User-Agent %q does not end with %q", ua, want)
				}
				if p.Mobile != (p.Platform == "ios") {
					t.Errorf("mobile %v on platform %s", p.Mobile, p.Platform)
				}
			}
			if p.Browser != "chrome" {
				for _, h := range p.Headers {
					if strings.HasPrefix(strings.ToLower(h.Name), "sec-ch-") {
						t.Errorf("%s sends no client hints, but the preset has %s", p.Browser, h.Name)
					}
				}
			}
			for _, want := range [][2]string{
				{"Sec-Fetch-Site", "none"}, {"Sec-Fetch-Mode", "navigate"}, {"Sec-Fetch-Dest", "document"},
			} {
				if got, _ := get(p, want[0]); got != want[1] {
					t.Errorf("%s = %q, want %q", want[0], got, want[1])
				}
			}
		})
	}
}

func checkChrome(t *testing.T, p *Preset, ua string, major int) {
	t.Helper()
	suffix := fmt.Sprintf(" AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", major)
	if p.Mobile {
		suffix = fmt.Sprintf(" AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Mobile Safari/537.36", major)
	}
	if !strings.HasSuffix(ua, suffix) {
		t.Errorf("User-Agent %q does not end with %q", ua, suffix)
	}
	if got, want := mustGet(t, p, "sec-ch-ua"), chromeBrands(major); got != want {
		t.Errorf("sec-ch-ua %s, want %s (Chrome %d)", got, want, major)
	}
	wantMobile := "?0"
	if p.Mobile {
		wantMobile = "?1"
	}
	if got := mustGet(t, p, "sec-ch-ua-mobile"); got != wantMobile {
		t.Errorf("sec-ch-ua-mobile %s, want %s (mobile %v)", got, wantMobile, p.Mobile)
	}
	if p.Mobile != (p.Platform == "android") {
		t.Errorf("mobile %v on platform %s", p.Mobile, p.Platform)
	}
	if got, want := mustGet(t, p, "sec-ch-ua-platform"), chPlatform[p.Platform]; got != want {
		t.Errorf("sec-ch-ua-platform %s, want %s", got, want)
	}
	if got := mustGet(t, p, "Accept-Language"); got != "en-US,en;q=0.9" {
		t.Errorf("Accept-Language %q", got)
	}
}

func mustGet(t *testing.T, p *Preset, name string) string {
	t.Helper()
	v, ok := get(p, name)
	if !ok {
		t.Errorf("%s has no %s header", p.Name, name)
	}
	return v
}

func TestLatestAliasesNameTheNewest(t *testing.T) {
	newest := map[string]*Preset{} // browser-platform -> newest preset
	var newestBrowser = map[string]*Preset{}
	for _, file := range builtinFiles(t) {
		data, _ := builtinFS.ReadFile(file)
		p, _, err := parseFile(file, data)
		if err != nil {
			t.Fatal(err)
		}
		if p.Browser == "go" {
			continue
		}
		key := p.Browser + "-latest-" + p.Platform
		if old, ok := newest[key]; !ok || versionLess(old.Version, p.Version) {
			newest[key] = p
		}
		if old, ok := newestBrowser[p.Browser]; !ok || versionLess(old.Version, p.Version) {
			newestBrowser[p.Browser] = p
		}
	}
	for alias, want := range newest {
		got, err := Lookup(alias)
		if err != nil {
			t.Errorf("Lookup(%q): %v", alias, err)
			continue
		}
		if got.Name != want.Name {
			t.Errorf("%s resolves to %s, want the newest %s", alias, got.Name, want.Name)
		}
	}
	for _, tc := range []struct{ alias, platform string }{
		{"chrome-latest", "windows"}, {"firefox-latest", "windows"}, {"safari-latest", "macos"},
	} {
		got, err := Lookup(tc.alias)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tc.alias, err)
		}
		b := strings.TrimSuffix(tc.alias, "-latest")
		if got.Browser != b || got.Platform != tc.platform || got.Version != newestBrowser[b].Version {
			t.Errorf("%s = %s, want %s %s on %s", tc.alias, got.Name, b, newestBrowser[b].Version, tc.platform)
		}
	}
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func TestLookupUnknownListsKnownNames(t *testing.T) {
	for _, name := range []string{"chrome-99", "", "Chrome-Latest", "chrome-latest "} {
		p, err := Lookup(name)
		if p != nil || !errors.Is(err, ErrUnknownPreset) {
			t.Fatalf("Lookup(%q) = %v, %v; want ErrUnknownPreset", name, p, err)
		}
		want := fmt.Sprintf("unknown preset %q: known presets are %s", name, strings.Join(Names(), ", "))
		if err.Error() != want {
			t.Errorf("Lookup(%q) error\n%s\nwant\n%s", name, err, want)
		}
	}
}

func TestNamesSortedWithAliases(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() not sorted: %q", names)
	}
	for _, want := range []string{"chrome-latest", "chrome-158-windows", "chrome-158-android", "firefox-157-linux", "safari-26-ios", "safari-latest"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %q: %q", want, names)
		}
	}
	names[0] = "changed"
	if Names()[0] == "changed" {
		t.Error("Names() returns the registry's own slice")
	}
}

func TestRegisterValidation(t *testing.T) {
	ok := []Header{{"User-Agent", "test/1.0"}}
	for _, tc := range []struct {
		name   string
		p      Preset
		target error
		want   string
	}{
		{"empty name", Preset{Headers: ok}, ErrInvalidPreset, "invalid preset: name is empty"},
		{"space in name", Preset{Name: "my preset", Headers: ok}, ErrInvalidPreset, `invalid preset: name "my preset" has byte 0x20 at offset 2`},
		{"control byte in name", Preset{Name: "a\tb", Headers: ok}, ErrInvalidPreset, `has byte 0x09 at offset 1`},
		{"non-ASCII name", Preset{Name: "chrome-é", Headers: ok}, ErrInvalidPreset, `has byte 0xc3 at offset 7`},
		{"empty header name", Preset{Name: "test-x", Headers: []Header{{"", "v"}}}, ErrInvalidPreset, `header 0 has an empty name`},
		{"header name with colon", Preset{Name: "test-x", Headers: []Header{{"X:Y", "v"}}}, ErrInvalidPreset, `header name "X:Y" has byte 0x3a at offset 1`},
		{"header name with space", Preset{Name: "test-x", Headers: []Header{{"User Agent", "v"}}}, ErrInvalidPreset, `header name "User Agent" has byte 0x20 at offset 4`},
		{"CR in value", Preset{Name: "test-x", Headers: []Header{{"X-A", "a\rb"}}}, ErrInvalidPreset, `value of header "X-A" has byte 0x0d at offset 1`},
		{"LF in value", Preset{Name: "test-x", Headers: []Header{{"X-A", "ab\nSet-Cookie: x"}}}, ErrInvalidPreset, `byte 0x0a at offset 2`},
		{"NUL in value", Preset{Name: "test-x", Headers: []Header{{"X-A", "\x00"}}}, ErrInvalidPreset, `byte 0x00 at offset 0`},
		{"duplicate header", Preset{Name: "test-x", Headers: []Header{{"Accept", "a"}, {"accept", "b"}}}, ErrInvalidPreset, `header "accept" appears twice`},
		{"taken by a preset", Preset{Name: "chrome-158-windows", Headers: ok}, ErrPresetExists, `preset already exists: "chrome-158-windows"`},
		{"taken by an alias", Preset{Name: "chrome-latest", Headers: ok}, ErrPresetExists, `preset already exists: "chrome-latest"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Register(tc.p)
			if !errors.Is(err, tc.target) {
				t.Fatalf("Register = %v, want an error wrapping %v", err, tc.target)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Register error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRegisterAndLookup(t *testing.T) {
	headers := []Header{{"user-agent", "roster-test/1.0"}, {"Accept-Encoding", "gzip"}, {"X-Test", "1"}}
	p := Preset{Name: "test-register", Browser: "custom", Version: "1", Platform: "linux", Headers: headers}
	if err := Register(p); err != nil {
		t.Fatal(err)
	}
	headers[0].Value = "changed" // Register copied the slice
	got, err := Lookup("test-register")
	if err != nil {
		t.Fatal(err)
	}
	if got.Headers[0].Value != "roster-test/1.0" || got.Browser != "custom" {
		t.Errorf("registered preset = %+v", got)
	}
	if got.AcceptEncoding() != "gzip" {
		t.Errorf("AcceptEncoding = %q", got.AcceptEncoding())
	}
	if !slices.Contains(Names(), "test-register") {
		t.Error("Names() lacks the registered preset")
	}
	if err := Register(p); !errors.Is(err, ErrPresetExists) {
		t.Errorf("second Register = %v, want ErrPresetExists", err)
	}
	// A copy of a registered preset can be changed and registered anew.
	q := *got
	q.Name = "test-register-copy"
	q.Headers = append(slices.Clone(q.Headers), Header{"X-More", "2"})
	if err := Register(q); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	mustLookup(t, "test-register-copy").Apply(h)
	if h.Get("X-More") != "2" || h.Get("User-Agent") != "roster-test/1.0" {
		t.Errorf("Apply of the copy set %v", h)
	}
}

func mustLookup(t testing.TB, name string) *Preset {
	t.Helper()
	p, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyLeavesRequestHeadersAlone(t *testing.T) {
	registered := mustLookup(t, "chrome-latest")
	literal := &Preset{Name: "literal", Headers: slices.Clone(registered.Headers)} // never compiled
	for _, tc := range []struct {
		name string
		p    *Preset
	}{{"registered", registered}, {"unregistered literal", literal}} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("User-Agent", "mine/1.0")
			h.Add("Accept-Language", "de-DE")
			h.Add("Accept-Language", "de")
			h["Priority"] = nil // present without values: suppresses the preset's Priority
			h.Set("X-Request", "kept")
			tc.p.Apply(h)
			if got := h.Values("User-Agent"); !slices.Equal(got, []string{"mine/1.0"}) {
				t.Errorf("User-Agent = %q, want the request's own", got)
			}
			if got := h.Values("Accept-Language"); !slices.Equal(got, []string{"de-DE", "de"}) {
				t.Errorf("Accept-Language = %q, want the request's own", got)
			}
			if v, ok := h["Priority"]; !ok || v != nil {
				t.Errorf("Priority = %q, %v; want present and empty", v, ok)
			}
			if h.Get("X-Request") != "kept" {
				t.Errorf("X-Request = %q", h.Get("X-Request"))
			}
			for _, f := range tc.p.Headers {
				k := http.CanonicalHeaderKey(f.Name)
				switch k {
				case "User-Agent", "Accept-Language", "Priority":
					continue
				}
				if got := h.Values(k); !slices.Equal(got, []string{f.Value}) {
					t.Errorf("%s = %q, want the preset's %q", k, got, f.Value)
				}
			}
			// Each applied value has its own capacity: appending to one
			// leaves the next alone, and the preset too.
			h.Add("Sec-Ch-Ua-Mobile", "?1")
			if got := h.Values("Sec-Ch-Ua-Platform"); len(got) != 1 || got[0] != `"Windows"` {
				t.Errorf("after an Add to its neighbour, Sec-Ch-Ua-Platform = %q", got)
			}
			h2 := http.Header{}
			tc.p.Apply(h2)
			if got := h2.Values("Sec-Ch-Ua-Mobile"); len(got) != 1 || got[0] != "?0" {
				t.Errorf("a later Apply sets Sec-Ch-Ua-Mobile = %q", got)
			}
			if len(h2) != len(tc.p.Headers) {
				t.Errorf("Apply to an empty header set %d fields, want %d", len(h2), len(tc.p.Headers))
			}
		})
	}
}

func TestAcceptEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Preset
		want string
	}{
		{"chrome", mustLookup(t, "chrome-latest"), "gzip, deflate, br, zstd"},
		{"firefox", mustLookup(t, "firefox-latest"), "gzip, deflate, br, zstd"},
		{"safari", mustLookup(t, "safari-latest-ios"), "gzip, deflate, br"},
		{"literal, lower case", &Preset{Headers: []Header{{"accept-encoding", "br"}}}, "br"},
		{"literal, none", &Preset{Headers: []Header{{"User-Agent", "x"}}}, ""},
		{"no headers", &Preset{}, ""},
	} {
		if got := tc.p.AcceptEncoding(); got != tc.want {
			t.Errorf("%s: AcceptEncoding() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestConcurrentRegisterAndLookup(t *testing.T) {
	const writers, each, readers = 4, 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+readers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("test-concurrent-%d-%d", w, i)
				if err := Register(Preset{Name: name, Headers: []Header{{"X-N", name}}}); err != nil {
					errs <- err
					return
				}
				p, err := Lookup(name)
				if err != nil || p.Name != name {
					errs <- fmt.Errorf("Lookup(%q) after Register = %v, %v", name, p, err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := Lookup("chrome-latest")
				if err != nil {
					errs <- err
					return
				}
				p.Apply(http.Header{})
				_ = Names()
			}
		})
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		for i := range each {
			if _, err := Lookup(fmt.Sprintf("test-concurrent-%d-%d", w, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"chrome-158-windows", "chrome-latest", "safari-26-ios"} {
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := Lookup(name); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("Lookup(%q) allocates %.1f times, want 0", name, n)
		}
	}
}

func TestApplyAllocatesOnce(t *testing.T) {
	p := mustLookup(t, "chrome-latest")
	h := make(http.Header, 32)
	if n := testing.AllocsPerRun(1000, func() {
		clear(h)
		p.Apply(h)
	}); n > 1 {
		t.Errorf("Apply allocates %.1f times, want at most 1", n)
	}
	full := http.Header{}
	p.Apply(full)
	if n := testing.AllocsPerRun(1000, func() { p.Apply(full) }); n != 0 {
		t.Errorf("Apply to a header that has everything allocates %.1f times, want 0", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Lookup("chrome-latest"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	p := mustLookup(b, "chrome-latest")
	h := make(http.Header, 32)
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		h.Set("Cookie", "a=b")
		p.Apply(h)
	}
}
