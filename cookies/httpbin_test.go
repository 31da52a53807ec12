package cookies

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// TestHTTPBin drives the jar through a real http.Client against go-httpbin.
func TestHTTPBin(t *testing.T) {
	srv := httptest.NewServer(httpbin.New())
	defer srv.Close()

	newClient := func() (*http.Client, *Jar) {
		j := New(nil)
		c := &http.Client{Jar: j, Transport: &http.Transport{}}
		t.Cleanup(c.CloseIdleConnections)
		return c, j
	}
	// get fetches path, following redirects, and returns the cookies
	// go-httpbin says the last request carried.
	get := func(c *http.Client, path string) map[string]string {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		var body struct {
			Cookies map[string]string `json:"cookies"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body.Cookies
	}

	c1, j1 := newClient()
	c2, j2 := newClient()
	if got := get(c1, "/cookies/set?a=1&b=2"); !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("after /cookies/set (redirected to /cookies): %v", got)
	}
	if got := get(c1, "/cookies"); !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("/cookies: %v", got)
	}
	for _, s := range j1.Export() {
		if s.Domain != "127.0.0.1" || !s.HostOnly || !s.HttpOnly || s.Path != "/" || !s.Expires.IsZero() {
			t.Errorf("stored %+v, want a host-only HttpOnly session cookie for 127.0.0.1 at /", s)
		}
	}

	if got := get(c2, "/cookies"); len(got) != 0 {
		t.Errorf("a second jar sees %v", got)
	}
	if got := get(c2, "/cookies/set?c=3"); !reflect.DeepEqual(got, map[string]string{"c": "3"}) {
		t.Errorf("second jar after /cookies/set: %v", got)
	}

	if got := get(c1, "/cookies/delete?a"); !reflect.DeepEqual(got, map[string]string{"b": "2"}) {
		t.Errorf("after /cookies/delete?a: %v", got)
	}
	if got := get(c1, "/cookies"); !reflect.DeepEqual(got, map[string]string{"b": "2"}) {
		t.Errorf("/cookies after delete: %v", got)
	}
	if n1, n2 := j1.Len(), j2.Len(); n1 != 1 || n2 != 1 {
		t.Errorf("Len = %d and %d, want 1 and 1", n1, n2)
	}

	// A Secure cookie over plain http to 127.0.0.1 (a loopback, secure
	// origin) is kept and sent back.
	if got := get(c2, "/cookies/set?s=4&attr[Secure]=true"); !reflect.DeepEqual(got, map[string]string{"c": "3", "s": "4"}) {
		t.Errorf("Secure cookie on loopback: %v", got)
	}

	// A jar restored from another's export carries its identity.
	c3, j3 := newClient()
	if err := j3.Import(j1.Export()); err != nil {
		t.Fatal(err)
	}
	if got := get(c3, "/cookies"); !reflect.DeepEqual(got, map[string]string{"b": "2"}) {
		t.Errorf("imported jar: %v", got)
	}
}
