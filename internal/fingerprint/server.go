package fingerprint

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// handshakeTimeout bounds how long a connection may take to send its
// ClientHello and finish the handshake, so a silent client cannot hold a
// goroutine until Close.
const handshakeTimeout = 10 * time.Second

// maxHead bounds an HTTP/1.1 request head.
const maxHead = 1 << 20

// Result is what the server saw for one request: the connection's
// ClientHello and either the HTTP/2 frames or the HTTP/1.1 request head.
// It is also the JSON body of the server's answer to that request.
type Result struct {
	// Conn numbers the connections from 1 in accept order; Request numbers
	// the requests on that connection from 1.
	Conn    int `json:"conn"`
	Request int `json:"request"`
	// Protocol is the ALPN result: "h2" or "http/1.1".
	Protocol string `json:"protocol"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	TLS      TLS    `json:"tls,omitzero"` // empty for a server WithoutTLS
	HTTP2    *HTTP2 `json:"http2,omitempty"`
	HTTP1    *HTTP1 `json:"http1,omitempty"`
}

// UserAgent returns the request's User-Agent header, or "" when none was sent.
func (r Result) UserAgent() string {
	var hs []Header
	switch {
	case r.HTTP2 != nil:
		hs = r.HTTP2.Headers
	case r.HTTP1 != nil:
		hs = r.HTTP1.Headers
	}
	for _, h := range hs {
		if strings.EqualFold(h.Name, "user-agent") {
			return h.Value
		}
	}
	return ""
}

// HTTP1 is an HTTP/1.x request head as sent: header names keep their case
// and order.
type HTTP1 struct {
	RequestLine string   `json:"request_line"`
	Proto       string   `json:"proto"`
	HeaderOrder []string `json:"header_order"`
	Headers     []Header `json:"headers"`
}

// Server is a TLS server on 127.0.0.1 that fingerprints its clients (or a
// plain HTTP/1.1 one, WithoutTLS). It
// reads each connection's ClientHello before crypto/tls does, answers every
// request (HTTP/2 or HTTP/1.1, by ALPN) with 200 and its Result as JSON, and
// keeps the Results for the caller. Its methods are safe for concurrent use.
type Server struct {
	ln    net.Listener
	cfg   *tls.Config // nil: plain HTTP/1.1 (WithoutTLS)
	caPEM []byte
	pool  *x509.CertPool
	wg    sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	conns   map[net.Conn]struct{}
	nconn   int
	results []Result
	hellos  []TLS
	changed chan struct{} // closed and replaced whenever results grows
}

// Option changes how NewServer sets a Server up.
type Option func(*options)

type options struct {
	alpn      []string
	plaintext bool
}

// WithALPN sets the protocols the server accepts in ALPN, in its order of
// preference; the default is h2, then http/1.1. WithALPN("http/1.1") makes
// clients that offer h2 fall back to HTTP/1.1, as against a server without
// HTTP/2, so their HTTP/1.1 header order can be seen.
func WithALPN(protos ...string) Option {
	return func(o *options) { o.alpn = append([]string(nil), protos...) }
}

// WithoutTLS makes the server speak plain HTTP/1.1, for what a client sends
// to an http:// origin. Its Results have an empty TLS and Protocol
// "http/1.1"; CertPEM and RootCAs are empty.
func WithoutTLS() Option {
	return func(o *options) { o.plaintext = true }
}

// NewServer starts a Server on 127.0.0.1 with a fresh CA and a certificate it
// signed for "localhost", 127.0.0.1 and ::1. ALPN offers h2 and http/1.1
// unless WithALPN says otherwise.
func NewServer(opts ...Option) (*Server, error) {
	o := options{alpn: []string{"h2", "http/1.1"}}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		pool:    x509.NewCertPool(),
		conns:   map[net.Conn]struct{}{},
		changed: make(chan struct{}),
	}
	if !o.plaintext {
		caPEM, leaf, err := newCerts()
		if err != nil {
			return nil, err
		}
		s.pool.AppendCertsFromPEM(caPEM)
		s.caPEM = caPEM
		s.cfg = &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: o.alpn}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fingerprint: listening on 127.0.0.1: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func newCerts() (caPEM []byte, leaf tls.Certificate, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, leaf, fmt.Errorf("fingerprint: generating the CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "roster fingerprint test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, leaf, fmt.Errorf("fingerprint: creating the CA certificate: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, leaf, fmt.Errorf("fingerprint: parsing the CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, leaf, fmt.Errorf("fingerprint: generating the server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, leaf, fmt.Errorf("fingerprint: creating the server certificate: %w", err)
	}
	leaf = tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), leaf, nil
}

// CertPEM returns the PEM of the CA that signed the server's certificate,
// for clients (or browser profiles) that must trust it.
func (s *Server) CertPEM() []byte { return bytes.Clone(s.caPEM) }

// RootCAs returns a pool holding the server's CA, for tls.Config.RootCAs.
func (s *Server) RootCAs() *x509.CertPool { return s.pool.Clone() }

// Addr returns the listening address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns "https://localhost:PORT/": the name localhost makes clients
// send SNI, which JA4 records. A server made WithoutTLS returns
// "http://localhost:PORT/".
func (s *Server) URL() string {
	return s.URLFor("localhost")
}

// Port returns the port the server listens on.
func (s *Server) Port() string { return strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port) }

// URLFor returns the server's URL with host as its name, for a client that
// resolves host to 127.0.0.1 itself (a browser told to map a name that is
// not loopback's, to see what it sends to an origin that is not
// potentially trustworthy).
func (s *Server) URLFor(host string) string {
	scheme := "https://"
	if s.cfg == nil {
		scheme = "http://"
	}
	return scheme + net.JoinHostPort(host, s.Port()) + "/"
}

// Close stops the listener, closes every open connection and returns once
// every goroutine of the server has ended. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Results returns a copy of every Result so far, in the order the requests
// were read.
func (s *Server) Results() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Result(nil), s.results...)
}

// Last returns the most recent Result, and false when there is none yet.
func (s *Server) Last() (Result, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.results) == 0 {
		return Result{}, false
	}
	return s.results[len(s.results)-1], true
}

// Hellos returns every ClientHello the server parsed, one per connection in
// accept order, including those whose handshake then failed (a client that
// does not trust the certificate still shows its ClientHello).
func (s *Server) Hellos() []TLS {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TLS(nil), s.hellos...)
}

// WaitResults blocks until the server holds at least n Results and returns
// them, or returns ctx's error with those it has.
func (s *Server) WaitResults(ctx context.Context, n int) ([]Result, error) {
	for {
		s.mu.Lock()
		if len(s.results) >= n {
			r := append([]Result(nil), s.results...)
			s.mu.Unlock()
			return r, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return s.Results(), fmt.Errorf("fingerprint: waiting for %d results: %w", n, ctx.Err())
		}
	}
}

func (s *Server) record(r Result) {
	s.mu.Lock()
	s.results = append(s.results, r)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed; Close reports the listener's error
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.nconn++
		id := s.nconn
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c, id)
	}
}

// replayConn gives crypto/tls the bytes already read, then the rest of the conn.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (s *Server) serve(c net.Conn, id int) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if s.cfg == nil {
		s.serveH1(c, Result{Conn: id, Protocol: "http/1.1"})
		return
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	wire, msg, rv, nrec, err := ReadClientHello(c)
	if err != nil {
		return
	}
	hello, err := newTLS(msg, rv, nrec)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.hellos = append(s.hellos, *hello)
	s.mu.Unlock()
	tc := tls.Server(&replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(wire), c)}, s.cfg)
	if err := tc.Handshake(); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	base := Result{Conn: id, TLS: *hello, Protocol: tc.ConnectionState().NegotiatedProtocol}
	if base.Protocol == "h2" {
		s.serveH2(tc, base)
		return
	}
	base.Protocol = "http/1.1"
	s.serveH1(tc, base)
}

// serveH2 answers HTTP/2 requests until the client goes away. Flow control
// is not tracked: the answers (some kilobytes) fit the windows clients open.
func (s *Server) serveH2(c net.Conn, base Result) {
	if err := readPreface(c); err != nil {
		return
	}
	fr := newReadFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return
	}
	h, err := readHTTP2Start(fr)
	if err != nil {
		return
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for range h.settingsFrames {
		if err := fr.WriteSettingsAck(); err != nil {
			return
		}
	}
	n := 0
	answer := func(h *HTTP2, method, path string) error {
		n++
		r := base
		r.Request, r.HTTP2, r.Method, r.Path = n, h, method, path
		s.record(r)
		body, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		hbuf.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/json"})
		enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: h.StreamID, BlockFragment: hbuf.Bytes(), EndHeaders: true}); err != nil {
			return err
		}
		for len(body) > 0 {
			chunk := body[:min(len(body), 16384)]
			body = body[len(chunk):]
			if err := fr.WriteData(h.StreamID, len(body) == 0, chunk); err != nil {
				return err
			}
		}
		return nil
	}
	if err := answer(h, pseudo(h, ":method"), pseudo(h, ":path")); err != nil {
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = fr.WritePing(true, f.Data)
			}
		case *http2.DataFrame:
			if l := uint32(len(f.Data())); l > 0 {
				err = fr.WriteWindowUpdate(0, l)
				if err == nil && !f.StreamEnded() {
					err = fr.WriteWindowUpdate(f.StreamID, l)
				}
			}
		case *http2.MetaHeadersFrame:
			next := &HTTP2{Settings: h.Settings, WindowUpdate: h.WindowUpdate, Priorities: h.Priorities, Frames: h.Frames}
			next.setRequest(f)
			err = answer(next, pseudo(next, ":method"), pseudo(next, ":path"))
		case *http2.GoAwayFrame:
			return
		}
		if err != nil {
			return
		}
	}
}

func pseudo(h *HTTP2, name string) string {
	for _, f := range h.Headers {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// serveH1 answers HTTP/1.x requests, keeping the connection open until the
// client closes it or asks to.
func (s *Server) serveH1(c net.Conn, base Result) {
	br := bufio.NewReader(c)
	for n := 1; ; n++ {
		h, err := ReadHTTP1(br)
		if err != nil {
			return
		}
		r := base
		r.Request, r.HTTP1 = n, h
		if f := strings.Fields(h.RequestLine); len(f) == 3 {
			r.Method, r.Path = f[0], f[1]
		}
		s.record(r)
		if err := discardBody(br, h); err != nil {
			return
		}
		body, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return
		}
		closeAfter := h.Proto == "HTTP/1.0"
		if v, ok := h.get("Connection"); ok {
			closeAfter = strings.EqualFold(v, "close") || closeAfter && !strings.EqualFold(v, "keep-alive")
		}
		head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		if closeAfter {
			head += "Connection: close\r\n"
		}
		if _, err := c.Write(append([]byte(head+"\r\n"), body...)); err != nil || closeAfter {
			return
		}
	}
}

func (h *HTTP1) get(name string) (string, bool) {
	for _, f := range h.Headers {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

func discardBody(br *bufio.Reader, h *HTTP1) error {
	if te, ok := h.get("Transfer-Encoding"); ok && strings.EqualFold(strings.TrimSpace(te), "chunked") {
		_, err := io.Copy(io.Discard, httputil.NewChunkedReader(br))
		if err != nil {
			return err
		}
		// The trailer section ends with an empty line.
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.TrimRight(line, "\r\n") == "" {
				return nil
			}
		}
	}
	if cl, ok := h.get("Content-Length"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: Content-Length %q", ErrMalformed, cl)
		}
		_, err = io.CopyN(io.Discard, br, n)
		return err
	}
	return nil
}

// ReadHTTP1 reads one HTTP/1.x request head from br (request line, header
// lines, empty line) and keeps the header names with their case and order.
// A head that is not HTTP/1.x gives an error wrapping ErrMalformed.
func ReadHTTP1(br *bufio.Reader) (*HTTP1, error) {
	h := &HTTP1{HeaderOrder: []string{}, Headers: []Header{}}
	size := 0
	for i := 0; ; i++ {
		line, err := br.ReadString('\n')
		size += len(line)
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("fingerprint: reading the HTTP/1 request head: %w", err)
		}
		if size > maxHead {
			return nil, fmt.Errorf("%w: HTTP/1 request head longer than %d bytes", ErrMalformed, maxHead)
		}
		line = strings.TrimRight(line, "\r\n")
		if i == 0 {
			f := strings.Fields(line)
			if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
				return nil, fmt.Errorf("%w: HTTP/1 request line %q", ErrMalformed, line)
			}
			h.RequestLine, h.Proto = line, f[2]
			continue
		}
		if line == "" {
			return h, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("%w: HTTP/1 header line %q", ErrMalformed, line)
		}
		h.HeaderOrder = append(h.HeaderOrder, name)
		h.Headers = append(h.Headers, Header{Name: name, Value: strings.TrimSpace(value)})
	}
}

// isToken reports whether s is an RFC 9110 token, what a header name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
