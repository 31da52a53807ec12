package session

import (
	"errors"
	"fmt"

	"github.com/rosterhq/roster/idgen"
	"github.com/rosterhq/roster/protocol"
)

// The errors of this package. Each error a method returns wraps one of them,
// so callers match with errors.Is; the message adds the value at fault.
var (
	// ErrMaxSessions means the Manager holds as many sessions as its cap
	// allows. The message gives the cap.
	ErrMaxSessions = errors.New("maximum sessions limit reached")
	// ErrSessionNotFound means no session is registered under the ID,
	// which the message gives: it never was, or it was closed or evicted.
	ErrSessionNotFound = errors.New("session not found")
	// ErrSessionExists means a session is already registered under the ID.
	ErrSessionExists = errors.New("session already exists")
	// ErrInvalidID means an ID is empty, longer than 128 bytes, or has a
	// byte that is not printable ASCII or is a space.
	ErrInvalidID = idgen.ErrInvalidID
	// ErrInvalidConfig means a SessionConfig failed validation.
	ErrInvalidConfig = protocol.ErrInvalidConfig
	// ErrSessionClosed means the session was closed, before or during the
	// operation.
	ErrSessionClosed = errors.New("session closed")
	// ErrManagerClosed means the Manager has been shut down.
	ErrManagerClosed = errors.New("manager closed")
)

func errMaxSessions(max int64) error {
	return fmt.Errorf("%w (%d)", ErrMaxSessions, max)
}

func errNotFound(id string) error {
	if err := idgen.Validate(id); err != nil {
		return err
	}
	return fmt.Errorf("%w: %q", ErrSessionNotFound, id)
}

func errExists(id string) error {
	return fmt.Errorf("%w: %q", ErrSessionExists, id)
}
