package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/rosterhq/roster/internal/fingerprint"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// TestWireContenders checks that the fingerprinted workloads compare what
// they claim to: through the project's fingerprinting server, every
// contender speaks HTTP/2 over TLS and sends the preset's User-Agent, and
// the two fingerprinted ones send the preset's headers in its order and
// show a browser's handshake rather than Go's. The JA4 and Akamai strings
// are logged (-v) for the README.
func TestWireContenders(t *testing.T) {
	fs, err := fingerprint.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	p := mustPreset(t)
	ts := &tlsServer{caPEM: string(fs.CertPEM()), pool: fs.RootCAs()}
	m := session.NewManager(session.WithCleanupInterval(0))
	defer m.Shutdown()

	var ua string
	for _, h := range p.Headers {
		if h.Name == "User-Agent" {
			ua = h.Value
		}
	}
	ja4, akamai := map[string]string{}, map[string]string{}
	for _, impl := range wireImpls {
		c := impl.new(t, wireEnv{ts: ts, m: m})
		getH2(t, c, fs.URL())
		c.close()
		r, ok := fs.Last()
		if !ok || r.HTTP2 == nil {
			t.Fatalf("%s: the server saw no HTTP/2 request", impl.name)
		}
		t.Logf("%-10s JA4 %s  HTTP/2 %s", impl.name, r.TLS.JA4, r.HTTP2.Akamai)
		ja4[impl.name] = r.TLS.JA4
		if got := r.UserAgent(); ua == "" || got != ua {
			t.Errorf("%s: User-Agent %q, want the preset's %q", impl.name, got, ua)
		}
		if impl.name == "roster" || impl.name == "tls-client" {
			if got, want := r.HTTP2.HeaderOrder, sentOrder(p.Order(), r.HTTP2.HeaderOrder); !slices.Equal(got, want) {
				t.Errorf("%s: header order\n%q\nwant the preset's\n%q", impl.name, got, want)
			}
		}
		if len(r.HTTP2.HeaderOrder) != len(p.Headers) {
			t.Errorf("%s: sent %d headers %q; the preset has %d", impl.name, len(r.HTTP2.HeaderOrder), r.HTTP2.HeaderOrder, len(p.Headers))
		}
		akamai[impl.name] = r.HTTP2.Akamai
	}
	if akamai["roster-go"] != akamai["nethttp"] {
		t.Errorf("roster-go's HTTP/2 %s is not Go's %s", akamai["roster-go"], akamai["nethttp"])
	}
	for _, name := range []string{"roster", "tls-client"} {
		if ja4[name] == ja4["nethttp"] {
			t.Errorf("%s shows Go's JA4 %s", name, ja4[name])
		}
	}
}

// sentOrder is order restricted to the names in sent: the order a client
// following order writes the headers it has.
func sentOrder(order, sent []string) []string {
	var out []string
	for _, n := range order {
		if slices.Contains(sent, n) {
			out = append(out, n)
		}
	}
	return out
}

// TestFingerprintedTLSState checks Response.TLS on a fingerprinted session:
// responses on one connection share one state, and a new connection (the
// server closed the first) gets its own, which shows the resumption of the
// first connection's session.
func TestFingerprintedTLSState(t *testing.T) {
	ts := newTLSServer(true)
	defer ts.srv.Close()
	m := session.NewManager(session.WithCleanupInterval(0))
	defer m.Shutdown()
	id, err := m.CreateSession(&protocol.SessionConfig{Preset: fpPreset, CACerts: ts.caPEM})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.GetSession(id)
	get := func() (*tls.ConnectionState, error) {
		t.Helper()
		resp, err := s.Get(context.Background(), ts.srv.URL)
		if err != nil {
			return nil, err
		}
		if _, err := drainProto(resp.Body, resp.ProtoMajor); err != nil {
			t.Fatal(err)
		}
		if resp.TLS == nil || !resp.TLS.HandshakeComplete {
			t.Fatalf("Response.TLS = %+v", resp.TLS)
		}
		return resp.TLS, nil
	}
	first, err := get()
	if err != nil {
		t.Fatal(err)
	}
	again, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Error("two responses on one connection have different TLS states")
	}
	if first.DidResume {
		t.Error("the first connection resumed a session")
	}
	ts.srv.CloseClientConnections()
	// A request sent before the client has read the close fails with an
	// unexpected EOF (on Go's stack too) and retires the connection; the
	// next one dials.
	second, err := get()
	for i := 0; errors.Is(err, io.ErrUnexpectedEOF) && i < 3; i++ {
		second, err = get()
	}
	if err != nil {
		t.Fatal(err)
	}
	if second == first || !second.DidResume {
		t.Errorf("the second connection shows the first's state (same: %v) or did not resume (DidResume %v)", second == first, second.DidResume)
	}
}
