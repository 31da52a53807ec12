//go:build unix

package session

import (
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/rosterhq/roster/protocol"
)

// TestOwnHTTP1OverTLSStale: over TLS too, the own client sees that the
// server closed an idle connection before it reuses it, so that a request
// it may not send twice goes out once, on a new connection.
func TestOwnHTTP1OverTLSStale(t *testing.T) {
	var conns atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS() // ALPN: http/1.1 only
	defer ts.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	m, _ := newTestManager(t)
	s := newSessionFor(t, m, &protocol.SessionConfig{Preset: "chrome-latest", CACerts: string(ca)})
	h1 := ownH1(t, s)
	get(t, s, ts.URL)

	ts.CloseClientConnections()
	h1.mu.Lock()
	hp := h1.hosts[h1Key{addr: ts.Listener.Addr().String(), tls: true}]
	if hp == nil || len(hp.idle) != 1 {
		h1.mu.Unlock()
		t.Fatalf("after the GET: host %+v, want one idle TLS connection", hp)
	}
	idle := hp.idle[0].tls.NetConn()
	h1.mu.Unlock()
	waitReadable(t, idle) // the server's close has reached the client

	req, _ := http.NewRequest(http.MethodPost, ts.URL, io.NopCloser(strings.NewReader("once")))
	resp, err := s.Do(req)
	if err != nil {
		t.Fatalf("POST after the server closed the idle connection: %v", err)
	}
	resp.Body.Close()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// waitReadable blocks until c's socket has something to read (or its
// end), without reading it.
func waitReadable(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN)
	})
	if err != nil {
		t.Fatal(err)
	}
}
