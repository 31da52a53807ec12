package codec

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// reusableBody is a body that can be refilled without allocating.
type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

// BenchmarkDecode64KiB decodes a 64 KiB page per coding, through NewReader,
// from setup to Close; MB/s counts decoded bytes.
func BenchmarkDecode64KiB(b *testing.B) {
	payload := page(64 << 10)
	for _, c := range []struct {
		name, header string
		apply        []string
	}{
		{"identity", "identity", nil},
		{"gzip", "gzip", []string{"gzip"}},
		{"deflate", "deflate", []string{"deflate"}},
		{"deflate-raw", "deflate", []string{"deflate-raw"}},
		{"br", "br", []string{"br"}},
		{"zstd", "zstd", []string{"zstd"}},
		{"gzip+br", "gzip, br", []string{"gzip", "br"}},
	} {
		enc := encode(b, c.apply, payload)
		b.Run(c.name, func(b *testing.B) {
			body := new(reusableBody)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(enc)
				r, err := NewReader(c.header, body)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
			b.ReportMetric(float64(len(enc)), "encoded-B")
		})
	}
}

// BenchmarkDecoderSetup compares a fresh decoder per body, as the libraries'
// own constructors make one, with NewReader's pooled decoders, on a small
// (1 KiB) and a 64 KiB body: the measurement behind the pools.
func BenchmarkDecoderSetup(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		payload := page(size.n)
		zenc := encode(b, []string{"zstd"}, payload)
		genc := encode(b, []string{"gzip"}, payload)
		b.Run("zstd-new-per-body/"+size.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				d, err := zstd.NewReader(bytes.NewReader(zenc), zstd.WithDecoderConcurrency(1),
					zstd.WithDecoderMaxMemory(zstdMaxWindow), zstd.WithDecoderMaxWindow(zstdMaxWindow))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, d); err != nil {
					b.Fatal(err)
				}
				d.Close()
			}
		})
		b.Run("zstd-pooled/"+size.name, func(b *testing.B) {
			benchPooled(b, "zstd", zenc, len(payload))
		})
		b.Run("gzip-new-per-body/"+size.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				z, err := gzip.NewReader(bytes.NewReader(genc))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, z); err != nil {
					b.Fatal(err)
				}
				z.Close()
			}
		})
		b.Run("gzip-pooled/"+size.name, func(b *testing.B) {
			benchPooled(b, "gzip", genc, len(payload))
		})
	}
}

func benchPooled(b *testing.B, ce string, enc []byte, n int) {
	body := new(reusableBody)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(enc)
		r, err := NewReader(ce, body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// BenchmarkNewReaderUnread is the cost of a body that is closed unread.
func BenchmarkNewReaderUnread(b *testing.B) {
	body := new(reusableBody)
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader("gzip, br", body)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
