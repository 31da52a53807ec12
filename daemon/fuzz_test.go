package daemon

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// FuzzProxyCredentials checks the parsing of Proxy-Authorization and the
// X-Roster-* headers: it never panics; a well-formed Basic credential
// round-trips; a credential it does not take leaves the headers in charge;
// one it takes is exactly what the header encodes.
func FuzzProxyCredentials(f *testing.F) {
	for _, s := range [][4]string{
		{"01JNZ5V6X0AAAAAAAAAAAAAAAA", "t0k", "", ""},
		{"id", "tok:with:colons", "", ""},
		{"", "", "Basic aWQ6dG9r", ""},
		{"", "", "basic   aWQ6dG9r  ", ""},
		{"", "", "Bearer aWQ6dG9r", "hid"},
		{"", "", "Basic !!!", "hid"},
		{"", "", "Basic bm9jb2xvbg==", "hid"},
		{"", "", "Basic", ""},
		{"", "", "", "hid"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, id, tok, rawAuth, hdrID string) {
		const hdrTok = "header-token"

		// A credential built the way clients build it round-trips, when
		// the user name has no colon (RFC 7617 forbids one there).
		if !strings.Contains(id, ":") {
			r := &http.Request{Header: http.Header{}}
			r.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+tok)))
			r.Header.Set(HeaderSession, hdrID)
			r.Header.Set(HeaderToken, hdrTok)
			if gotID, gotTok := proxyCredentials(r); gotID != id || gotTok != tok {
				t.Fatalf("Basic %q:%q gave %q:%q", id, tok, gotID, gotTok)
			}
		}

		// Arbitrary input: no panic, and the answer is either the headers
		// or what the credential encodes.
		r := &http.Request{Header: http.Header{}}
		r.Header["Proxy-Authorization"] = []string{rawAuth}
		r.Header.Set(HeaderSession, hdrID)
		r.Header.Set(HeaderToken, hdrTok)
		gotID, gotTok := proxyCredentials(r)
		if wantID, wantTok, ok := decodeBasic(rawAuth); ok {
			if gotID != wantID || gotTok != wantTok {
				t.Fatalf("%q gave %q:%q, want %q:%q", rawAuth, gotID, gotTok, wantID, wantTok)
			}
		} else if gotID != hdrID || gotTok != hdrTok {
			t.Fatalf("%q is no Basic credential, yet gave %q:%q instead of the headers' %q:%q", rawAuth, gotID, gotTok, hdrID, hdrTok)
		}
	})
}

// decodeBasic is a reference parser: "Basic" in any case, one or more
// spaces, standard base64 of "user:password". The scheme is matched with
// Unicode case folding, as the daemon does today (see
// TestProxyCredentialsSchemeASCII).
func decodeBasic(v string) (user, pw string, ok bool) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !asciiLowerIs(scheme, "basic") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	user, pw, ok = strings.Cut(string(b), ":")
	return user, pw, ok
}

// The auth-scheme is an ASCII token (RFC 9110 section 11.1): "baſic", whose
// U+017F folds to "s" under Unicode rules, is not "Basic".
func TestProxyCredentialsSchemeASCII(t *testing.T) {
	for _, scheme := range []string{"Ba\u017fic", "BA\u017fIC"} {
		r := &http.Request{Header: http.Header{}}
		r.Header.Set("Proxy-Authorization", scheme+" "+base64.StdEncoding.EncodeToString([]byte("id:tok")))
		r.Header.Set(HeaderSession, "hid")
		if id, _ := proxyCredentials(r); id != "hid" {
			t.Errorf("scheme %q taken as Basic: id %q", scheme, id)
		}
	}
}

// asciiLowerIs reports whether s, with ASCII letters lowered and nothing
// else changed, is lower: the reference's own fold, independent of the one
// under test.
func asciiLowerIs(s, lower string) bool {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b) == lower
}
