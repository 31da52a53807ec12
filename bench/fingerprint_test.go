package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	fhttp "github.com/bogdanfinn/fhttp"
	tlsclient "github.com/bogdanfinn/tls-client"
	"github.com/bogdanfinn/tls-client/profiles"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
	"github.com/rosterhq/roster/session"
)

// fpPreset is the fingerprinted preset measured: the default.
const fpPreset = protocol.DefaultPreset

// tlsServer is the loopback HTTPS server of the fingerprinted workloads:
// net/http's own, HTTP/2 by ALPN (or HTTP/1.1 only), answering every
// request with five bytes.
type tlsServer struct {
	srv   *httptest.Server // nil when it runs in a child process
	url   string
	caPEM string         // the server's certificate, for roster's CACerts
	pool  *x509.CertPool // the same, for the others
	close func()
}

func newTLSServer(h2 bool) *tlsServer {
	srv := startTLSServer(h2)
	cert := srv.Certificate()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlsServer{
		srv:   srv,
		url:   srv.URL,
		caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		pool:  pool,
		close: srv.Close,
	}
}

func startTLSServer(h2 bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	return srv
}

// newTLSServerProcess starts the server in a child process
// (-server-process).
func newTLSServerProcess(b testing.TB, h2 bool) *tlsServer {
	kind := "h1"
	if h2 {
		kind = "h2"
	}
	url, certPEM, stop := startServerProcess(b, kind)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tlsServer{url: url, caPEM: string(certPEM), pool: pool, close: stop}
}

// wireClient is one contender of the fingerprinted workloads: get sends
// one GET for url with the browser's headers, reads the body to the end
// and closes it, and returns the response's protocol major version; close
// releases the client and its connections.
type wireClient struct {
	get   func(ctx context.Context, url string) (int, error)
	close func()
}

// wireEnv is what the contenders' clients are made against: the server,
// the Manager that roster's sessions belong to (one per benchmark, as a
// program serving many sessions would have), and whether the clients skip
// certificate verification instead of trusting the server's certificate
// through their own option for a private CA.
type wireEnv struct {
	ts         *tlsServer
	m          *session.Manager
	skipVerify bool
}

// sessionConfig is a session config for preset p that trusts the server
// (or skips verification).
func (env wireEnv) sessionConfig(p string) *protocol.SessionConfig {
	if env.skipVerify {
		return &protocol.SessionConfig{Preset: p, InsecureSkipVerify: true}
	}
	return &protocol.SessionConfig{Preset: p, CACerts: env.ts.caPEM}
}

// wireImpl makes a fresh client of one contender.
type wireImpl struct {
	name string
	new  func(b testing.TB, env wireEnv) wireClient
}

// wireImpls are the contenders, each sending the fingerprinted preset's
// headers (the same names and values; the two fingerprinted clients also
// in the preset's order) and verifying the server's certificate:
//
//   - roster: Session.Get on a session with the fingerprinted preset
//     (uTLS + fhttp under roster's net/http translation);
//   - tls-client: github.com/bogdanfinn/tls-client, the library built on
//     the same uTLS and fhttp, profile Chrome_133 (its default and newest
//     Chrome) with extension shuffling as Chrome does, a cookie jar
//     (roster's sessions have one), the headers and their order set on
//     each request;
//   - roster-go: Session.Get on a session with preset "go" (Go's crypto/tls
//     and HTTP/2), the same headers given as config headers;
//   - nethttp: an http.Client with a transport of its own, HTTP/2 on, the
//     headers set on each request.
var wireImpls = []wireImpl{
	{"roster", func(b testing.TB, env wireEnv) wireClient {
		return rosterClient(b, env.m, env.sessionConfig(fpPreset))
	}},
	{"tls-client", newTLSClient},
	{"roster-go", func(b testing.TB, env wireEnv) wireClient {
		cfg := env.sessionConfig("go")
		cfg.Headers = make(map[string]string)
		for _, h := range mustPreset(b).Headers {
			cfg.Headers[h.Name] = h.Value
		}
		return rosterClient(b, env.m, cfg)
	}},
	{"nethttp", func(b testing.TB, env wireEnv) wireClient {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.ts.pool, InsecureSkipVerify: env.skipVerify}, ForceAttemptHTTP2: true}
		c := &http.Client{Transport: tr}
		hdr := http.Header{}
		mustPreset(b).Apply(hdr)
		return wireClient{
			get: func(ctx context.Context, url string) (int, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return 0, err
				}
				req.Header = hdr.Clone()
				resp, err := c.Do(req)
				if err != nil {
					return 0, err
				}
				return drainProto(resp.Body, resp.ProtoMajor)
			},
			close: tr.CloseIdleConnections,
		}
	}},
}

func mustPreset(b testing.TB) *preset.Preset {
	p, err := preset.Lookup(fpPreset)
	if err != nil {
		b.Fatal(err)
	}
	if !p.Fingerprinted() {
		b.Fatalf("preset %s is not fingerprinted", fpPreset)
	}
	return p
}

// rosterClient is a new session of m; closing the client closes the
// session and its connections.
func rosterClient(b testing.TB, m *session.Manager, cfg *protocol.SessionConfig) wireClient {
	id, err := m.CreateSession(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := m.GetSession(id)
	if err != nil {
		b.Fatal(err)
	}
	return wireClient{
		get: func(ctx context.Context, url string) (int, error) {
			resp, err := s.Get(ctx, url)
			if err != nil {
				return 0, err
			}
			return drainProto(resp.Body, resp.ProtoMajor)
		},
		close: func() {
			if err := m.CloseSession(id); err != nil {
				b.Fatal(err)
			}
		},
	}
}

func newTLSClient(b testing.TB, env wireEnv) wireClient {
	opts := []tlsclient.HttpClientOption{
		tlsclient.WithClientProfile(profiles.Chrome_133),
		tlsclient.WithRandomTLSExtensionOrder(),
		tlsclient.WithTimeoutSeconds(30),
		tlsclient.WithCookieJar(tlsclient.NewCookieJar()),
		tlsclient.WithTransportOptions(&tlsclient.TransportOptions{RootCAs: env.ts.pool}),
	}
	if env.skipVerify {
		opts = append(opts, tlsclient.WithInsecureSkipVerify())
	}
	c, err := tlsclient.NewHttpClient(tlsclient.NewNoopLogger(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	p := mustPreset(b)
	hdr := fhttp.Header{}
	for _, h := range p.Headers {
		hdr[h.Name] = []string{h.Value}
	}
	hdr[fhttp.HeaderOrderKey] = p.Order()
	return wireClient{
		get: func(ctx context.Context, url string) (int, error) {
			req, err := fhttp.NewRequestWithContext(ctx, fhttp.MethodGet, url, nil)
			if err != nil {
				return 0, err
			}
			req.Header = hdr.Clone()
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			return drainProto(resp.Body, resp.ProtoMajor)
		},
		close: c.CloseIdleConnections,
	}
}

func drainProto(body io.ReadCloser, proto int) (int, error) {
	_, err := io.Copy(io.Discard, body)
	if cerr := body.Close(); err == nil {
		err = cerr
	}
	return proto, err
}

// getH2 makes one request and fails unless it went over HTTP/2.
func getH2(b testing.TB, c wireClient, url string) { getProto(b, c, url, 2) }

// getProto makes one request and fails unless it went over HTTP/major.
func getProto(b testing.TB, c wireClient, url string, major int) {
	proto, err := c.get(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	if proto != major {
		b.Fatalf("request went over HTTP/%d, want HTTP/%d", proto, major)
	}
}

// runWire runs one sub-benchmark per contender, in the order the -round
// flag rotates, each against the same server (HTTP/2 by ALPN, or only
// http/1.1).
func runWire(b *testing.B, run func(b *testing.B, impl wireImpl, env wireEnv)) {
	runWireOn(b, true, run)
}

func runWireOn(b *testing.B, h2 bool, run func(b *testing.B, impl wireImpl, env wireEnv)) {
	var ts *tlsServer
	if *serverProcess {
		ts = newTLSServerProcess(b, h2)
	} else {
		ts = newTLSServer(h2)
	}
	defer ts.close()
	k := *round % len(wireImpls)
	for _, impl := range append(wireImpls[k:], wireImpls[:k:k]...) {
		b.Run("impl="+impl.name, func(b *testing.B) {
			m := session.NewManager(session.WithCleanupInterval(0))
			defer m.Shutdown()
			run(b, impl, wireEnv{ts: ts, m: m})
		})
	}
}

// cpuPerOp reports, as cpu-ns/op, the CPU time the whole process (client,
// in-process server, runtime) used per op from start on. On a machine
// shared with other work, wall-clock ns/op grows whenever the benchmark's
// threads wait for a core; CPU time does not, so it is the steadier
// figure when contenders run at different moments.
func cpuPerOp(b *testing.B, start time.Duration, ok bool) {
	end, ok2 := processCPU()
	if ok && ok2 && b.N > 0 {
		b.ReportMetric(float64((end-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkFingerprintedGet measures a GET on one kept-alive HTTP/2
// connection to a loopback TLS server in the same process (net/http's,
// HTTP/2 by ALPN, a five-byte body read to the end): roster's
// fingerprinted session against tls-client on the same uTLS and fhttp,
// against roster on Go's stack (preset "go") and a plain net/http client.
// The server's work and allocations count in every contender's figures.
func BenchmarkFingerprintedGet(b *testing.B) { benchKeptAliveGet(b, true) }

// BenchmarkFingerprintedGetHTTP1 is BenchmarkFingerprintedGet against a
// server that picks http/1.1 in ALPN: one kept-alive HTTP/1.1 connection
// over TLS, which roster's session writes with its own HTTP/1.1 client and
// tls-client with fhttp's.
func BenchmarkFingerprintedGetHTTP1(b *testing.B) { benchKeptAliveGet(b, false) }

// benchKeptAliveGet times GETs on one kept-alive connection, HTTP/2 or
// HTTP/1.1 over TLS, each contender against the same server.
func benchKeptAliveGet(b *testing.B, h2 bool) {
	ctx := context.Background()
	major := 1
	if h2 {
		major = 2
	}
	runWireOn(b, h2, func(b *testing.B, impl wireImpl, env wireEnv) {
		c := impl.new(b, env)
		defer c.close()
		getProto(b, c, env.ts.url, major) // the connection, outside the timing
		b.ReportAllocs()
		cpu, ok := processCPU()
		for b.Loop() {
			if _, err := c.get(ctx, env.ts.url); err != nil {
				b.Fatal(err)
			}
		}
		cpuPerOp(b, cpu, ok)
	})
}

// BenchmarkFingerprintedHandshake measures a first request: each op makes
// a new client (for roster, a new session of the benchmark's Manager),
// which connects, runs a full TLS handshake (a new client has no ticket to
// resume) and the HTTP/2 preface, sends one GET and reads the body; then
// the client is closed. Whatever a contender builds per client counts.
//
// verify=ca: each client trusts the server's certificate through its own
// option for a private CA (roster's CACerts, a PEM string in the config;
// tls-client's TransportOptions.RootCAs and net/http's RootCAs, a pool
// built once). verify=skip: every client skips the chain verification
// (InsecureSkipVerify), which leaves out what trusting a private CA costs
// each library per client.
func BenchmarkFingerprintedHandshake(b *testing.B) {
	ctx := context.Background()
	runWire(b, func(b *testing.B, impl wireImpl, env wireEnv) {
		for _, verify := range []string{"ca", "skip"} {
			b.Run("verify="+verify, func(b *testing.B) {
				env := env
				env.skipVerify = verify == "skip"
				c := impl.new(b, env)
				getH2(b, c, env.ts.url)
				c.close()
				b.ReportAllocs()
				cpu, ok := processCPU()
				for b.Loop() {
					c := impl.new(b, env)
					if _, err := c.get(ctx, env.ts.url); err != nil {
						b.Fatal(err)
					}
					c.close()
				}
				cpuPerOp(b, cpu, ok)
			})
		}
	})
}
