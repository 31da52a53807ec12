package codec

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzNewReader decodes arbitrary bytes under an arbitrary Content-Encoding.
// Whatever the input, NewReader either refuses the header (with
// ErrUnsupported, leaving the body alone) or returns a reader that ends with
// EOF or an error: no panic, no hang, and the body closed exactly once.
//
// The seed corpus in testdata/fuzz/FuzzNewReader holds valid, truncated and
// corrupt streams of every coding, stacked codings and odd headers.
func FuzzNewReader(f *testing.F) {
	f.Add("gzip", []byte{})
	f.Add("identity", []byte("plain"))
	f.Fuzz(func(t *testing.T, ce string, data []byte) {
		body := newBody(data)
		r, err := NewReader(ce, body)
		single := trimOWS(ce)
		if !strings.Contains(ce, ",") && single != "" && Supported(single) != (err == nil) {
			t.Fatalf("Supported(%q) = %v, but NewReader error = %v", single, Supported(single), err)
		}
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("NewReader(%q) error %v does not wrap ErrUnsupported", ce, err)
			}
			if !strings.Contains(err.Error(), "Content-Encoding") {
				t.Fatalf("NewReader(%q) error %q does not name the header", ce, err)
			}
			if reads, closes, _ := body.counts(); reads != 0 || closes != 0 {
				t.Fatalf("refused body was read %d and closed %d times", reads, closes)
			}
			return
		}
		// Bound what a decompression bomb may produce.
		out, err := io.ReadAll(io.LimitReader(r, 8<<20))
		if err == nil && r.(*reader).n == 0 && !bytes.Equal(out, data) {
			t.Fatalf("identity decoding changed the body")
		}
		if err != nil && errors.Is(err, errReadAfterClose) {
			t.Fatalf("read error %v before Close", err)
		}
		if cerr := r.Close(); cerr != nil {
			t.Fatalf("Close: %v", cerr)
		}
		if _, cerr := r.Read(make([]byte, 1)); !errors.Is(cerr, errReadAfterClose) {
			t.Fatalf("Read after Close = %v", cerr)
		}
		if _, closes, _ := body.counts(); closes != 1 {
			t.Fatalf("body closed %d times", closes)
		}
	})
}
