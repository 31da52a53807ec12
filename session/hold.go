package session

import (
	"context"
	"sync"
)

// Hold counts a long-lived use of the session that is not one request — a
// proxy tunnel whose requests the caller runs through Do one by one, say —
// as a request in flight until release is called: the session is not
// evicted for idleness under it, and ShutdownContext waits for it. The
// returned context is derived from ctx and is cancelled, with cause
// ErrSessionClosed, when the session closes, so that the caller can tear
// down what it holds. release is idempotent and safe from any goroutine;
// it must be called. Requests made through Do during a Hold count on their
// own as well.
//
// Hold fails with ErrSessionClosed on a closed session.
func (s *Session) Hold(ctx context.Context) (held context.Context, release func(), err error) {
	h, err := s.http()
	if err != nil {
		return nil, nil, err
	}
	if err := s.beginRequest(); err != nil {
		return nil, nil, err
	}
	hctx, cancel := context.WithCancelCause(ctx)
	// Registered after beginRequest: a Close from here on cancels hctx,
	// and one before it made beginRequest fail.
	stop := context.AfterFunc(h.closed, func() { cancel(ErrSessionClosed) })
	var once sync.Once
	release = func() {
		once.Do(func() {
			stop()
			cancel(nil)
			s.endRequest()
			h.afterRequest()
		})
	}
	return hctx, release, nil
}
