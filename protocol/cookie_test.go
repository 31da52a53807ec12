package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCookieStateValidate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := CookieState{Name: "sid", Value: "abc", Domain: "example.com", Path: "/", Created: now, LastAccess: now}
	with := func(f func(*CookieState)) CookieState {
		c := ok
		f(&c)
		return c
	}
	tests := []struct {
		name string
		c    CookieState
		want string // part of the message; empty means valid
	}{
		{"minimal", ok, ""},
		{"all attributes", with(func(c *CookieState) {
			c.HostOnly, c.Secure, c.HttpOnly, c.SameSite, c.Expires = true, true, true, "Strict", now.Add(time.Hour)
		}), ""},
		{"token name", with(func(c *CookieState) { c.Name = "__Host-a.b_c!#$%&'*+-^`|~" }), ""},
		{"empty value", with(func(c *CookieState) { c.Value = "" }), ""},
		{"quoted value", with(func(c *CookieState) { c.Value = `"a b"` }), ""},
		{"empty quoted value", with(func(c *CookieState) { c.Value = `""` }), ""},
		{"value with space and comma", with(func(c *CookieState) { c.Value = "a b,c" }), ""},
		{"IPv6 domain", with(func(c *CookieState) { c.Domain = "fe80::1%en0" }), ""},
		{"IDN domain", with(func(c *CookieState) { c.Domain = "xn--bcher-kva.example" }), ""},
		{"path with odd bytes", with(func(c *CookieState) { c.Path = "/a b;c%20" }), ""},
		{"SameSite Lax", with(func(c *CookieState) { c.SameSite = "Lax" }), ""},
		{"SameSite None", with(func(c *CookieState) { c.SameSite = "None" }), ""},
		{"zero times", with(func(c *CookieState) { c.Created, c.LastAccess = time.Time{}, time.Time{} }), ""},

		{"empty name", with(func(c *CookieState) { c.Name = "" }), "name is empty"},
		{"name with space", with(func(c *CookieState) { c.Name = "a b" }), `name "a b": byte 0x20 at offset 1`},
		{"name with equals", with(func(c *CookieState) { c.Name = "a=b" }), `name "a=b": byte 0x3d`},
		{"name with non-ASCII", with(func(c *CookieState) { c.Name = "é" }), `name "é"`},
		{"value with semicolon", with(func(c *CookieState) { c.Value = "a;b" }), `value of "sid": byte 0x3b`},
		{"value with backslash", with(func(c *CookieState) { c.Value = `a\b` }), "byte 0x5c"},
		{"value with inner quote", with(func(c *CookieState) { c.Value = `a"b` }), "byte 0x22"},
		{"value with one quote", with(func(c *CookieState) { c.Value = `"` }), "byte 0x22"},
		{"value with control byte", with(func(c *CookieState) { c.Value = "a\nb" }), "byte 0x0a"},
		{"value with non-ASCII", with(func(c *CookieState) { c.Value = "ü" }), "byte 0xc3"},
		{"empty domain", with(func(c *CookieState) { c.Domain = "" }), `domain of "sid" is empty`},
		{"leading dot", with(func(c *CookieState) { c.Domain = ".example.com" }), `domain ".example.com": leading dot`},
		{"upper-case domain", with(func(c *CookieState) { c.Domain = "Example.com" }), `domain "Example.com": byte 0x45 at offset 0`},
		{"domain with space", with(func(c *CookieState) { c.Domain = "a b" }), `domain "a b"`},
		{"non-ASCII domain", with(func(c *CookieState) { c.Domain = "bücher.example" }), `domain "bücher.example"`},
		{"domain with slash", with(func(c *CookieState) { c.Domain = "a/b" }), `domain "a/b"`},
		{"empty path", with(func(c *CookieState) { c.Path = "" }), `path "" of "sid": must start with "/"`},
		{"relative path", with(func(c *CookieState) { c.Path = "a/b" }), `path "a/b"`},
		{"path with control byte", with(func(c *CookieState) { c.Path = "/a\x00" }), `path "/a\x00": byte 0x00 at offset 2`},
		{"lower-case SameSite", with(func(c *CookieState) { c.SameSite = "lax" }), `sameSite "lax" of "sid"`},
		{"unknown SameSite", with(func(c *CookieState) { c.SameSite = "Default" }), `sameSite "Default"`},
		{"year 10000", with(func(c *CookieState) { c.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "expires"},
		{"negative year", with(func(c *CookieState) { c.Created = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }), "created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidCookie) {
				t.Errorf("%v does not wrap ErrInvalidCookie", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCookieStateJSON(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	tests := []struct {
		c    CookieState
		want string
	}{
		{CookieState{Name: "a", Value: "1", Domain: "h.com", Path: "/", Created: created, LastAccess: created},
			`{"name":"a","value":"1","domain":"h.com","path":"/","created":"2026-03-01T12:00:00.000000005Z","lastAccess":"2026-03-01T12:00:00.000000005Z"}`},
		{CookieState{Name: "b", Value: `"x"`, Domain: "h.com", Path: "/p", HostOnly: true, Secure: true, HttpOnly: true, SameSite: "Lax",
			Expires: created.Add(time.Hour), Created: created, LastAccess: created},
			`{"name":"b","value":"\"x\"","domain":"h.com","path":"/p","hostOnly":true,"secure":true,"httpOnly":true,"sameSite":"Lax",` +
				`"expires":"2026-03-01T13:00:00.000000005Z","created":"2026-03-01T12:00:00.000000005Z","lastAccess":"2026-03-01T12:00:00.000000005Z"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.c)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("Marshal:\n got %s\nwant %s", b, tt.want)
		}
		var back CookieState
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, tt.c) {
			t.Errorf("round trip: %+v became %+v", tt.c, back)
		}
	}
}

// FuzzCookieStateJSON: whatever JSON decodes into []CookieState, Validate
// does not panic, and a valid state survives a JSON round trip.
func FuzzCookieStateJSON(f *testing.F) {
	f.Add([]byte(`[{"name":"a","value":"1","domain":"h.com","path":"/","created":"2026-03-01T12:00:00Z","lastAccess":"2026-03-01T12:00:00Z"}]`))
	f.Add([]byte(`[{"name":"a b","value":"x;y","domain":".H.com","path":"rel","sameSite":"lax","expires":"9999-12-31T23:59:59.999999999-23:59"}]`))
	f.Add([]byte(`[{"name":"__Host-s","value":"\"q\"","domain":"::1","path":"/","hostOnly":true,"secure":true,"httpOnly":true,"sameSite":"None"},{},null]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cs []CookieState
		if json.Unmarshal(data, &cs) != nil {
			return
		}
		for _, c := range cs {
			err := c.Validate()
			if err != nil {
				if !errors.Is(err, ErrInvalidCookie) {
					t.Fatalf("Validate error %v does not wrap ErrInvalidCookie", err)
				}
				continue
			}
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("a valid state does not marshal: %+v: %v", c, err)
			}
			var back CookieState
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal of %s: %v", b, err)
			}
			if err := back.Validate(); err != nil {
				t.Fatalf("%s no longer validates: %v", b, err)
			}
			if b2, _ := json.Marshal(back); string(b2) != string(b) {
				t.Fatalf("round trip changed %s to %s", b, b2)
			}
		}
	})
}
