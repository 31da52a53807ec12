package cookies

import (
	"fmt"
	"net/http"
	"testing"
)

// benchCookies are 20 cookies of a typical site: host and domain cookies
// over a few paths.
func benchCookies() []*http.Cookie {
	cs := make([]*http.Cookie, 20)
	for i := range cs {
		c := &http.Cookie{Name: fmt.Sprintf("cookie%02d", i), Value: fmt.Sprintf("value-%d-abcdefghijklmnop", i), MaxAge: 3600}
		switch i % 4 {
		case 1:
			c.Domain = "example.com"
		case 2:
			c.Path = "/app"
		case 3:
			c.Path, c.Secure, c.HttpOnly, c.SameSite = "/app/api", true, true, http.SameSiteLaxMode
		}
		cs[i] = c
	}
	return cs
}

func BenchmarkCookies(b *testing.B) {
	j := New(nil)
	j.SetCookies(mustURL(b, "https://www.example.com/"), benchCookies())
	u := mustURL(b, "https://www.example.com/app/api/items")
	if n := len(j.Cookies(u)); n != 20 {
		b.Fatalf("%d cookies, want 20", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		j.Cookies(u)
	}
}

func BenchmarkSetCookies(b *testing.B) {
	j := New(nil)
	u := mustURL(b, "https://www.example.com/")
	cs := benchCookies()
	b.ReportAllocs()
	for b.Loop() {
		j.SetCookies(u, cs) // after the first round, 20 overwrites
	}
}

// BenchmarkNewJar reports what an empty jar, one per idle session, costs.
func BenchmarkNewJar(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		jarSink = append(jarSink[:0], New(nil))
	}
	b.ReportMetric(float64(jarBytes()), "bytes/jar")
}
