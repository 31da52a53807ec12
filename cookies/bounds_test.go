package cookies

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/protocol"
)

// TestBoundsOnSet: a response with 1000 cookies leaves at most
// MaxCookiesPerSite for its site, the most recent ones; the site's
// subdomains share the bound, and another site keeps its own.
func TestBoundsOnSet(t *testing.T) {
	clk := newClock()
	j := New(&Options{Now: clk.Now})
	u := mustURL(t, "https://www.example.co.uk/")
	var cs []*http.Cookie
	for i := range 1000 {
		cs = append(cs, &http.Cookie{Name: fmt.Sprintf("c%04d", i), Value: "v"})
	}
	j.SetCookies(u, cs)
	got := j.Cookies(u)
	if len(got) != SitePurgeTo {
		t.Fatalf("after 1000 cookies in one response, %d are sent, want %d", len(got), SitePurgeTo)
	}
	for _, c := range got {
		if c.Name < "c0850" {
			t.Fatalf("kept %q: the most recent %d should stay", c.Name, SitePurgeTo)
		}
	}
	// A sibling subdomain of the same site shares its bound.
	clk.Advance(time.Second)
	sib := mustURL(t, "https://api.example.co.uk/")
	for i := range 100 {
		j.SetCookies(sib, []*http.Cookie{{Name: fmt.Sprintf("s%03d", i), Value: "v"}})
	}
	if n := j.Len(); n > MaxCookiesPerSite {
		t.Errorf("site example.co.uk holds %d cookies, want at most %d", n, MaxCookiesPerSite)
	}
	// Another site is not touched.
	j.SetCookies(mustURL(t, "https://other.test/"), []*http.Cookie{{Name: "o", Value: "v"}})
	if got := j.Cookies(mustURL(t, "https://other.test/")); len(got) != 1 {
		t.Errorf("other site: %d cookies", len(got))
	}
}

// TestBoundsEvictLeastRecentlyUsed: the oldest cookie of a site, if it was
// just sent, survives the purge; older unused ones go.
func TestBoundsEvictLeastRecentlyUsed(t *testing.T) {
	clk := newClock()
	j := New(&Options{Now: clk.Now})
	u := mustURL(t, "https://a.test/")
	keep := mustURL(t, "https://keep.a.test/") // same site, its own host-only cookie
	j.SetCookies(keep, []*http.Cookie{{Name: "precious", Value: "1"}})
	for i := range MaxCookiesPerSite - 1 {
		clk.Advance(time.Millisecond)
		j.SetCookies(u, []*http.Cookie{{Name: fmt.Sprintf("c%03d", i), Value: "v"}})
	}
	clk.Advance(time.Second)
	if got := j.Cookies(keep); len(got) != 1 {
		t.Fatalf("keep.a.test gets %d cookies, want 1", len(got))
	}
	for i := range 40 {
		clk.Advance(time.Millisecond)
		j.SetCookies(u, []*http.Cookie{{Name: fmt.Sprintf("n%03d", i), Value: "v"}})
	}
	names := map[string]bool{}
	for _, c := range j.Export() {
		names[c.Name] = true
	}
	if !names["precious"] || !names["n039"] || names["c000"] {
		t.Errorf("the purge went by something else than last use: precious %v, n039 %v, c000 %v",
			names["precious"], names["n039"], names["c000"])
	}
	if len(names) > MaxCookiesPerSite {
		t.Errorf("%d cookies for one site", len(names))
	}
}

// TestBoundsTotal: many sites together stay under MaxCookies.
func TestBoundsTotal(t *testing.T) {
	j := New(nil)
	for s := range 40 {
		u := mustURL(t, fmt.Sprintf("https://site%d.test/", s))
		var cs []*http.Cookie
		for i := range 100 {
			cs = append(cs, &http.Cookie{Name: fmt.Sprintf("c%d", i), Value: "v"})
		}
		j.SetCookies(u, cs)
	}
	if n := j.Len(); n > MaxCookies {
		t.Errorf("jar holds %d cookies, want at most %d", n, MaxCookies)
	}
	if got := j.Cookies(mustURL(t, "https://site39.test/")); len(got) != 100 {
		t.Errorf("the last site set keeps %d cookies, want 100", len(got))
	}
}

// TestBoundsOnImport: a restore of 12,000 cookies keeps the most recently
// used within the bounds.
func TestBoundsOnImport(t *testing.T) {
	clk := newClock()
	j := New(&Options{Now: clk.Now})
	var cs []protocol.CookieState
	for i := range 12000 {
		cs = append(cs, protocol.CookieState{
			Name: fmt.Sprintf("c%05d", i), Value: "v", Domain: "a.test", Path: "/", HostOnly: true,
			LastAccess: t0.Add(-time.Duration(12000-i) * time.Second),
		})
	}
	if err := j.Import(cs); err != nil {
		t.Fatal(err)
	}
	got := j.Export()
	if len(got) != SitePurgeTo {
		t.Fatalf("after importing 12000 cookies for one site, %d remain, want %d", len(got), SitePurgeTo)
	}
	if got[0].Name != fmt.Sprintf("c%05d", 12000-SitePurgeTo) {
		t.Errorf("the oldest kept is %q, want the %d most recently used", got[0].Name, SitePurgeTo)
	}
}

// TestSizeLimits: RFC 6265bis section 5.7.
func TestSizeLimits(t *testing.T) {
	j := New(nil)
	u := mustURL(t, "https://a.test/dir/page")
	long := strings.Repeat("x", protocol.MaxCookieAttributeSize+1)
	j.SetCookies(u, []*http.Cookie{
		{Name: "big", Value: strings.Repeat("v", protocol.MaxCookieNameValueSize-2)},  // 4097 bytes: ignored
		{Name: "fits", Value: strings.Repeat("v", protocol.MaxCookieNameValueSize-4)}, // 4096: kept
		{Name: "longpath", Value: "1", Path: "/" + long},                              // the path is ignored
		{Name: "longdomain", Value: "1", Domain: long + ".a.test"},                    // the domain is ignored
	})
	byName := map[string]protocol.CookieState{}
	for _, c := range j.Export() {
		byName[c.Name] = c
	}
	if _, ok := byName["big"]; ok {
		t.Error("kept a cookie of 4097 bytes")
	}
	if _, ok := byName["fits"]; !ok {
		t.Error("dropped a cookie of 4096 bytes")
	}
	if c := byName["longpath"]; c.Path != "/dir" {
		t.Errorf("a Path over 1024 bytes gave path %.20q, want the default /dir", c.Path)
	}
	if c := byName["longdomain"]; !c.HostOnly || c.Domain != "a.test" {
		t.Errorf("a Domain over 1024 bytes gave domain %.20q host-only %v, want host-only a.test", c.Domain, c.HostOnly)
	}
	err := j.Import([]protocol.CookieState{{Name: "big", Value: strings.Repeat("v", 5000), Domain: "a.test", Path: "/"}})
	if err == nil || !strings.Contains(err.Error(), "5003 bytes, the limit is 4096") {
		t.Errorf("Import of a 5003-byte cookie: %v", err)
	}
}

// TestSiteOf: the unit of the per-site bound.
func TestSiteOf(t *testing.T) {
	j := New(nil)
	for in, want := range map[string]string{
		"www.example.co.uk": "example.co.uk", "example.co.uk": "example.co.uk", "co.uk": "co.uk",
		"a.b.c.example.com": "example.com", "127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "localhost",
	} {
		if got := j.siteOf(in); got != want {
			t.Errorf("siteOf(%q) = %q, want %q", in, got, want)
		}
	}
}
