// Package idgen makes and checks session IDs.
//
// New returns a ULID: 26 characters of Crockford base32 whose first ten encode
// the creation time in milliseconds, so IDs sort by creation time, and whose
// last sixteen encode 80 bits read from crypto/rand. Every ID draws fresh
// random bits: unlike ulid.Make, there is no monotonic increment within a
// millisecond, so one ID tells nothing about the next.
//
// Random bytes are read from crypto/rand in blocks into per-P buffers held in a
// sync.Pool, so parallel callers share no mutex and one ID costs one small
// slice of a large read instead of a system call.
//
// Valid checks a caller-supplied ID without allocating; Validate says what is
// wrong with one.
package idgen

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// MaxLen is the longest ID, in bytes, that Valid accepts.
const MaxLen = 128

// Len is the length of an ID made by New.
const Len = ulid.EncodedSize

// ErrInvalidID is wrapped by every error Validate returns.
var ErrInvalidID = errors.New("invalid session ID")

// randomBytes is how many bytes of a ULID are random.
const randomBytes = 10

// bufSize is the size of one block read from crypto/rand: 409 IDs per read.
const bufSize = 4096

type randBuf struct {
	b   [bufSize]byte
	off int
}

var bufs = sync.Pool{New: func() any { return &randBuf{off: bufSize} }}

// The wall clock is read once; afterwards the time comes from the monotonic
// clock, which costs half as much as time.Now and never runs backwards.
var (
	epoch   = time.Now()
	epochNs = epoch.UnixNano()
)

// New returns a new random ULID. It is safe for concurrent use.
//
// New panics only if crypto/rand fails, which the Go runtime treats as fatal
// on every supported platform.
func New() string {
	var id ulid.ULID
	ms := uint64((epochNs + int64(time.Since(epoch))) / int64(time.Millisecond))
	// SetTime fails only past the year 10889.
	_ = id.SetTime(ms)

	rb := bufs.Get().(*randBuf)
	if rb.off+randomBytes > bufSize {
		// crypto/rand.Read never returns an error since Go 1.24.
		_, _ = rand.Read(rb.b[:])
		rb.off = 0
	}
	copy(id[6:], rb.b[rb.off:rb.off+randomBytes])
	// Clear what was used so that the bytes of one ID never stay in memory
	// next to the bytes of the IDs still to come.
	clear(rb.b[rb.off : rb.off+randomBytes])
	rb.off += randomBytes
	bufs.Put(rb)

	var out [Len]byte
	_ = id.MarshalTextTo(out[:])
	return string(out[:])
}

// Valid reports whether id is acceptable as a session ID: between 1 and
// MaxLen bytes, each printable ASCII other than space (0x21 to 0x7E). It does
// not allocate.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// Validate returns nil if id is Valid, and otherwise an error that wraps
// ErrInvalidID and says what is wrong and where.
func Validate(id string) error {
	switch {
	case len(id) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxLen:
		return fmt.Errorf("%w: %d bytes long, the limit is %d", ErrInvalidID, len(id), MaxLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: %q has byte %#02x at offset %d; IDs are printable ASCII without spaces",
				ErrInvalidID, id, c, i)
		}
	}
	return nil
}
