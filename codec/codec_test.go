package codec

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// page returns n bytes of deterministic HTML-like text, compressible as a
// real page is.
func page(n int) []byte {
	words := []string{"<div class=\"item\">", "</div>", "<a href=\"/path/", "\">", "</a>", "session", "roster",
		"browser", "the", "of", "and", "<p>", "</p>", "header", "encoding", "\n", "  ", "data-id=\"", "\" "}
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(8) == 0 {
			fmt.Fprintf(&b, "%d", rng.IntN(100000))
		}
	}
	return b.Bytes()[:n]
}

// noise returns n pseudo-random, incompressible bytes.
func noise(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// encodeOne applies one coding. "deflate" is zlib-wrapped, as HTTP defines
// it; "deflate-raw" is a bare DEFLATE stream, sent as "deflate".
func encodeOne(t testing.TB, c string, data []byte) []byte {
	t.Helper()
	enc, err := encodeBytes(c, data)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// encodeBytes is encodeOne for use outside the test goroutine.
func encodeBytes(c string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch strings.ToLower(c) {
	case "gzip", "x-gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "deflate-raw":
		fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
		if err != nil {
			return nil, err
		}
		w = fw
	case "br":
		w = brotli.NewWriterLevel(&buf, brotli.DefaultCompression)
	case "zstd":
		enc, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		w = enc
	case "identity", "":
		return data, nil
	default:
		return nil, fmt.Errorf("no encoder for %q", c)
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encode applies each coding of list, in order.
func encode(t testing.TB, list []string, data []byte) []byte {
	t.Helper()
	for _, c := range list {
		data = encodeOne(t, c, data)
	}
	return data
}

// testBody is a request body that counts reads and closes and notes EOF.
type testBody struct {
	r      io.Reader
	mu     sync.Mutex
	reads  int
	closes int
	eof    bool
}

func newBody(b []byte) *testBody { return &testBody{r: bytes.NewReader(b)} }

func (b *testBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.reads++
	closed := b.closes > 0
	b.mu.Unlock()
	if closed {
		return 0, errors.New("testBody: read after close")
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	}
	return n, err
}

func (b *testBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closes++
	return nil
}

func (b *testBody) counts() (reads, closes int, eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads, b.closes, b.eof
}

// decodeAll decodes body with NewReader and reads it all, failing the test
// if that takes longer than a few seconds.
func decodeAll(t testing.TB, ce string, body io.ReadCloser, wrap func(io.Reader) io.Reader) ([]byte, error) {
	t.Helper()
	r, err := NewReader(ce, body)
	if err != nil {
		t.Fatalf("NewReader(%q): %v", ce, err)
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var src io.Reader = r
		if wrap != nil {
			src = wrap(r)
		}
		b, err := io.ReadAll(src)
		done <- result{b, err}
	}()
	select {
	case res := <-done:
		if cerr := r.Close(); cerr != nil {
			t.Errorf("Close: %v", cerr)
		}
		return res.b, res.err
	case <-time.After(10 * time.Second):
		t.Fatalf("decoding %q hangs", ce)
		return nil, nil
	}
}

func TestRoundTrip(t *testing.T) {
	payloads := map[string][]byte{
		"page 64KiB":  page(64 << 10),
		"short":       []byte("hello, roster"),
		"noise 70KiB": noise(70 << 10),
		"one byte":    {'x'},
	}
	for _, tc := range []struct {
		header string   // the Content-Encoding sent
		apply  []string // what the server did, in order
	}{
		{"gzip", []string{"gzip"}},
		{"x-gzip", []string{"gzip"}},
		{"GZip", []string{"gzip"}},
		{"deflate", []string{"deflate"}},
		{"deflate", []string{"deflate-raw"}},
		{"br", []string{"br"}},
		{"BR", []string{"br"}},
		{"zstd", []string{"zstd"}},
		{"identity", nil},
		{"", nil},
		{"gzip, br", []string{"gzip", "br"}},
		{"br, gzip", []string{"br", "gzip"}},
		{"deflate, zstd, gzip", []string{"deflate-raw", "zstd", "gzip"}},
		{" gzip ,, \tbr ", []string{"gzip", "br"}},
		{"identity, gzip, identity", []string{"gzip"}},
		{"deflate, deflate", []string{"deflate", "deflate"}},
		{"zstd, zstd, zstd, zstd", []string{"zstd", "zstd", "zstd", "zstd"}},
		{"gzip,deflate,br,zstd", []string{"gzip", "deflate", "br", "zstd"}},
	} {
		for pname, payload := range payloads {
			enc := encode(t, tc.apply, payload)
			for _, mode := range []struct {
				name string
				body func() io.Reader
				wrap func(io.Reader) io.Reader
			}{
				{"whole", func() io.Reader { return bytes.NewReader(enc) }, nil},
				{"byte by byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(enc)) }, iotest.OneByteReader},
				{"halves", func() io.Reader { return iotest.HalfReader(bytes.NewReader(enc)) }, iotest.HalfReader},
			} {
				if mode.name == "byte by byte" && len(payload) > 1<<10 && len(tc.apply) > 1 {
					continue // slow and adds nothing over the single codings
				}
				name := fmt.Sprintf("%q/%v/%s/%s", tc.header, tc.apply, pname, mode.name)
				t.Run(name, func(t *testing.T) {
					body := &testBody{r: mode.body()}
					got, err := decodeAll(t, tc.header, body, mode.wrap)
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					if !bytes.Equal(got, payload) {
						t.Fatalf("decoded %d bytes, want the %d of the payload", len(got), len(payload))
					}
					if _, closes, eof := body.counts(); closes != 1 || !eof {
						t.Errorf("body closed %d times, read to EOF %v; want 1, true", closes, eof)
					}
				})
			}
		}
	}
}

func TestEmptyBodies(t *testing.T) {
	for _, ce := range []string{"", "identity", "gzip", "deflate", "br", "zstd", "gzip, br", "zstd, deflate"} {
		t.Run(fmt.Sprintf("%q/empty body", ce), func(t *testing.T) {
			got, err := decodeAll(t, ce, newBody(nil), nil)
			if err != nil || len(got) != 0 {
				t.Errorf("decoding an empty body = %q, %v; want nothing and no error", got, err)
			}
		})
	}
	// An encoded empty payload is not an empty body: it goes through the decoders.
	for _, apply := range [][]string{{"gzip"}, {"deflate"}, {"deflate-raw"}, {"br"}, {"zstd"}, {"gzip", "br"}, {"br", "zstd"}} {
		ce := strings.Join(apply, ", ")
		ce = strings.ReplaceAll(ce, "deflate-raw", "deflate")
		t.Run(fmt.Sprintf("%q/encoded empty payload %v", ce, apply), func(t *testing.T) {
			got, err := decodeAll(t, ce, newBody(encode(t, apply, nil)), nil)
			if err != nil || len(got) != 0 {
				t.Errorf("decoding an encoded empty payload = %q, %v; want nothing and no error", got, err)
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"compress", `unsupported content coding "compress" in Content-Encoding "compress"`},
		{"gzip, compress", `unsupported content coding "compress" in Content-Encoding "gzip, compress"`},
		{"x-compress", `"x-compress"`},
		{"dcz", `"dcz"`},
		{"br;q=1", `"br;q=1"`},
		{"gzip br", `"gzip br"`},
		{"gzip, gzip, gzip, gzip, gzip", `Content-Encoding "gzip, gzip, gzip, gzip, gzip" stacks more than 4 codings`},
	} {
		t.Run(tc.header, func(t *testing.T) {
			body := newBody([]byte("data"))
			r, err := NewReader(tc.header, body)
			if r != nil || !errors.Is(err, ErrUnsupported) {
				t.Fatalf("NewReader(%q) = %v, %v; want an error wrapping ErrUnsupported", tc.header, r, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if reads, closes, _ := body.counts(); reads != 0 || closes != 0 {
				t.Errorf("body read %d and closed %d times; want it untouched", reads, closes)
			}
		})
	}
	if _, err := NewReader("gzip", nil); err == nil {
		t.Error("NewReader with a nil body succeeded")
	}
}

func TestSupported(t *testing.T) {
	for _, tc := range []struct {
		coding string
		want   bool
	}{
		{"gzip", true}, {"x-gzip", true}, {"GZIP", true}, {"deflate", true}, {"br", true},
		{"zstd", true}, {"identity", true}, {" br ", true},
		{"", false}, {"compress", false}, {"x-compress", false}, {"dcz", false}, {"dcb", false},
		{"gzip, br", false}, {"brotli", false}, {"*", false},
	} {
		if got := Supported(tc.coding); got != tc.want {
			t.Errorf("Supported(%q) = %v, want %v", tc.coding, got, tc.want)
		}
	}
}

// checksummed codings detect corruption; the others may decode it to
// garbage without an error.
var codingsUnderTest = []struct {
	header   string
	apply    []string
	checksum bool
}{
	{"gzip", []string{"gzip"}, true},
	{"deflate", []string{"deflate"}, true},
	{"deflate", []string{"deflate-raw"}, false},
	{"br", []string{"br"}, false},
	{"zstd", []string{"zstd"}, true},
	{"gzip, br", []string{"gzip", "br"}, true},
	{"br, zstd", []string{"br", "zstd"}, true},
}

func TestTruncatedBodiesFail(t *testing.T) {
	payload := page(20 << 10)
	for _, tc := range codingsUnderTest {
		enc := encode(t, tc.apply, payload)
		t.Run(fmt.Sprintf("%q/%v", tc.header, tc.apply), func(t *testing.T) {
			cuts := []int{1, 2, 3, 5, 10, 11, 18, len(enc) / 3, len(enc) / 2, len(enc) - 9, len(enc) - 5, len(enc) - 4, len(enc) - 2, len(enc) - 1}
			for i := 1; i < len(enc); i += len(enc)/40 + 1 {
				cuts = append(cuts, i)
			}
			for _, cut := range cuts {
				if cut <= 0 || cut >= len(enc) {
					continue
				}
				got, err := decodeAll(t, tc.header, newBody(enc[:cut]), nil)
				if err == nil {
					t.Errorf("body cut to %d of %d bytes decoded to %d bytes without an error", cut, len(enc), len(got))
				}
			}
		})
	}
}

func TestCorruptBodiesNeverPanic(t *testing.T) {
	payload := page(8 << 10)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range codingsUnderTest {
		enc := encode(t, tc.apply, payload)
		t.Run(fmt.Sprintf("%q/%v", tc.header, tc.apply), func(t *testing.T) {
			for range 300 {
				bad := bytes.Clone(enc)
				for range 1 + rng.IntN(3) {
					bad[rng.IntN(len(bad))] ^= byte(1 + rng.IntN(255))
				}
				got, err := decodeAll(t, tc.header, newBody(bad), nil)
				// With a checksum, corruption is an error unless it hit
				// bytes that do not matter (a gzip header's MTIME).
				if tc.checksum && err == nil && !bytes.Equal(got, payload) {
					t.Fatalf("corrupt body decoded to %d wrong bytes without an error", len(got))
				}
			}
			for _, junk := range [][]byte{{0}, {0xff, 0xff}, []byte("not compressed at all"), noise(4096)} {
				if _, err := decodeAll(t, tc.header, newBody(junk), nil); err == nil && tc.checksum {
					t.Errorf("junk %q decoded without an error", junk[:min(len(junk), 16)])
				}
			}
		})
	}
}

func TestDecodingErrorsNameTheEncoding(t *testing.T) {
	_, err := decodeAll(t, "gzip", newBody([]byte("plain text, not gzip")), nil)
	if err == nil || !strings.HasPrefix(err.Error(), `decoding Content-Encoding "gzip": gzip: `) || !errors.Is(err, gzip.ErrHeader) {
		t.Errorf("error %v, want one naming the Content-Encoding and wrapping gzip.ErrHeader", err)
	}
	cut := encode(t, []string{"zstd"}, page(4096))
	_, err = decodeAll(t, "zstd", newBody(cut[:len(cut)/2]), nil)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), `Content-Encoding "zstd"`) {
		t.Errorf("truncated zstd: error %v, want one wrapping io.ErrUnexpectedEOF", err)
	}
}

func TestBodyReadErrorsPassThrough(t *testing.T) {
	boom := errors.New("connection reset by test")
	enc := encode(t, []string{"br"}, page(64<<10))
	for _, ce := range []string{"br", "identity"} {
		src := io.MultiReader(bytes.NewReader(enc[:len(enc)/2]), iotest.ErrReader(boom))
		if ce == "identity" {
			src = iotest.ErrReader(boom)
		}
		r, err := NewReader(ce, io.NopCloser(src))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(r)
		if !errors.Is(err, boom) {
			t.Errorf("%q: error %v, want it to wrap the body's error", ce, err)
		}
		// The error sticks.
		if _, err2 := r.Read(make([]byte, 10)); !errors.Is(err2, boom) {
			t.Errorf("%q: next Read error %v, want the same", ce, err2)
		}
		if ce == "identity" && err != boom {
			t.Errorf("identity: error %v, want the body's own", err)
		}
		r.Close()
	}
}

func TestNewReaderIsLazy(t *testing.T) {
	for _, ce := range []string{"gzip", "deflate", "br", "zstd", "gzip, br", "identity"} {
		body := newBody(encode(t, []string{"gzip"}, []byte("x")))
		r, err := NewReader(ce, body)
		if err != nil {
			t.Fatal(err)
		}
		if reads, _, _ := body.counts(); reads != 0 {
			t.Errorf("%q: NewReader read the body %d times", ce, reads)
		}
		if _, err := r.Read(nil); err != nil {
			t.Errorf("%q: Read(nil) = %v", ce, err)
		}
		if reads, _, _ := body.counts(); reads != 0 {
			t.Errorf("%q: an empty Read read the body %d times", ce, reads)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if reads, closes, _ := body.counts(); reads != 0 || closes != 1 {
			t.Errorf("%q: unread and closed: body read %d, closed %d times; want 0, 1", ce, reads, closes)
		}
	}
}

func TestCloseClosesBodyOnce(t *testing.T) {
	enc := encode(t, []string{"zstd", "gzip"}, page(32<<10))
	for _, tc := range []struct {
		name string
		use  func(r io.Reader)
	}{
		{"unread", func(io.Reader) {}},
		{"partly read", func(r io.Reader) { _, _ = r.Read(make([]byte, 100)) }},
		{"read to EOF", func(r io.Reader) { _, _ = io.ReadAll(r) }},
		{"after an error", func(r io.Reader) { _, _ = io.ReadAll(io.LimitReader(r, 10)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := enc
			if tc.name == "after an error" {
				data = []byte("garbage that is not gzip")
			}
			body := newBody(data)
			r, err := NewReader("zstd, gzip", body)
			if err != nil {
				t.Fatal(err)
			}
			tc.use(r)
			for range 3 {
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			if _, closes, _ := body.counts(); closes != 1 {
				t.Errorf("body closed %d times, want 1", closes)
			}
			if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, errReadAfterClose) {
				t.Errorf("Read after Close = %d, %v; want 0, errReadAfterClose", n, err)
			}
		})
	}
}

// pipeBody is a body whose reads block until data is written or it is closed.
type pipeBody struct {
	*io.PipeReader
	mu     sync.Mutex
	closes int
}

func (p *pipeBody) Close() error {
	p.mu.Lock()
	p.closes++
	p.mu.Unlock()
	return p.PipeReader.Close()
}

func TestCloseDuringRead(t *testing.T) {
	for _, ce := range []string{"gzip", "deflate", "br", "zstd", "br, gzip"} {
		t.Run(ce, func(t *testing.T) {
			pr, pw := io.Pipe()
			body := &pipeBody{PipeReader: pr}
			r, err := NewReader(ce, body)
			if err != nil {
				t.Fatal(err)
			}
			enc := encode(t, strings.Split(strings.ReplaceAll(ce, " ", ""), ","), page(64<<10))
			go func() {
				// Half the body, then nothing: the reader blocks.
				_, _ = pw.Write(enc[:len(enc)/2])
			}()
			readErr := make(chan error, 1)
			go func() {
				_, err := io.ReadAll(r)
				readErr <- err
			}()
			time.Sleep(20 * time.Millisecond)
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			select {
			case err := <-readErr:
				if err == nil {
					t.Error("Read ended without an error after Close")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not end a blocked Read")
			}
			pw.Close()
			body.mu.Lock()
			defer body.mu.Unlock()
			if body.closes != 1 {
				t.Errorf("body closed %d times, want 1", body.closes)
			}
		})
	}
}

func TestRawAndZlibDeflate(t *testing.T) {
	for _, tc := range []struct {
		b0, b1 byte
		want   bool
	}{
		{0x78, 0x9c, true}, {0x78, 0x01, true}, {0x78, 0xda, true}, {0x78, 0x5e, true},
		{0x68, 0x81, true}, {0x08, 0x1d, true},
		{0x78, 0x9d, false}, // bad check value
		{0x79, 0x9c, false}, // not the deflate method
		{0x88, 0x98, false}, // window over 32 KiB
		{0x1f, 0x8b, false}, // gzip's magic
		{0xed, 0xbd, false}, // a typical raw deflate start
	} {
		if got := isZlibHeader(tc.b0, tc.b1); got != tc.want {
			t.Errorf("isZlibHeader(%#02x, %#02x) = %v, want %v", tc.b0, tc.b1, got, tc.want)
		}
	}
}

func TestTrailingBytesAreDrained(t *testing.T) {
	payload := page(4096)
	for _, apply := range []string{"deflate", "deflate-raw", "br"} {
		enc := append(encode(t, []string{apply}, payload), make([]byte, 100)...)
		if apply == "br" {
			// Brotli rejects bytes after its stream that it has already
			// buffered, so the extra bytes come in a later read.
			enc = encode(t, []string{apply}, payload)
		}
		ce := strings.TrimSuffix(apply, "-raw")
		body := newBody(enc)
		got, err := decodeAll(t, ce, body, nil)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%s with trailing bytes: %d bytes, %v", apply, len(got), err)
		}
		if _, _, eof := body.counts(); !eof {
			t.Errorf("%s: the body was not read to its end, so its connection could not be reused", apply)
		}
	}
}

func TestZstdWindowIsCapped(t *testing.T) {
	// A zstd frame with no checksum and no content size, a window of
	// 2^(10+e) bytes, and one raw block holding "x".
	frame := func(e byte) []byte {
		return []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, e << 3, 0x09, 0x00, 0x00, 'x'}
	}
	for _, tc := range []struct {
		window string
		e      byte
		ok     bool
	}{
		{"32 MiB", 15, true},
		{"64 MiB", 16, true},
		{"128 MiB", 17, false},
		{"2 GiB", 21, false},
	} {
		got, err := decodeAll(t, "zstd", newBody(frame(tc.e)), nil)
		if tc.ok && (err != nil || string(got) != "x") {
			t.Errorf("window %s: %q, %v; want \"x\"", tc.window, got, err)
		}
		if !tc.ok && (err == nil || !errors.Is(err, zstd.ErrWindowSizeExceeded)) {
			t.Errorf("window %s: %q, %v; want zstd.ErrWindowSizeExceeded", tc.window, got, err)
		}
	}
}

func TestNoGoroutinesWhileDecoding(t *testing.T) {
	enc := encode(t, []string{"zstd", "br", "gzip"}, page(256<<10))
	r, err := NewReader("zstd, br, gzip", newBody(enc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	// Mid-stream, every decoder is live: none may have started a goroutine.
	goleak.VerifyNone(t)
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	goleak.VerifyNone(t)
}

func TestConcurrentReaders(t *testing.T) {
	payload := page(32 << 10)
	var wg sync.WaitGroup
	for i := range 16 {
		apply := [][]string{{"gzip"}, {"deflate"}, {"br"}, {"zstd"}, {"gzip", "zstd"}}[i%5]
		enc := encode(t, apply, payload)
		ce := strings.Join(apply, ", ")
		wg.Go(func() {
			for range 20 {
				r, err := NewReader(ce, newBody(enc))
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, payload) {
					t.Errorf("%s: %d bytes, %v", ce, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
}
