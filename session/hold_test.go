package session

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHold(t *testing.T) {
	m, clk := newTestManager(t, WithSessionTimeout(time.Minute))
	id := mustCreate(t, m)
	s, err := m.GetSession(id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, release, err := s.Hold(context.Background())
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	if got := s.Stats().InFlight; got != 1 {
		t.Fatalf("InFlight during a Hold = %d, want 1", got)
	}
	clk.Advance(10 * time.Minute)
	if n := m.Sweep(); n != 0 {
		t.Fatalf("Sweep evicted %d sessions under a Hold", n)
	}
	release()
	release() // idempotent: must not count twice
	if got := m.Stats().InFlight; got != 0 {
		t.Fatalf("InFlight after release = %d, want 0", got)
	}
	if ctx.Err() == nil {
		t.Fatal("the held context lives on after release")
	}
	clk.Advance(2 * time.Minute)
	if n := m.Sweep(); n != 1 {
		t.Fatalf("Sweep after release evicted %d, want 1", n)
	}
}

func TestHoldCancelledByClose(t *testing.T) {
	m, _ := newTestManager(t)
	s, err := m.GetSession(mustCreate(t, m))
	if err != nil {
		t.Fatal(err)
	}
	ctx, release, err := s.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	_ = s.Close()
	<-ctx.Done() // blocks forever, and the test times out, if Close misses the Hold
	if cause := context.Cause(ctx); !errors.Is(cause, ErrSessionClosed) {
		t.Fatalf("cause = %v, want ErrSessionClosed", cause)
	}
	if _, _, err := s.Hold(context.Background()); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Hold on a closed session: %v, want ErrSessionClosed", err)
	}
}
