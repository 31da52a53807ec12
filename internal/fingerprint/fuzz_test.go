package fingerprint

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParseClientHello: any input either parses, and then its Raw parses to
// the same fingerprints, or gives an error wrapping ErrMalformed; never a
// panic. Seeds (testdata/fuzz) are the captured Chromium and Firefox hellos,
// whole and split over records.
func FuzzParseClientHello(f *testing.F) {
	f.Add(foxioHello(false))
	f.Add(records(foxioHello(true), 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseClientHello(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		raw, err := hex.DecodeString(got.Raw)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseClientHello(raw)
		if err != nil {
			t.Fatalf("Raw of a parsed hello does not parse: %v", err)
		}
		if again.JA4R != got.JA4R || again.JA3 != got.JA3 || !slices.Equal(again.Extensions, got.Extensions) {
			t.Fatalf("Raw reparses differently: %s %s, want %s %s", again.JA4R, again.JA3, got.JA4R, got.JA3)
		}
	})
}

// FuzzReadHTTP2: any input gives an HTTP/2 start or an error; never a panic.
// Seeds are the captured browsers' frames rebuilt, and PRIORITY frames with a
// HEADERS block continued.
func FuzzReadHTTP2(f *testing.F) {
	f.Add(h2Start(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHTTP2(bytes.NewReader(data))
		if err == nil && (h.Akamai != h.akamai() || len(h.Frames) == 0 || h.Frames[len(h.Frames)-1] != "HEADERS") {
			t.Fatalf("inconsistent result %+v", h)
		}
	})
}

// FuzzReadHTTP1: any input gives a request head whose names have no spaces
// or an error; never a panic.
func FuzzReadHTTP1(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.0\nA:b\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHTTP1(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		if len(h.HeaderOrder) != len(h.Headers) {
			t.Fatalf("%d names, %d headers", len(h.HeaderOrder), len(h.Headers))
		}
		for _, n := range h.HeaderOrder {
			if n == "" || strings.ContainsAny(n, " \t\r\n") {
				t.Fatalf("header name %q", n)
			}
		}
	})
}
