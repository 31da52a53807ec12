package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/rosterhq/roster/idgen"
)

// StateVersion is the version of SessionState this build writes and reads.
const StateVersion = 1

// MaxStateSize is the largest saved state DecodeState accepts.
const MaxStateSize = 16 << 20

// ErrInvalidState is wrapped by every error DecodeState returns.
var ErrInvalidState = errors.New("invalid session state")

// The range of times a saved state may carry (zero aside): what a stamp,
// nanoseconds since 1970 in an int64, can hold, with room to spare.
var (
	MinStateTime = time.Unix(0, 0).UTC()
	MaxStateTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// SessionState is a saved session: everything needed to bring the same
// identity back, in this process or another.
type SessionState struct {
	// Version is the format's version, StateVersion.
	Version int `json:"version"`
	// ID is the session's ID; a restore registers the session under it.
	ID string `json:"id"`
	// Config is the session's configuration; nil means all defaults.
	Config *SessionConfig `json:"config,omitempty"`
	// CreatedAt is when the session was first made, as RFC 3339 text;
	// zero (or absent) means the time of the restore. It lies between
	// MinStateTime and MaxStateTime.
	CreatedAt time.Time `json:"createdAt"`
	// LastUsed is when the session was last used, as RFC 3339 text, for
	// information: a restore counts as a use. It lies between
	// MinStateTime and MaxStateTime, or is zero.
	LastUsed time.Time `json:"lastUsed"`
	// RequestCount is how many requests the session has made; not
	// negative.
	RequestCount int64 `json:"requestCount"`
	// Cookies are the session's cookies. A restore keeps what its jar's
	// bounds allow (see package cookies), the most recently used first.
	Cookies []CookieState `json:"cookies,omitempty"`
	// TLSSessions lets a restored session resume TLS with the servers the
	// saved one talked to.
	TLSSessions []TLSSession `json:"tlsSessions,omitempty"`
}

// TLSSession is one TLS session ticket with its resumption state, as
// crypto/tls serialises them.
type TLSSession struct {
	// Key is the cache key: the server name or address.
	Key string `json:"key"`
	// Ticket is the session ticket, base64 in JSON.
	Ticket []byte `json:"ticket"`
	// State is the resumption state, base64 in JSON.
	State []byte `json:"state"`
}

// DecodeState parses and checks a saved state. Corrupt, truncated or
// oversized data, an unknown version, unknown fields, field names in another
// case, duplicate keys, an invalid ID, config or cookie, a negative request
// count, a time out of range: each is an error that wraps ErrInvalidState
// and says what is wrong. It does not check the TLS sessions' contents or the preset; the
// session package does when it restores.
func DecodeState(data []byte) (*SessionState, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidState}, args...)...)
	}
	if len(data) > MaxStateSize {
		return nil, bad("%d bytes, the limit is %d", len(data), MaxStateSize)
	}
	// encoding/json takes the last of duplicate keys and matches names in
	// any case: a state that says two things, or says it in another case,
	// is refused before anything is read from it.
	if err := checkStrict(data, reflect.TypeFor[SessionState]()); err != nil {
		return nil, bad("%v", err)
	}
	// Read the version first, so that a state from a newer build is
	// reported as such rather than as unknown fields.
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, bad("%v", err)
	}
	switch {
	case v.Version == nil:
		return nil, bad("no version")
	case *v.Version != StateVersion:
		return nil, bad("version %d, this build reads version %d", *v.Version, StateVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st SessionState
	if err := dec.Decode(&st); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the JSON object")
	}
	if err := idgen.Validate(st.ID); err != nil {
		return nil, bad("%v", err)
	}
	if st.RequestCount < 0 {
		return nil, bad("requestCount %d: must not be negative", st.RequestCount)
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"createdAt", st.CreatedAt}, {"lastUsed", st.LastUsed}} {
		if !f.t.IsZero() && (f.t.Before(MinStateTime) || f.t.After(MaxStateTime)) {
			return nil, bad("%s %s: want a time from %s to %s", f.name, f.t.Format(time.RFC3339Nano),
				MinStateTime.Format(time.RFC3339), MaxStateTime.Format(time.RFC3339))
		}
	}
	if err := st.Config.Validate(); err != nil {
		return nil, bad("%v", err)
	}
	for i, c := range st.Cookies {
		if err := c.Validate(); err != nil {
			return nil, bad("cookies[%d]: %v", i, err)
		}
	}
	for i, t := range st.TLSSessions {
		if t.Key == "" || len(t.State) == 0 {
			return nil, bad("tlsSessions[%d]: empty key or state", i)
		}
	}
	return &st, nil
}
