package cookies

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rosterhq/roster/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is when every test's clock starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source for a Jar.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func newJar(c *clock) *Jar { return New(&Options{Now: c.Now}) }

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// parseSetCookies parses Set-Cookie header values as a client does.
func parseSetCookies(lines ...string) []*http.Cookie {
	return (&http.Response{Header: http.Header{"Set-Cookie": lines}}).Cookies()
}

// header renders cookies as their Cookie header.
func header(cs []*http.Cookie) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, "; ")
}

// op is one step of a jarCase: the clock moves to t0+at, then the jar takes
// the Set-Cookie lines set from the URL from, or is asked for the cookies of
// the URL to and must answer want (a Cookie header).
type op struct {
	at   time.Duration
	from string
	set  []string
	to   string
	want string
}

func set(from string, lines ...string) op { return op{from: from, set: lines} }
func get(to, want string) op              { return op{to: to, want: want} }

// after returns ops that run at t0+d.
func after(d time.Duration, ops ...op) []op {
	for i := range ops {
		ops[i].at = d
	}
	return ops
}

func seq(parts ...any) []op {
	var ops []op
	for _, p := range parts {
		switch p := p.(type) {
		case op:
			ops = append(ops, p)
		case []op:
			ops = append(ops, p...)
		default:
			panic(fmt.Sprintf("seq: %T", p))
		}
	}
	return ops
}

var (
	past   = t0.Add(-time.Hour).Format(http.TimeFormat)
	future = t0.Add(time.Hour).Format(http.TimeFormat)
)

// TestRFC6265 runs the storage and retrieval rules of RFC 6265 section 5
// (and the RFC 6265bis additions) as sequences of responses and requests.
func TestRFC6265(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{"host-only cookie", seq(
			set("http://www.example.com/", "a=1"),
			get("http://www.example.com/", "a=1"),
			get("http://www.example.com:8080/x", "a=1"),
			get("http://example.com/", ""),
			get("http://sub.www.example.com/", ""),
			get("http://www.example.org/", ""),
		)},
		{"domain cookie reaches subdomains", seq(
			set("http://www.example.com/", "a=1; Domain=example.com"),
			get("http://example.com/", "a=1"),
			get("http://www.example.com/", "a=1"),
			get("http://x.y.example.com/", "a=1"),
			get("http://otherexample.com/", ""),
			get("http://example.org/", ""),
		)},
		{"leading dot in Domain is ignored", seq(
			set("http://www.example.com/", "a=1; Domain=.EXAMPLE.com"),
			get("http://foo.example.com/", "a=1"),
		)},
		{"Domain equal to the host is a domain cookie", seq(
			set("http://example.com/", "a=1; Domain=example.com"),
			get("http://sub.example.com/", "a=1"),
		)},
		{"Domain that does not domain-match the host", seq(
			set("http://www.example.com/", "a=1; Domain=other.com", "b=1; Domain=www2.example.com",
				"c=1; Domain=sub.www.example.com", "d=1; Domain=ample.com", "e=1; Domain=..example.com",
				"f=1; Domain=example.com."),
			get("http://other.com/", ""),
			get("http://www2.example.com/", ""),
			get("http://sub.www.example.com/", ""),
			get("http://ample.com/", ""),
			get("http://www.example.com/", ""),
		)},
		{"public suffix co.uk rejected", seq(
			set("http://www.example.co.uk/", "a=1; Domain=co.uk", "b=1; Domain=.co.uk"),
			get("http://other.co.uk/", ""),
			get("http://www.example.co.uk/", ""),
		)},
		{"public suffix com rejected", seq(
			set("http://www.example.com/", "a=1; Domain=com"),
			get("http://other.com/", ""),
			get("http://www.example.com/", ""),
		)},
		{"public suffix equal to the host becomes host-only", seq(
			set("http://co.uk/", "a=1; Domain=co.uk"),
			get("http://co.uk/", "a=1"),
			get("http://www.co.uk/", ""),
		)},
		{"IP host is host-only", seq(
			set("http://127.0.0.1:8080/", "a=1", "b=2; Domain=127.0.0.1", "c=3; Domain=0.0.1", "d=4; Domain=.127.0.0.1"),
			get("http://127.0.0.1/", "a=1; b=2"),
			get("http://127.0.0.1:9090/", "a=1; b=2"),
			get("http://1.127.0.0.1/", ""),
			get("http://0.0.1/", ""),
		)},
		{"a domain cookie never reaches an IP address", seq(
			set("http://x.0.0.1/", "a=1; Domain=0.0.1"),
			get("http://y.0.0.1/", "a=1"),
			get("http://127.0.0.1/", ""),
		)},
		{"IPv6 host", seq(
			set("http://[::1]:8080/", "a=1", "b=2; Domain=::1"),
			get("http://[::1]/", "a=1; b=2"),
			get("http://[::2]/", ""),
		)},
		{"default path is the directory", seq(
			set("http://h.com/a/b/c", "a=1"),
			get("http://h.com/a/b", "a=1"),
			get("http://h.com/a/b/", "a=1"),
			get("http://h.com/a/b/c/d", "a=1"),
			get("http://h.com/a/bc", ""),
			get("http://h.com/a", ""),
			get("http://h.com/", ""),
		)},
		{"default path of a top-level file and of no path is /", seq(
			set("http://h.com/abc", "a=1"),
			set("http://h.com", "b=1"),
			get("http://h.com/", "a=1; b=1"),
			get("http://h.com", "a=1; b=1"),
		)},
		{"Path without a leading slash means the default path", seq(
			set("http://h.com/a/b", "a=1; Path=x/y", "b=1; Path="),
			get("http://h.com/a/z", "a=1; b=1"),
			get("http://h.com/", ""),
		)},
		{"path-match boundaries", seq(
			set("http://h.com/", "a=1; Path=/foo", "b=1; Path=/foo/"),
			get("http://h.com/foo", "a=1"),
			get("http://h.com/foo/", "b=1; a=1"),
			get("http://h.com/foo/bar", "b=1; a=1"),
			get("http://h.com/foobar", ""),
			get("http://h.com/fo", ""),
			get("http://h.com/", ""),
			get("http://h.com/FOO", ""),
		)},
		{"paths are matched escaped", seq(
			set("http://h.com/a%20b/c", "a=1"),
			get("http://h.com/a%20b/x", "a=1"),
			get("http://h.com/a b/x", "a=1"),
			get("http://h.com/a/x", ""),
		)},
		{"Secure is sent over https only", seq(
			set("https://h.com/", "s=1; Secure", "p=1"),
			get("https://h.com/", "s=1; p=1"),
			get("http://h.com/", "p=1"),
		)},
		{"Secure from http is ignored", seq(
			set("http://h.com/", "s=1; Secure"),
			get("https://h.com/", ""),
		)},
		{"http may not shadow a Secure cookie", seq(
			set("https://www.h.com/", "s=1; Secure; Domain=h.com", "t=1; Secure; Path=/x"),
			set("http://www.h.com/", "s=2", "s=3; Path=/other", "s=4; Domain=h.com", "t=2"),
			set("http://h.com/", "s=5"),
			get("https://www.h.com/", "s=1; t=2"),
			get("https://www.h.com/x", "t=1; s=1; t=2"),
			get("https://h.com/x", "s=1"),
		)},
		{"http may not delete a Secure cookie", seq(
			set("https://h.com/", "s=1; Secure"),
			set("http://h.com/", "s=; Max-Age=0", "s=; Max-Age=0; Secure"),
			get("https://h.com/", "s=1"),
		)},
		{"https may replace a Secure cookie with a plain one", seq(
			set("https://h.com/", "s=1; Secure"),
			set("https://h.com/", "s=2"),
			get("http://h.com/", "s=2"),
		)},
		{"localhost is a secure origin", seq(
			set("http://localhost:8080/", "s=1; Secure"),
			set("http://127.0.0.1/", "s=2; Secure"),
			get("http://localhost/", "s=1"),
			get("http://127.0.0.1/", "s=2"),
		)},
		{"__Secure- and __Host- prefixes", seq(
			set("https://www.h.com/", "__Secure-a=1", "__Secure-b=1; Secure", "__secure-c=1",
				"__Host-d=1; Secure; Path=/", "__Host-e=1; Secure", "__Host-f=1; Secure; Path=/; Domain=www.h.com",
				"__HOST-g=1; Path=/", "__Host-h=1; Secure; Path=/x"),
			get("https://www.h.com/x", "__Secure-b=1; __Host-d=1"),
		)},
		{"Max-Age=0 deletes", seq(
			set("http://h.com/", "a=1", "b=1"),
			set("http://h.com/", "a=; Max-Age=0"),
			get("http://h.com/", "b=1"),
		)},
		{"negative Max-Age deletes", seq(
			set("http://h.com/", "a=1", "b=1"),
			set("http://h.com/", "b=x; Max-Age=-5"),
			get("http://h.com/", "a=1"),
		)},
		{"deletion needs the same domain and path", seq(
			set("http://www.h.com/p/q/", "a=1; Path=/p", "b=1; Domain=h.com; Path=/p"),
			set("http://www.h.com/p/q/", "a=; Max-Age=0", "b=; Max-Age=0; Path=/p"),
			get("http://www.h.com/p", "a=1; b=1"),
			set("http://www.h.com/p/q/", "a=; Max-Age=0; Path=/p", "b=; Max-Age=0; Path=/p; Domain=h.com"),
			get("http://www.h.com/p", ""),
		)},
		{"expired Expires deletes", seq(
			set("http://h.com/", "a=1", "b=1"),
			set("http://h.com/", "a=1; Expires="+past),
			get("http://h.com/", "b=1"),
		)},
		{"Max-Age beats Expires", seq(
			set("http://h.com/", "a=1; Max-Age=60; Expires="+past, "b=1; Max-Age=0; Expires="+future, "c=1"),
			set("http://h.com/", "c=1; Max-Age=-1; Expires="+future),
			get("http://h.com/", "a=1"),
			after(59*time.Second, get("http://h.com/", "a=1")),
			after(60*time.Second, get("http://h.com/", "")),
		)},
		{"Expires with the clock", seq(
			set("http://h.com/", "a=1; Expires="+future, "s=1"),
			after(time.Hour-time.Second, get("http://h.com/", "a=1; s=1")),
			after(time.Hour, get("http://h.com/", "s=1")),
			after(10000*time.Hour, get("http://h.com/", "s=1")),
		)},
		{"Max-Age and Expires are capped at 400 days", seq(
			set("http://h.com/", "a=1; Max-Age=999999999999", "b=1; Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
			after(MaxAge-time.Second, get("http://h.com/", "a=1; b=1")),
			after(MaxAge, get("http://h.com/", "")),
		)},
		{"overwrite keeps the creation time", seq(
			set("http://h.com/", "a=1"),
			after(time.Second, set("http://h.com/", "b=1")),
			after(2*time.Second, set("http://h.com/", "a=2")),
			after(3*time.Second, get("http://h.com/", "a=2; b=1")),
		)},
		{"an expired cookie replaced is new", seq(
			set("http://h.com/", "a=1; Max-Age=1"),
			after(time.Second, set("http://h.com/", "b=1")),
			after(2*time.Second, set("http://h.com/", "a=2")),
			after(3*time.Second, get("http://h.com/", "b=1; a=2")),
		)},
		{"order: longer paths first, then earlier creation", seq(
			set("http://h.com/", "a=1; Path=/"),
			after(time.Second, set("http://h.com/", "b=1; Path=/x/y", "z=1; Path=/x", "y=1; Path=/x")),
			after(2*time.Second, set("http://h.com/", "c=1; Path=/x/", "x=1; Domain=h.com")),
			after(3*time.Second, get("http://h.com/x/y/z", "b=1; c=1; z=1; y=1; a=1; x=1")),
		)},
		{"same name on host and domain", seq(
			set("http://www.h.com/", "a=1", "a=2; Domain=h.com"),
			get("http://www.h.com/", "a=1; a=2"),
			get("http://h.com/", "a=2"),
		)},
		{"host names are canonical", seq(
			set("http://WWW.Example.COM./", "a=1"),
			set("http://bücher.example/", "b=1; Domain=XN--BCHER-KVA.example"),
			get("http://www.example.com/", "a=1"),
			get("http://xn--bcher-kva.example/", "b=1"),
			get("http://sub.Bücher.example/", "b=1"),
		)},
		{"quoted value", seq(
			set("http://h.com/", `a="x y"`, `b=""`, "c=d e"),
			get("http://h.com/", `a="x y"; b=""; c="d e"`),
		)},
		{"other schemes and broken hosts are ignored", seq(
			set("ftp://h.com/", "a=1"),
			set("http:///x", "b=1"),
			set("http://.h.com/", "c=1"),
			set("http://a_b.h.com/", "d=1"),
			get("ftp://h.com/", ""),
			get("http://h.com/", ""),
			get("http://a_b.h.com/", "d=1"),
		)},
		{"HttpOnly and SameSite do not stop sending", seq(
			set("https://h.com/", "a=1; HttpOnly", "b=1; SameSite=Strict", "c=1; SameSite=None; Secure"),
			get("http://h.com/", "a=1; b=1"),
			get("https://h.com/", "a=1; b=1; c=1"),
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			j := newJar(clk)
			for i, o := range tt.ops {
				clk.Set(t0.Add(o.at))
				if o.from != "" {
					j.SetCookies(mustURL(t, o.from), parseSetCookies(o.set...))
					continue
				}
				if got := header(j.Cookies(mustURL(t, o.to))); got != o.want {
					t.Errorf("op %d: Cookies(%s) = %q, want %q", i, o.to, got, o.want)
				}
			}
			for _, s := range j.Export() {
				if err := s.Validate(); err != nil {
					t.Errorf("exported %+v: %v", s, err)
				}
			}
		})
	}
}

// TestExportAttributes checks that every attribute is kept and exported.
func TestExportAttributes(t *testing.T) {
	clk := newClock()
	j := newJar(clk)
	j.SetCookies(mustURL(t, "https://www.Example.com/app/login"), parseSetCookies(
		"sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600",
		"pref=dark; Domain=example.com; SameSite=Strict; Expires="+future,
		`q="quoted"; SameSite=None; Secure`,
		"odd=1; SameSite=Bogus",
	))
	clk.Advance(time.Minute)
	j.SetCookies(mustURL(t, "https://www.example.com/app/"), parseSetCookies("sid=def; Path=/; Secure; HttpOnly; SameSite=Lax"))
	ns := time.Nanosecond
	want := []protocol.CookieState{
		{Name: "pref", Value: "dark", Domain: "example.com", Path: "/app", SameSite: "Strict",
			Expires: t0.Add(time.Hour), Created: t0.Add(ns), LastAccess: t0},
		{Name: "sid", Value: "def", Domain: "www.example.com", Path: "/", HostOnly: true, Secure: true, HttpOnly: true, SameSite: "Lax",
			Created: t0, LastAccess: t0.Add(time.Minute)}, // overwritten: a session cookie now, Created kept
		{Name: "odd", Value: "1", Domain: "www.example.com", Path: "/app", HostOnly: true,
			Created: t0.Add(3 * ns), LastAccess: t0},
		{Name: "q", Value: `"quoted"`, Domain: "www.example.com", Path: "/app", HostOnly: true, Secure: true, SameSite: "None",
			Created: t0.Add(2 * ns), LastAccess: t0},
	}
	if got := j.Export(); !reflect.DeepEqual(got, want) {
		t.Errorf("Export:\n got %+v\nwant %+v", got, want)
	}
	if n := j.Len(); n != 4 {
		t.Errorf("Len = %d, want 4", n)
	}

	clk.Advance(time.Minute)
	j.Cookies(mustURL(t, "https://www.example.com/"))
	for _, s := range j.Export() {
		wantAccess := t0 // not sent to "/"
		switch s.Name {
		case "sid":
			wantAccess = t0.Add(2 * time.Minute)
		}
		if !s.LastAccess.Equal(wantAccess) {
			t.Errorf("%s: LastAccess = %v, want %v", s.Name, s.LastAccess, wantAccess)
		}
	}

	b, err := json.Marshal(j.Export()[0])
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"name":"pref","value":"dark","domain":"example.com","path":"/app","sameSite":"Strict",` +
		`"expires":"2026-03-01T13:00:00Z","created":"2026-03-01T12:00:00.000000001Z","lastAccess":"2026-03-01T12:00:00Z"}`
	if string(b) != wantJSON {
		t.Errorf("JSON:\n got %s\nwant %s", b, wantJSON)
	}
}

// roundTripURLs are the URLs whose Cookies a jar and its copy must agree on.
var roundTripURLs = []string{
	"http://example.com/", "https://example.com/", "https://www.example.com/a/b/c", "http://www.example.com/a/",
	"https://api.example.com/v1/x", "http://127.0.0.1:8080/", "http://[::1]/", "https://shop.example.co.uk/cart",
	"http://example.co.uk/cart/", "http://localhost/", "https://xn--bcher-kva.example/", "http://other.org/",
}

// fillJar gives j cookies of every kind, over several clock ticks.
func fillJar(t testing.TB, j *Jar, clk *clock) {
	steps := []struct {
		from  string
		lines []string
	}{
		{"https://www.example.com/a/b/c", []string{"sid=1; Secure; HttpOnly; SameSite=Lax", "z=1; Path=/", "y=2; Path=/", "d=1; Domain=example.com; Max-Age=600"}},
		{"http://example.com/", []string{"plain=1", `q="a b"`, "e=1; Expires=" + future}},
		{"https://api.example.com/v1/", []string{"tok=xyz; Path=/v1; SameSite=None; Secure", "d=2; Domain=example.com; Path=/a"}},
		{"http://127.0.0.1:8080/", []string{"ip=1", "ip2=2; Domain=127.0.0.1"}},
		{"http://[::1]/", []string{"v6=1; Secure"}},
		{"https://shop.example.co.uk/cart/x", []string{"cart=3; Domain=example.co.uk", "basket=4"}},
		{"http://localhost/", []string{"loc=1; Secure; SameSite=Strict"}},
		{"https://bücher.example/", []string{"idn=1; Domain=bücher.example"}},
		{"http://www.example.com/a/b/c", []string{"z=3; Path=/"}},
	}
	for _, s := range steps {
		j.SetCookies(mustURL(t, s.from), parseSetCookies(s.lines...))
		clk.Advance(time.Second)
	}
	j.Cookies(mustURL(t, "https://www.example.com/a/b/c"))
	clk.Advance(time.Second)
}

func TestExportImportRoundTrip(t *testing.T) {
	clk := newClock()
	j := newJar(clk)
	fillJar(t, j, clk)
	states := j.Export()
	if len(states) != 16 {
		t.Fatalf("Export has %d cookies, want 16: %+v", len(states), states)
	}

	// Through JSON, as a daemon would save them.
	b, err := json.Marshal(states)
	if err != nil {
		t.Fatal(err)
	}
	var decoded []protocol.CookieState
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, states) {
		t.Fatalf("JSON round trip changed the states:\n got %+v\nwant %+v", decoded, states)
	}

	j2 := newJar(clk)
	if err := j2.Import(decoded); err != nil {
		t.Fatal(err)
	}
	if got := j2.Export(); !reflect.DeepEqual(got, states) {
		t.Fatalf("Export after Import:\n got %+v\nwant %+v", got, states)
	}
	for _, s := range roundTripURLs {
		u := mustURL(t, s)
		want, got := header(j.Cookies(u)), header(j2.Cookies(u))
		if got != want {
			t.Errorf("Cookies(%s): imported jar %q, original %q", s, got, want)
		}
		if want == "" && s != "http://other.org/" {
			t.Errorf("Cookies(%s) is empty: the fill is too thin to test it", s)
		}
	}
	// Both jars saw the same requests at the same time.
	if a, b := j.Export(), j2.Export(); !reflect.DeepEqual(a, b) {
		t.Errorf("Exports differ after the same requests:\n%+v\n%+v", a, b)
	}
	// New cookies sort after the imported ones in both.
	for _, jj := range []*Jar{j, j2} {
		jj.SetCookies(mustURL(t, "http://example.com/"), parseSetCookies("new=1"))
	}
	u := mustURL(t, "http://example.com/")
	if a, b := header(j.Cookies(u)), header(j2.Cookies(u)); a != b {
		t.Errorf("after a new cookie: %q vs %q", a, b)
	}
}

func TestImport(t *testing.T) {
	clk := newClock()
	j := newJar(clk)
	j.SetCookies(mustURL(t, "http://h.com/"), parseSetCookies("a=old", "keep=1"))
	clk.Advance(time.Second)
	err := j.Import([]protocol.CookieState{
		{Name: "a", Value: "new", Domain: "h.com", Path: "/", Created: t0.Add(-time.Hour), LastAccess: t0},
		{Name: "gone", Value: "1", Domain: "h.com", Path: "/", Expires: t0, Created: t0.Add(-time.Hour)},
		{Name: "zero", Value: "1", Domain: "h.com", Path: "/"},
		{Name: "local", Value: "1", Domain: "h.com", Path: "/", Created: t0.Add(-2 * time.Hour).In(time.FixedZone("X", 3600)),
			LastAccess: t0.Add(-2 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]protocol.CookieState{}
	for _, s := range j.Export() {
		got[s.Name] = s
	}
	if len(got) != 4 || got["a"].Value != "new" || got["keep"].Value != "1" {
		t.Fatalf("after Import: %+v", got)
	}
	if _, ok := got["gone"]; ok {
		t.Error("an expired cookie was imported")
	}
	if z := got["zero"]; !z.Created.Equal(clk.Now()) || !z.LastAccess.Equal(clk.Now()) {
		t.Errorf("zero times became %v and %v, want now", z.Created, z.LastAccess)
	}
	if l := got["local"]; l.Created.Location() != time.UTC {
		t.Errorf("imported time kept location %v", l.Created.Location())
	}
	// Imported creation times order the header; "a" is a domain cookie now.
	if h := header(j.Cookies(mustURL(t, "http://www.h.com/"))); h != "local=1; a=new; zero=1" {
		t.Errorf("Cookies = %q", h)
	}
	if h := header(j.Cookies(mustURL(t, "http://h.com/"))); h != "local=1; a=new; keep=1; zero=1" {
		t.Errorf("Cookies = %q", h)
	}
}

func TestImportInvalid(t *testing.T) {
	ok := protocol.CookieState{Name: "ok", Value: "1", Domain: "h.com", Path: "/", Created: t0, LastAccess: t0}
	mod := func(f func(*protocol.CookieState)) protocol.CookieState {
		s := ok
		s.Name = "bad"
		f(&s)
		return s
	}
	tests := []struct {
		name  string
		state protocol.CookieState
		want  string
	}{
		{"empty name", mod(func(s *protocol.CookieState) { s.Name = "" }), "name is empty"},
		{"name with space", mod(func(s *protocol.CookieState) { s.Name = "a b" }), `name "a b"`},
		{"value with semicolon", mod(func(s *protocol.CookieState) { s.Value = "a;b" }), `value of "bad"`},
		{"empty domain", mod(func(s *protocol.CookieState) { s.Domain = "" }), "domain of \"bad\" is empty"},
		{"upper-case domain", mod(func(s *protocol.CookieState) { s.Domain = "H.com" }), `domain "H.com"`},
		{"relative path", mod(func(s *protocol.CookieState) { s.Path = "x" }), `path "x"`},
		{"unknown SameSite", mod(func(s *protocol.CookieState) { s.SameSite = "lax" }), `sameSite "lax"`},
		{"domain cookie for a public suffix", mod(func(s *protocol.CookieState) { s.Domain = "co.uk" }), `domain "co.uk": only a host-only`},
		{"domain cookie for an IP", mod(func(s *protocol.CookieState) { s.Domain = "10.0.0.1" }), `domain "10.0.0.1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := New(nil)
			j.SetCookies(mustURL(t, "http://x.com/"), parseSetCookies("pre=1"))
			before := j.Export()
			err := j.Import([]protocol.CookieState{ok, ok, tt.state})
			if err == nil {
				t.Fatal("Import succeeded")
			}
			if !errors.Is(err, protocol.ErrInvalidCookie) {
				t.Errorf("error %v does not wrap ErrInvalidCookie", err)
			}
			if !strings.Contains(err.Error(), "cookie 2 ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name cookie 2 and %q", err, tt.want)
			}
			if after := j.Export(); !reflect.DeepEqual(after, before) {
				t.Errorf("a failed Import changed the jar: %+v", after)
			}
		})
	}
	// The same states as host-only cookies are fine.
	j := New(nil)
	for _, d := range []string{"co.uk", "10.0.0.1", "::1"} {
		if err := j.Import([]protocol.CookieState{{Name: "a", Domain: d, Path: "/", HostOnly: true}}); err != nil {
			t.Errorf("host-only cookie for %s: %v", d, err)
		}
	}
}

func TestClearAndLen(t *testing.T) {
	clk := newClock()
	j := newJar(clk)
	if j.Len() != 0 || len(j.Export()) != 0 || j.Cookies(mustURL(t, "http://h.com/")) != nil {
		t.Fatal("a new jar is not empty")
	}
	j.SetCookies(mustURL(t, "http://h.com/"), parseSetCookies("a=1", "b=1; Max-Age=10", "c=1; Domain=h.com"))
	if n := j.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	clk.Advance(10 * time.Second)
	if n := j.Len(); n != 2 {
		t.Fatalf("Len after expiry = %d, want 2", n)
	}
	j.Clear()
	if n := j.Len(); n != 0 {
		t.Fatalf("Len after Clear = %d", n)
	}
	if h := header(j.Cookies(mustURL(t, "http://h.com/"))); h != "" {
		t.Fatalf("Cookies after Clear = %q", h)
	}
	j.SetCookies(mustURL(t, "http://h.com/"), parseSetCookies("d=1"))
	if h := header(j.Cookies(mustURL(t, "http://h.com/"))); h != "d=1" {
		t.Fatalf("Cookies after Clear and Set = %q", h)
	}
}

// TestZeroJar: the zero Jar works, with the real clock and public suffix list.
func TestZeroJar(t *testing.T) {
	var j Jar
	j.SetCookies(mustURL(t, "http://www.example.co.uk/"), parseSetCookies("a=1", "b=1; Domain=co.uk"))
	if h := header(j.Cookies(mustURL(t, "http://www.example.co.uk/"))); h != "a=1" {
		t.Errorf("Cookies = %q", h)
	}
	s := j.Export()
	if len(s) != 1 || time.Since(s[0].Created) > time.Minute || s[0].Created.Location() != time.UTC {
		t.Errorf("Export = %+v", s)
	}
}

// TestProgrammaticCookies: cookies built in Go rather than parsed are held
// to the same rules.
func TestProgrammaticCookies(t *testing.T) {
	j := New(nil)
	u := mustURL(t, "https://h.com/d/")
	j.SetCookies(u, []*http.Cookie{
		nil,
		{Name: "", Value: "x"},
		{Name: "a b", Value: "x"},
		{Name: "v", Value: "x;y"},
		{Name: "w", Value: `"x"`},
		{Name: "nl", Value: "x\ny"},
		{Name: "p", Value: "1", Path: "/a\nb"},
		{Name: "q", Value: "x y", Quoted: true},
		{Name: "d", Value: "1", Domain: "h.com\x00"},
		{Name: "s", Value: "1", SameSite: http.SameSiteDefaultMode},
	})
	if h := header(j.Cookies(u)); h != `p=1; q="x y"; s=1` {
		t.Errorf("Cookies = %q", h)
	}
	for _, s := range j.Export() {
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
		if s.Name == "p" && s.Path != "/d" {
			t.Errorf("a bad Path attribute became %q, want the default path", s.Path)
		}
	}
	// Nil and odd URLs do nothing.
	j.SetCookies(nil, []*http.Cookie{{Name: "a", Value: "1"}})
	if j.Cookies(nil) != nil || j.Cookies(&url.URL{Scheme: "http", Host: "a b"}) != nil {
		t.Error("Cookies of a nil or odd URL")
	}
}

func TestPunycode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bücher.example", "xn--bcher-kva.example"},
		{"perché.com", "xn--perch-fsa.com"},
		{"münchen.de", "xn--mnchen-3ya.de"},
		{"他们为什么不说中文", "xn--ihqwcrb4cv8a8dqg056pqjye"}, // RFC 3492 7.1 (A)... (B)
		{"ليهمابتكلموشعربي؟", "xn--egbpdaj6bu4bxfgehfvwxn"},
		{"3年b組金八先生", "xn--3b-ww4c5e180e575a65lsy2b"},
		{"ascii.only", "ascii.only"},
		{"a.☃.b", "a.xn--n3h.b"},
	}
	for _, tt := range tests {
		got, err := toASCII(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("toASCII(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	clk := newClock()
	j := newJar(clk)
	var wg sync.WaitGroup
	for g := range 8 {
		u := mustURL(t, fmt.Sprintf("https://h%d.example.com/p", g%3))
		wg.Go(func() {
			for i := range 200 {
				j.SetCookies(u, parseSetCookies(fmt.Sprintf("c%d=%d; Domain=example.com; Max-Age=%d", i%10, i, 1+i%5)))
				j.Cookies(u)
				if i%50 == 0 {
					states := j.Export()
					if err := New(&Options{Now: clk.Now}).Import(states); err != nil {
						t.Error(err)
					}
					j.Len()
					clk.Advance(time.Second)
				}
				if g == 0 && i == 100 {
					j.Clear()
				}
			}
		})
	}
	wg.Wait()
}

// TestJarSize: an empty Jar, which every idle session holds, is small.
func TestJarSize(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = New(nil) }); n > 1 {
		t.Errorf("New allocates %v times, want 1", n)
	}
	if size := jarBytes(); size > 200 {
		t.Errorf("an empty Jar takes %d bytes of heap, want at most 200", size)
	} else {
		t.Logf("an empty Jar takes %d bytes of heap", size)
	}
}

var jarSink []*Jar

// jarBytes returns the heap bytes one empty Jar takes, on average.
func jarBytes() uint64 {
	const n = 10000
	jarSink = make([]*Jar, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range jarSink {
		jarSink[i] = New(&Options{})
	}
	runtime.ReadMemStats(&after)
	jarSink = nil
	return (after.TotalAlloc - before.TotalAlloc) / n
}
