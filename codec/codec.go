// Package codec decodes HTTP response bodies according to their
// Content-Encoding: gzip, deflate, br (Brotli) and zstd (Zstandard), alone or
// stacked.
//
// net/http decodes gzip only when it added Accept-Encoding itself. A session
// that sends a browser's Accept-Encoding ("gzip, deflate, br, zstd") gets the
// body as the server encoded it and must decode it itself, as a browser does;
// NewReader does that:
//
//	body, err := codec.NewReader(resp.Header.Get("Content-Encoding"), resp.Body)
//	if err != nil { ... } // errors.Is(err, codec.ErrUnsupported)
//	defer body.Close()    // closes resp.Body too
//
// # Behaviour
//
// A Content-Encoding that lists several codings names them in the order the
// server applied them (RFC 9110 section 8.4), so they are undone last first:
// "gzip, br" is Brotli over gzip. Names are case-insensitive; "x-gzip" is
// gzip and "identity" is no coding. "deflate" is the zlib format (RFC 1950),
// as HTTP defines it, but a raw DEFLATE stream (RFC 1951) is accepted too, as
// browsers accept it. An empty body is an empty result, whatever the coding,
// as for the bodies of HEAD requests and 204 and 304 responses.
//
// NewReader reads nothing: decoders are set up by the first Read, so a body
// that is closed unread costs one small allocation. Decoders (and their
// buffers) are kept in sync.Pools and reused; one goes back to its pool as
// soon as its stream ends, or at Close. No goroutine is started: the zstd
// decoder runs synchronously (zstd.WithDecoderConcurrency(1)).
//
// A decoding error, a corrupt or truncated stream, surfaces from Read, as an
// error that names the Content-Encoding and wraps the decoder's error (or the
// body's own read error), so errors.Is and errors.As see through it.
//
// # Memory
//
// A decoder's memory is bounded by the stream's window: 32 KiB for gzip and
// deflate, at most 16 MiB for Brotli (the large-window extension is off),
// and at most 64 MiB for zstd, whose frames may ask for more and are refused
// (RFC 9659 asks HTTP senders for at most 8 MiB). The decoded size is not
// bounded: a small body may decode to gigabytes, so a caller that keeps what
// it reads should read through an io.LimitReader or similar.
package codec

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// ErrUnsupported is wrapped by the error NewReader returns for a
// Content-Encoding it cannot decode; the error names the coding.
var ErrUnsupported = errors.New("unsupported content coding")

// errReadAfterClose is returned by Read after Close.
var errReadAfterClose = errors.New("codec: read after Close")

// maxCodings is how many codings (identity aside) one Content-Encoding may
// stack. Real servers apply one, rarely two; each layer holds a decoder.
const maxCodings = 4

// zstdMaxWindow caps the zstd window, and so the decoder's history buffer.
const zstdMaxWindow = 64 << 20

// drainLimit is how many bytes after the end of the compressed stream are
// read and discarded, so that net/http sees the body's end and can reuse the
// connection.
const drainLimit = 4 << 10

// coding is one content coding that needs decoding.
type coding uint8

const (
	codingGzip coding = iota + 1
	codingDeflate
	codingBrotli
	codingZstd
)

// lookupCoding maps a coding name to its coding; identity is 0 and ok.
func lookupCoding(name string) (c coding, ok bool) {
	switch {
	case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
		return codingGzip, true
	case strings.EqualFold(name, "deflate"):
		return codingDeflate, true
	case strings.EqualFold(name, "br"):
		return codingBrotli, true
	case strings.EqualFold(name, "zstd"):
		return codingZstd, true
	case strings.EqualFold(name, "identity"):
		return 0, true
	}
	return 0, false
}

// trimOWS removes the optional white space (spaces and tabs) of RFC 9110
// around a list element.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// Supported reports whether NewReader can decode the single content coding
// named by coding: gzip, x-gzip, deflate, br, zstd or identity, in any case.
func Supported(coding string) bool {
	_, ok := lookupCoding(trimOWS(coding))
	return ok
}

// NewReader returns a ReadCloser that decodes body according to
// contentEncoding, the value of a Content-Encoding header: one coding
// ("gzip", "deflate", "br", "zstd", "identity"), or a comma-separated list of
// codings in the order they were applied, which are undone in reverse. An
// empty contentEncoding means none. At most four codings may be stacked.
//
// Nothing is read from body until the first Read. Close closes body (once,
// however often it is called) and gives the decoders back for reuse. Read
// and Close may be called from different goroutines: a Close during a Read
// closes body, which ends the Read, as with any response body.
//
// A coding NewReader does not support is an error that wraps ErrUnsupported
// and names the coding; body is then left open, for the caller to close.
func NewReader(contentEncoding string, body io.ReadCloser) (io.ReadCloser, error) {
	if body == nil {
		return nil, errors.New("codec: NewReader with a nil body")
	}
	r := &reader{body: body, header: contentEncoding}
	for rest := contentEncoding; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, ",")
		name = trimOWS(name)
		if name == "" {
			continue // an empty list element, which RFC 9110 lets a recipient ignore
		}
		c, ok := lookupCoding(name)
		if !ok {
			return nil, fmt.Errorf("%w %q in Content-Encoding %q", ErrUnsupported, name, contentEncoding)
		}
		if c == 0 {
			continue // identity
		}
		if r.n == maxCodings {
			return nil, fmt.Errorf("%w: Content-Encoding %q stacks more than %d codings", ErrUnsupported, contentEncoding, maxCodings)
		}
		r.codings[r.n] = c
		r.n++
	}
	return r, nil
}

// reader decodes a body; see NewReader.
type reader struct {
	body    io.ReadCloser
	header  string             // the Content-Encoding, for error messages
	codings [maxCodings]coding // in the order applied
	n       int                // number of codings

	mu      sync.Mutex
	reading bool // a Read is under way; Close leaves the decoders to it
	closed  bool

	// Owned by the goroutine in Read (reading is true) or by whoever holds
	// mu while reading is false.
	out  io.Reader     // the decoded stream; nil until the first Read
	err  error         // sticky decoding error
	src  *bufio.Reader // buffer over body; nil without codings
	held [2*maxCodings + 1]pooled
	nh   int
}

func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return 0, errReadAfterClose
	case r.err != nil:
		r.mu.Unlock()
		return 0, r.err
	case len(p) == 0:
		r.mu.Unlock()
		return 0, nil
	}
	r.reading = true
	r.mu.Unlock()

	n, err := r.read(p)

	r.mu.Lock()
	r.reading = false
	if r.closed {
		r.release() // Close came during the Read and left this to us
	}
	r.mu.Unlock()
	return n, err
}

// read does the work of Read with r.reading set.
func (r *reader) read(p []byte) (int, error) {
	if r.out == nil {
		if err := r.start(); err != nil {
			r.fail(err)
			return 0, r.err
		}
	}
	n, err := r.out.Read(p)
	switch {
	case err == io.EOF:
		r.finish()
	case err != nil:
		r.fail(err)
		err = r.err
	}
	return n, err
}

// start builds the chain of decoders over body.
func (r *reader) start() error {
	if r.n == 0 {
		r.out = r.body
		return nil
	}
	r.src = r.bufferOf(r.body)
	if _, err := r.src.Peek(1); err != nil {
		if err == io.EOF {
			r.out = eofReader{} // an empty body decodes to nothing
			return nil
		}
		return err
	}
	var in io.Reader = r.src
	for i := r.n - 1; i >= 0; i-- {
		dec, err := r.open(r.codings[i], in)
		if err != nil {
			return err
		}
		in = dec
	}
	r.out = in
	return nil
}

// open returns a decoder of c reading from in.
func (r *reader) open(c coding, in io.Reader) (io.Reader, error) {
	switch c {
	case codingGzip:
		z, _ := gzipPool.Get().(*gzip.Reader)
		if z == nil {
			z = new(gzip.Reader)
		}
		r.hold(&gzipPool, z)
		if err := z.Reset(r.bufferOf(in)); err != nil {
			if err == io.EOF {
				return eofReader{}, nil // an empty inner stream
			}
			return nil, err
		}
		return z, nil

	case codingDeflate:
		b := r.bufferOf(in)
		hdr, err := b.Peek(2)
		if len(hdr) == 0 && err == io.EOF {
			return eofReader{}, nil
		}
		if len(hdr) == 2 && isZlibHeader(hdr[0], hdr[1]) {
			if z, _ := zlibPool.Get().(io.ReadCloser); z != nil {
				r.hold(&zlibPool, z)
				return z, z.(zlib.Resetter).Reset(b, nil)
			}
			z, err := zlib.NewReader(b)
			if err != nil {
				return nil, err
			}
			r.hold(&zlibPool, z)
			return z, nil
		}
		// Not zlib: a raw DEFLATE stream, as some servers send.
		f, _ := flatePool.Get().(io.ReadCloser)
		if f == nil {
			f = flate.NewReader(b)
		} else if err := f.(flate.Resetter).Reset(b, nil); err != nil {
			return nil, err
		}
		r.hold(&flatePool, f)
		return f, nil

	case codingBrotli:
		br, _ := brotliPool.Get().(*brotli.Reader)
		if br == nil {
			br = brotli.NewReader(in)
		} else {
			_ = br.Reset(in) // always nil
		}
		r.hold(&brotliPool, br)
		return br, nil

	case codingZstd:
		d, _ := zstdPool.Get().(*zstd.Decoder)
		if d == nil {
			var err error
			d, err = zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1), // synchronous: no goroutines
				zstd.WithDecoderMaxMemory(zstdMaxWindow),
				zstd.WithDecoderMaxWindow(zstdMaxWindow),
			)
			if err != nil {
				return nil, err
			}
		}
		r.hold(&zstdPool, d)
		if err := d.Reset(in); err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: coding %d", ErrUnsupported, c)
}

// isZlibHeader reports whether b0 and b1 are a zlib (RFC 1950) header: the
// deflate method, a window of at most 32 KiB, and a valid check value.
func isZlibHeader(b0, b1 byte) bool {
	return b0&0x0f == 8 && b0>>4 <= 7 && (uint16(b0)<<8|uint16(b1))%31 == 0
}

// bufferOf returns in as a *bufio.Reader, wrapping it in a pooled one unless
// it is one already: flate needs an io.ByteReader, and deflate sniffing needs
// Peek.
func (r *reader) bufferOf(in io.Reader) *bufio.Reader {
	if b, ok := in.(*bufio.Reader); ok {
		return b
	}
	b, _ := bufioPool.Get().(*bufio.Reader)
	if b == nil {
		b = bufio.NewReaderSize(in, 4<<10)
	} else {
		b.Reset(in)
	}
	r.hold(&bufioPool, b)
	return b
}

// finish runs at the end of the decoded stream: it reads on to the end of
// body, within drainLimit, so that net/http sees the body's end and may reuse
// the connection, and gives the decoders back.
func (r *reader) finish() {
	if r.src != nil {
		_, _ = r.src.Discard(drainLimit) // trailing bytes are ignored, as browsers do
	}
	r.out = eofReader{}
	r.release()
}

// fail records err as the sticky error, naming the Content-Encoding unless
// there is nothing to decode, and gives the decoders back.
func (r *reader) fail(err error) {
	r.err = err
	if r.n > 0 {
		r.err = fmt.Errorf("decoding Content-Encoding %q: %w", r.header, err)
	}
	r.out = nil
	r.release()
}

// Close closes body, once, and gives the decoders back.
func (r *reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if !r.reading {
		r.release()
	}
	r.mu.Unlock()
	return r.body.Close()
}

// pooled is a decoder or buffer and the pool it goes back to.
type pooled struct {
	pool *sync.Pool
	v    any
}

var (
	bufioPool  sync.Pool // *bufio.Reader
	gzipPool   sync.Pool // *gzip.Reader
	zlibPool   sync.Pool // io.ReadCloser from zlib.NewReader
	flatePool  sync.Pool // io.ReadCloser from flate.NewReader
	brotliPool sync.Pool // *brotli.Reader
	zstdPool   sync.Pool // *zstd.Decoder, with concurrency 1
)

// hold records v, taken from pool, to go back at release.
func (r *reader) hold(pool *sync.Pool, v any) {
	r.held[r.nh] = pooled{pool, v}
	r.nh++
}

// release gives back every held decoder and buffer, dropping their
// references to body so that a pooled decoder keeps nothing alive.
//
// A zstd decoder is never closed: with concurrency 1 it has no goroutine, and
// Close would only make it unusable; one that falls out of its pool is freed
// by the garbage collector like any other value.
func (r *reader) release() {
	for i := r.nh - 1; i >= 0; i-- {
		h := r.held[i]
		switch v := h.v.(type) {
		case *bufio.Reader:
			v.Reset(nil)
		case *brotli.Reader:
			_ = v.Reset(nil)
		case *zstd.Decoder:
			_ = v.Reset(nil)
		}
		h.pool.Put(h.v)
		r.held[i] = pooled{}
	}
	r.nh = 0
	r.src = nil
}

// eofReader is an empty stream.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
