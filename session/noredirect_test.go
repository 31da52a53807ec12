package session

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// WithoutRedirects returns the 3xx as it came and keeps its cookies; Do
// without it follows redirects as configured.
func TestWithoutRedirects(t *testing.T) {
	plain, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	for _, via := range []string{"Do", "Client"} {
		s := newSessionFor(t, m, nil)
		req, _ := http.NewRequestWithContext(WithoutRedirects(context.Background()), http.MethodGet, plain.URL+"/cookies/set?k=v", nil)
		var resp *http.Response
		var err error
		if via == "Do" {
			resp, err = s.Do(req)
		} else {
			resp, err = s.Client().Do(req)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/cookies" {
			t.Fatalf("%s under WithoutRedirects: %d Location %q, want 302 /cookies", via, resp.StatusCode, resp.Header.Get("Location"))
		}
		if cs := s.Cookies(); len(cs) != 1 || cs[0].Name != "k" || cs[0].Value != "v" {
			t.Fatalf("%s: cookies after the 302: %+v", via, cs)
		}
		if s.Stats().InFlight != 0 {
			t.Fatalf("%s: in flight after the body closed", via)
		}
	}
	s := newSessionFor(t, m, nil)
	resp, body := get(t, s, plain.URL+"/cookies/set?k=w")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/cookies" {
		t.Fatalf("plain Do: %d at %s (%s), want the redirect followed", resp.StatusCode, resp.Request.URL.Path, body)
	}
}
