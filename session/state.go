package session

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rosterhq/roster/evict"
	"github.com/rosterhq/roster/protocol"
)

// SessionState is a saved session; see protocol.SessionState.
type SessionState = protocol.SessionState

// State returns the session's saved state: its ID, config, cookies with
// all their attributes, timestamps, and TLS session tickets.
func (s *Session) State() *SessionState {
	st := s.Stats()
	return &SessionState{
		Version:      protocol.StateVersion,
		ID:           s.id,
		Config:       s.Config(),
		CreatedAt:    st.CreatedAt.UTC(),
		LastUsed:     st.LastUsed.UTC(),
		RequestCount: st.RequestCount,
		Cookies:      s.Cookies(),
		TLSSessions:  s.tickets.export(),
	}
}

// Marshal returns the session's state as versioned JSON, for
// UnmarshalSession or Manager.RestoreSession.
func (s *Session) Marshal() ([]byte, error) { return json.Marshal(s.State()) }

// Save writes the session's state to path atomically: to a temporary file
// in the same directory, synced, then renamed over path, so that path holds
// either the old state or the new one, never a part.
func (s *Session) Save(path string) error {
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save session %q: %w", s.id, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save session %q: %w", s.id, err)
	}
	return nil
}

// standalone is the time base of sessions outside any Manager. They read
// only its exact clock, so it needs no refreshing.
var standalone = evict.NewTimebase(nil, time.Second)

// UnmarshalSession builds a session, outside any Manager, from a state made
// by Marshal. Corrupt, truncated or unknown-version data is an error that
// wraps protocol.ErrInvalidState (or ErrInvalidConfig for an unknown
// preset); it never panics.
func UnmarshalSession(data []byte) (*Session, error) {
	st, err := protocol.DecodeState(data)
	if err != nil {
		return nil, err
	}
	return restore(st, standalone, nil)
}

// LoadSession reads a state file written by Save; see UnmarshalSession.
func LoadSession(path string) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := UnmarshalSession(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// RestoreSession registers, under its saved ID, a session built from a
// state made by Session.Marshal, and returns the ID. It counts as a use
// now, so a restored session is not evicted at the next sweep. It fails as
// CreateSessionWithID does (bad data, an unknown preset and a taken ID
// before the cap), and as UnmarshalSession does on bad data.
func (m *Manager) RestoreSession(data []byte) (string, error) {
	st, err := protocol.DecodeState(data)
	if err != nil {
		return "", err
	}
	c := m.c
	if _, err := lookupPreset(st.Config); err != nil {
		return "", err
	}
	if err := c.checkFree(st.ID); err != nil {
		return "", err
	}
	if err := c.reserve(); err != nil {
		return "", err
	}
	s, err := restore(st, c.tb, c)
	if err != nil {
		c.release()
		return "", err
	}
	if c.fleet != nil {
		if err := c.fleet.registerLeased(context.Background(), s, false, false); err != nil {
			return "", err
		}
		return s.id, nil
	}
	if err := c.insert(s); err != nil {
		return "", err
	}
	return s.id, nil
}

// restore builds a session from a decoded state.
func restore(st *SessionState, tb *evict.Timebase, mgr *core) (*Session, error) {
	s, err := newSession(st.ID, st.Config, tb, mgr)
	if err != nil {
		return nil, err
	}
	if !st.CreatedAt.IsZero() {
		s.createdAt = min(max(st.CreatedAt.UnixNano(), 0), tb.Now())
	}
	s.requests.Store(st.RequestCount)
	if len(st.Cookies) > 0 {
		if err := s.SetCookies(st.Cookies); err != nil {
			return nil, fmt.Errorf("%w: %w", protocol.ErrInvalidState, err)
		}
	}
	if err := s.tickets.load(st.TLSSessions, s.preset.Fingerprinted()); err != nil {
		return nil, fmt.Errorf("%w: %w", protocol.ErrInvalidState, err)
	}
	return s, nil
}
