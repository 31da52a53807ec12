package daemon_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/rosterhq/roster/daemon"
	"github.com/rosterhq/roster/session"
)

// clientHello returns the first flight of a Go TLS client for name.
func clientHello(name string) []byte {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, &tls.Config{ServerName: name, InsecureSkipVerify: true}).Handshake() }() //nolint:gosec // never verifies: the pipe closes after the hello
	buf := make([]byte, 16<<10)
	n, _ := b.Read(buf)
	return buf[:n]
}

// FuzzInterceptClientBytes sends arbitrary bytes into an intercepted
// tunnel, as a client would after CONNECT, and half-closes: whatever they
// are (a ClientHello, a cut or corrupt one, plain HTTP, noise), the daemon
// neither panics nor hangs, and the tunnel ends and stops counting.
//
// Each input costs a few connections, and the fuzzer minimizes every new
// input for a minute by default: pass -fuzzminimizetime 10x to see more
// inputs in a short run.
func FuzzInterceptClientBytes(f *testing.F) {
	f.Add(clientHello("example.com"))
	f.Add(clientHello("skip.test"))
	f.Add(clientHello(""))
	f.Add(clientHello("example.com")[:40])
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0xff, 0xff, 0x01})
	f.Add([]byte{})

	ca, _, err := daemon.LoadOrCreateCA(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := daemon.New(daemon.Options{
		Token:          token,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ManagerOptions: []session.Option{session.WithCleanupInterval(0)},
		Intercept:      &daemon.InterceptOptions{CA: ca, Skip: []string{"*.test"}, PeekTimeout: 10 * time.Millisecond, HandshakeTimeout: 5 * time.Second},
	})
	if err != nil {
		f.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = quietLog
	ts.Start()
	// The target echoes until the client half-closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	f.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	id, err := srv.Manager().CreateSession(nil)
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c := openTunnel(t, ts.Listener.Addr().String(), ln.Addr().String(), id)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		// Read while writing: the target echoes, and would stall a
		// large write otherwise.
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			read <- err
		}()
		if _, err := c.Write(data); err == nil {
			_ = c.(*net.TCPConn).CloseWrite()
		} // else the daemon hung up on a bad hello before all was sent
		// EOF or a reset: either ends the tunnel; a timeout is a hang.
		if err := <-read; errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the tunnel did not end after the client half-closed: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for srv.Manager().Stats().InFlight != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the tunnel still counts in flight after it ended")
			}
			time.Sleep(time.Millisecond)
		}
	})
}
