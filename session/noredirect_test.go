package session

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rosterhq/roster/protocol"
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

// Under WithoutRedirects a request is one exchange, made without
// http.Client: the jar's cookies go out (on a copy: the caller's header is
// left alone), and errors are *url.Error as http.Client makes them.
func TestWithoutRedirectsOneExchange(t *testing.T) {
	plain, _, _ := newHTTPBin(t)
	m, _ := newTestManager(t)
	for _, p := range []string{"go", "chrome-latest"} {
		s := newSessionFor(t, m, &protocol.SessionConfig{Preset: p})
		ctx := WithoutRedirects(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, plain.URL+"/cookies/set?k=v", nil)
		resp, err := s.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, plain.URL+"/cookies", nil)
		resp, err = s.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"k": "v"`) && !strings.Contains(string(b), `"k":"v"`) {
			t.Errorf("%s: /cookies answered %s, want the jar's k=v", p, b)
		}
		if c := req.Header.Get("Cookie"); c != "" {
			t.Errorf("%s: the caller's request got Cookie %q", p, c)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := newSessionFor(t, m, nil)
	target := "http://user:secret@" + addr + "/x"
	req, _ := http.NewRequestWithContext(WithoutRedirects(context.Background()), http.MethodPost, target, nil)
	_, errOnce := s.Do(req)
	req, _ = http.NewRequest(http.MethodPost, target, nil)
	_, errClient := s.Do(req)
	var ue *url.Error
	if !errors.As(errOnce, &ue) || ue.Op != "Post" || strings.Contains(ue.URL, "secret") {
		t.Fatalf("error %#v, want a *url.Error with Op Post and no password", errOnce)
	}
	if errOnce.Error() != errClient.Error() {
		t.Errorf("errors differ:\n one exchange: %v\n http.Client:  %v", errOnce, errClient)
	}
}
