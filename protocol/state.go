package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rosterhq/roster/idgen"
)

// StateVersion is the version of SessionState this build writes and reads.
const StateVersion = 1

// MaxStateSize is the largest saved state DecodeState accepts.
const MaxStateSize = 16 << 20

// ErrInvalidState is wrapped by every error DecodeState returns.
var ErrInvalidState = errors.New("invalid session state")

// SessionState is a saved session: everything needed to bring the same
// identity back, in this process or another.
type SessionState struct {
	Version      int            `json:"version"`
	ID           string         `json:"id"`
	Config       *SessionConfig `json:"config,omitempty"`
	CreatedAt    time.Time      `json:"createdAt"`
	LastUsed     time.Time      `json:"lastUsed"`
	RequestCount int64          `json:"requestCount"`
	Cookies      []CookieState  `json:"cookies,omitempty"`
	// TLSSessions lets a restored session resume TLS with the servers the
	// saved one talked to.
	TLSSessions []TLSSession `json:"tlsSessions,omitempty"`
}

// TLSSession is one TLS session ticket with its resumption state, as
// crypto/tls serialises them.
type TLSSession struct {
	Key    string `json:"key"` // the cache key: the server name or address
	Ticket []byte `json:"ticket"`
	State  []byte `json:"state"`
}

// DecodeState parses and checks a saved state. Corrupt, truncated or
// oversized data, an unknown version, unknown fields, an invalid ID, config
// or cookie: each is an error that wraps ErrInvalidState and says what is
// wrong. It does not check the TLS sessions' contents or the preset; the
// session package does when it restores.
func DecodeState(data []byte) (*SessionState, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidState}, args...)...)
	}
	if len(data) > MaxStateSize {
		return nil, bad("%d bytes, the limit is %d", len(data), MaxStateSize)
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
