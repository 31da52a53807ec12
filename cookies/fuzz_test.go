package cookies

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/protocol"
)

// FuzzSetCookieHeader feeds Set-Cookie header values (one per line) received
// from one URL into a jar and asks for the cookies of another. Whatever the
// input, the jar must not panic, must export only states that Validate, and
// must survive Export, JSON and Import into a fresh jar unchanged.
func FuzzSetCookieHeader(f *testing.F) {
	f.Add("a=1; Domain=example.com; Path=/x; Max-Age=60", "https://www.example.com/x/y", "http://example.com/x")
	f.Add("s=1; Secure\nt=2; HttpOnly; SameSite=Lax", "http://127.0.0.1:8080/", "https://127.0.0.1/")
	f.Fuzz(func(t *testing.T, lines, from, to string) {
		u, err := url.Parse(from)
		if err != nil {
			return
		}
		v, err := url.Parse(to)
		if err != nil {
			v = u
		}
		clk := newClock()
		j := newJar(clk)

		cookies := parseSetCookies(strings.Split(lines, "\n")...)
		// The raw first line as a Go caller might build it, unchecked.
		name, value, _ := strings.Cut(lines, "=")
		value, attr, _ := strings.Cut(value, ";")
		raw := &http.Cookie{Name: name, Value: value, Domain: attr, Path: attr, Secure: len(attr)%2 == 1, MaxAge: len(attr) % 3}
		cookies = append(cookies, raw)

		j.SetCookies(u, cookies)
		clk.Advance(time.Second)
		j.SetCookies(v, cookies)
		clk.Advance(time.Second)
		sent := j.Cookies(v)
		for _, c := range sent {
			if c.Name == "" || strings.ContainsAny(c.Name+c.Value, ";\"\r\n") {
				t.Fatalf("Cookies sends %q=%q", c.Name, c.Value)
			}
		}

		states := j.Export()
		if len(states) != j.Len() {
			t.Fatalf("Export has %d cookies, Len says %d", len(states), j.Len())
		}
		for i, s := range states {
			if err := s.Validate(); err != nil {
				t.Fatalf("exported state %+v: %v", s, err)
			}
			if i > 0 {
				p := states[i-1]
				if [3]string{p.Domain, p.Path, p.Name} == [3]string{s.Domain, s.Path, s.Name} {
					t.Fatalf("two cookies %s %s %s", s.Domain, s.Path, s.Name)
				}
			}
		}
		b, err := json.Marshal(states)
		if err != nil {
			t.Fatal(err)
		}
		var decoded []protocol.CookieState
		if err := json.Unmarshal(b, &decoded); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(decoded, states) {
			t.Fatalf("JSON round trip: %+v became %+v", states, decoded)
		}
		j2 := newJar(clk)
		if err := j2.Import(decoded); err != nil {
			t.Fatalf("Import of an export: %v", err)
		}
		if got := j2.Export(); !reflect.DeepEqual(got, states) {
			t.Fatalf("Export after Import:\n got %+v\nwant %+v", got, states)
		}
		for _, w := range []*url.URL{u, v} {
			if a, b := header(j.Cookies(w)), header(j2.Cookies(w)); a != b {
				t.Fatalf("Cookies(%s): %q, imported %q", w, a, b)
			}
		}

		// Past the longest life a cookie can get, only session cookies are left.
		clk.Advance(MaxAge)
		for _, s := range j.Export() {
			if !s.Expires.IsZero() {
				t.Fatalf("cookie outlived MaxAge: %+v", s)
			}
		}
	})
}
