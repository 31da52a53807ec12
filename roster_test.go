package roster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rosterhq/roster"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReexports checks that the top-level names are the session package's,
// so errors.Is works across both.
func TestReexports(t *testing.T) {
	m := roster.NewManager(roster.WithMaxSessions(1), roster.WithSessionTimeout(time.Minute),
		roster.WithCleanupInterval(time.Second), roster.WithShards(8))
	defer m.Shutdown()
	id, err := m.CreateSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateSession(nil); !errors.Is(err, roster.ErrMaxSessions) {
		t.Errorf("at the cap: %v", err)
	}
	if err := m.CloseSession(id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetSession(id); !errors.Is(err, roster.ErrSessionNotFound) {
		t.Errorf("after close: %v", err)
	}
	if m.MaxSessions() != 1 || m.SessionTimeout() != time.Minute {
		t.Errorf("options not applied: %d %v", m.MaxSessions(), m.SessionTimeout())
	}
}

// The quick start: a Manager with the defaults, one session, used by ID.
func Example() {
	m := roster.NewManager() // or roster.WithMaxSessions(50), roster.WithSessionTimeout(15*time.Minute), ...
	defer m.Shutdown()

	id, err := m.CreateSession(&roster.SessionConfig{Preset: "chrome-latest"})
	if err != nil {
		panic(err) // roster.ErrMaxSessions at the cap, roster.ErrInvalidConfig for a bad config
	}
	s, err := m.GetSession(id) // from any goroutine: no lock, no allocation
	if err != nil {
		panic(err) // roster.ErrSessionNotFound once it is closed or evicted
	}
	fmt.Println(s.ID() == id, m.SessionCount(), m.MaxSessions(), m.SessionTimeout())

	_ = m.CloseSession(id)
	_, err = m.GetSession(id)
	fmt.Println(errors.Is(err, roster.ErrSessionNotFound))
	// Output:
	// true 1 100 30m0s
	// true
}
