package daemon

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestParseConnectTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"example.com:443", "example.com:443"},
		{"127.0.0.1:1", "127.0.0.1:1"},
		{"[::1]:65535", "[::1]:65535"},
		{"[::ffff:127.0.0.1]:80", "[::ffff:127.0.0.1]:80"},
		{"a_b-c.example.:8080", "a_b-c.example.:8080"},
		{"[127.0.0.1]:80", "127.0.0.1:80"},
		{"", ""},
		{"/path", ""},
		{"http://127.0.0.1:80", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:", ""},
		{"127.0.0.1:0", ""},
		{"127.0.0.1:65536", ""},
		{"127.0.0.1:99999", ""},
		{"127.0.0.1:000443", ""},
		{"127.0.0.1:-1", ""},
		{"127.0.0.1:+80", ""},
		{"127.0.0.1:http", ""},
		{":443", ""},
		{"u@host:443", ""},
		{"host/x:443", ""},
		{"[fe80::1%eth0]:443", ""},
		{"a..b:443", ""},
		{".a:443", ""},
		{strings.Repeat("a", 64) + ".com:443", ""},
		{"ex ample.com:443", ""},
	} {
		got, err := parseConnectTarget(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("parseConnectTarget(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseConnectTarget(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:80", "127.0.0.1:0", "/x", "http://a:1", "a:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := parseConnectTarget(in)
		if err != nil {
			if out != "" {
				t.Fatalf("%q: error %v with result %q", in, err, out)
			}
			return
		}
		host, port, err := net.SplitHostPort(out)
		if err != nil {
			t.Fatalf("%q -> %q: not host:port: %v", in, out, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("%q -> %q: port %q", in, out, port)
		}
		if host == "" || strings.ContainsAny(out, "/@?# %") {
			t.Fatalf("%q -> %q: bad host", in, out)
		}
		if again, err := parseConnectTarget(out); err != nil || again != out {
			t.Fatalf("%q -> %q -> %q, %v: not stable", in, out, again, err)
		}
	})
}
