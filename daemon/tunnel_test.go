package daemon

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A tunnel quiet one way stays open while bytes go the other way (the
// shared last-activity time), records every byte it copies, and ends once
// its clock says it has been idle for its timeout.
func TestTunnelIdleIsBothWays(t *testing.T) {
	clock := &manualClock{t: time.Unix(1_000_000, 0)}
	tn := &tunnel{idle: 5 * time.Millisecond, now: clock.Now}
	tn.touch()
	src, srcPeer := net.Pipe()
	dst, dstPeer := net.Pipe()
	defer src.Close()
	defer srcPeer.Close()
	defer dst.Close()
	defer dstPeer.Close()
	done := make(chan struct{})
	timeouts := make(chan struct{}, 1)
	go func() {
		defer close(done)
		tn.pipe(dst, &timeoutSignal{r: src, ch: timeouts}, src)
	}()

	// A byte through it moves the last-activity time to now.
	clock.Advance(time.Hour)
	go func() { _, _ = srcPeer.Write([]byte("x")) }()
	b := make([]byte, 1)
	if _, err := io.ReadFull(dstPeer, b); err != nil {
		t.Fatal(err)
	}
	if got := time.Unix(0, tn.last.Load()); !got.Equal(clock.Now()) {
		t.Fatalf("last activity %v after a byte at %v", got, clock.Now())
	}
	// Read deadlines pass, but the clock has not moved: not idle.
	for range 3 {
		select {
		case <-timeouts:
		case <-done:
			t.Fatal("the tunnel ended though its clock says it is not idle")
		}
	}
	clock.Advance(time.Second)
	<-done
}

// timeoutSignal reports each timeout error read from r.
type timeoutSignal struct {
	r  io.Reader
	ch chan struct{}
}

func (s *timeoutSignal) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return n, err
}
