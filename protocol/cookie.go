package protocol

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidCookie is wrapped by every error CookieState.Validate returns.
var ErrInvalidCookie = errors.New("invalid cookie")

// Size limits of RFC 6265bis section 5.7, which browsers apply: a cookie
// whose name and value together are longer than MaxCookieNameValueSize bytes
// is ignored, and so is a Domain or Path attribute longer than
// MaxCookieAttributeSize bytes.
const (
	MaxCookieNameValueSize = 4096
	MaxCookieAttributeSize = 1024
)

// SameSite values a CookieState may hold; the empty string means the cookie
// had no (or an unknown) SameSite attribute.
const (
	SameSiteStrict = "Strict"
	SameSiteLax    = "Lax"
	SameSiteNone   = "None"
)

// CookieState is one cookie with every attribute a jar keeps, as saved and restored.
//
// It is the storage model of RFC 6265 section 5.3 less the persistent-flag,
// which is Expires being non-zero. Times are instants; a jar writes them in
// UTC.
type CookieState struct {
	// Name is the cookie's name, an RFC 6265 token.
	Name string `json:"name"`
	// Value is the value as received: a quoted value keeps its DQUOTEs.
	Value string `json:"value"`
	// Domain is the host (HostOnly) or the domain (and its subdomains) the
	// cookie is sent to: canonical, lower case, no leading dot.
	Domain string `json:"domain"`
	// Path is the path the cookie is sent for and below.
	Path string `json:"path"`
	// HostOnly means the cookie is sent to Domain exactly, not to its
	// subdomains (it came without a Domain attribute).
	HostOnly bool `json:"hostOnly,omitempty"`
	// Secure means the cookie is sent over https (or to loopback) only.
	Secure bool `json:"secure,omitempty"`
	// HttpOnly is kept as received; a jar has no scripts to hide it from.
	HttpOnly bool `json:"httpOnly,omitempty"`
	// SameSite is "Strict", "Lax", "None" or "", kept as received.
	SameSite string `json:"sameSite,omitempty"`
	// Expires is when the cookie expires, RFC 3339 text in JSON; zero
	// (absent) means a session cookie, kept until the jar is cleared.
	Expires time.Time `json:"expires,omitzero"`
	// Created is when the cookie was first stored; it orders cookies of
	// equal path length in the Cookie header.
	Created time.Time `json:"created"`
	// LastAccess is when the cookie was last sent or set; the jar's
	// bounds evict the least recently accessed first.
	LastAccess time.Time `json:"lastAccess"`
}

// Validate reports the first problem with c; the error wraps ErrInvalidCookie
// and names the field and the value at fault.
//
// The name and value together must be at most MaxCookieNameValueSize bytes,
// the domain and path each at most MaxCookieAttributeSize. The name must be
// a non-empty RFC 6265 token. The value must be RFC 6265
// cookie-octets, optionally inside one pair of DQUOTEs; space and comma are
// also accepted, as net/http accepts them from servers (and quotes the value
// when it sends it back). The domain must be non-empty, without a leading
// dot, and made of lower-case letters, digits and "-._:%" (an A-label host
// name or an IP address). The path must start with "/" and be printable
// ASCII. SameSite must be "", "Strict", "Lax" or "None", and every time must
// fall in the years 0 to 9999, which is what JSON can carry.
func (c CookieState) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCookie}, args...)...)
	}
	if c.Name == "" {
		return bad("name is empty")
	}
	if n := len(c.Name) + len(c.Value); n > MaxCookieNameValueSize {
		return bad("name and value of %.32q...: %d bytes, the limit is %d", c.Name, n, MaxCookieNameValueSize)
	}
	if len(c.Domain) > MaxCookieAttributeSize || len(c.Path) > MaxCookieAttributeSize {
		return bad("domain or path of %.32q: %d and %d bytes, the limit is %d", c.Name, len(c.Domain), len(c.Path), MaxCookieAttributeSize)
	}
	for i := 0; i < len(c.Name); i++ {
		if !isTokenByte(c.Name[i]) {
			return bad("name %q: byte %#02x at offset %d is not allowed in a cookie name", c.Name, c.Name[i], i)
		}
	}
	v := c.Value
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if !isCookieValueByte(v[i]) {
			return bad("value of %q: byte %#02x is not allowed in a cookie value", c.Name, v[i])
		}
	}
	if c.Domain == "" {
		return bad("domain of %q is empty", c.Name)
	}
	if c.Domain[0] == '.' {
		return bad("domain %q: leading dot", c.Domain)
	}
	for i := 0; i < len(c.Domain); i++ {
		if !isCookieDomainByte(c.Domain[i]) {
			return bad("domain %q: byte %#02x at offset %d is not allowed in a canonical host name", c.Domain, c.Domain[i], i)
		}
	}
	if c.Path == "" || c.Path[0] != '/' {
		return bad("path %q of %q: must start with \"/\"", c.Path, c.Name)
	}
	for i := 0; i < len(c.Path); i++ {
		if b := c.Path[i]; b < 0x20 || b > 0x7e {
			return bad("path %q: byte %#02x at offset %d is not printable ASCII", c.Path, b, i)
		}
	}
	switch c.SameSite {
	case "", SameSiteStrict, SameSiteLax, SameSiteNone:
	default:
		return bad("sameSite %q of %q: want Strict, Lax, None or empty", c.SameSite, c.Name)
	}
	for _, t := range []struct {
		field string
		t     time.Time
	}{{"expires", c.Expires}, {"created", c.Created}, {"lastAccess", c.LastAccess}} {
		if y := t.t.Year(); y < 0 || y > 9999 {
			return bad("%s %v of %q: year outside 0 to 9999", t.field, t.t, c.Name)
		}
	}
	return nil
}

// isCookieValueByte reports whether b may appear in a cookie value (inside
// the DQUOTEs of a quoted one): printable ASCII other than DQUOTE, semicolon
// and backslash, as net/http reads them from a Set-Cookie header.
func isCookieValueByte(b byte) bool {
	return 0x20 <= b && b < 0x7f && b != '"' && b != ';' && b != '\\'
}

// isCookieDomainByte reports whether b may appear in CookieState.Domain:
// a lower-case letter, a digit, or one of "-._:%".
func isCookieDomainByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '-', '.', '_', ':', '%':
		return true
	}
	return false
}

// isTokenByte reports whether b is an RFC 9110 tchar, of which RFC 6265
// cookie names are made.
func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
