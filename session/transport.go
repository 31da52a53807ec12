package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/rosterhq/roster/preset"
	"github.com/rosterhq/roster/protocol"
)

// httpState is what a session needs to make requests. It is built on the
// first request (or Client call), so that a session never used stays small.
type httpState struct {
	s        *Session
	client   *http.Client
	defaults http.Header // config headers over preset headers, canonical
	// insecure is defaults as the browser sends them to an origin that is
	// not potentially trustworthy (see defaultsFor): the preset's
	// OmitOnInsecure left out and its InsecureAcceptEncoding, unless the
	// config set those headers. It is defaults when the preset has no
	// such rules.
	insecure http.Header
	// ws and wsInsecure are defaults and insecure for a WebSocket's
	// handshake (the preset's WebSocket), or nil when it has none.
	ws, wsInsecure http.Header
	baseURL        *url.URL
	retry          retryPolicy
	tlsConf        *tls.Config
	dialer         *net.Dialer

	// closed is cancelled, with cause ErrSessionClosed, when the session
	// closes; every request's context is tied to it.
	closed context.Context
	cancel context.CancelCauseFunc

	tcp     atomic.Pointer[tcpHolder]
	mu      sync.Mutex     // guards what follows
	retired []tcpTransport // replaced by SetProxy; closed when idle
	// nRetired is len(retired), read without the lock on every request.
	nRetired atomic.Int32
	h3       *http3.Transport
	udp      *quic.Transport
	// altSvc maps an https origin to its h3 alternative ("": HTTP/3 failed
	// there). Read on every https request, so it is replaced, never
	// changed: writers copy it under mu.
	altSvc atomic.Pointer[map[string]string]
}

// insecureDefaults derives the headers for an origin that is not
// potentially trustworthy from defaults (own: the config's headers, which
// stay as they are).
func insecureDefaults(defaults http.Header, own map[string]string, p *preset.Preset) http.Header {
	if len(p.OmitOnInsecure) == 0 && p.InsecureAcceptEncoding == "" {
		return defaults
	}
	set := canonicalSet(own)
	h := defaults.Clone()
	for _, n := range p.OmitOnInsecure {
		if k := http.CanonicalHeaderKey(n); !set[k] {
			delete(h, k)
		}
	}
	if _, ok := h["Accept-Encoding"]; ok && p.InsecureAcceptEncoding != "" && !set["Accept-Encoding"] {
		h["Accept-Encoding"] = []string{p.InsecureAcceptEncoding}
	}
	return h
}

// webSocketDefaults derives a WebSocket handshake's headers from defaults:
// the preset's navigation headers that ws omits left out, its own added,
// the config's (own) kept as they are.
func webSocketDefaults(defaults http.Header, own map[string]string, ws *preset.WebSocket) http.Header {
	set := canonicalSet(own)
	h := defaults.Clone()
	for _, n := range ws.Omit {
		if k := http.CanonicalHeaderKey(n); !set[k] {
			delete(h, k)
		}
	}
	for _, f := range ws.Headers {
		if k := http.CanonicalHeaderKey(f.Name); !set[k] {
			h[k] = []string{f.Value}
		}
	}
	return h
}

func canonicalSet(own map[string]string) map[string]bool {
	set := make(map[string]bool, len(own))
	for k := range own {
		set[http.CanonicalHeaderKey(k)] = true
	}
	return set
}

// defaultsFor returns the session's default headers for a request to u:
// defaults, or insecure when u's origin is not potentially trustworthy,
// as a browser tells them apart.
func (h *httpState) defaultsFor(u *url.URL) http.Header {
	if trustworthy(u) {
		return h.defaults
	}
	return h.insecure
}

// webSocketDefaultsFor is defaultsFor for a WebSocket's handshake, nil if
// the preset has no WebSocket profile.
func (h *httpState) webSocketDefaultsFor(u *url.URL) http.Header {
	if trustworthy(u) {
		return h.ws
	}
	return h.wsInsecure
}

// trustworthy reports whether u's origin is potentially trustworthy in the
// sense of W3C Secure Contexts, the test Chrome and Firefox apply before
// they send client hints and Sec-Fetch-* or offer br and zstd: https and
// wss, or the loopback by address (127.0.0.0/8, ::1) or by name
// (localhost, *.localhost). Plain http:// to anything else is not.
func trustworthy(u *url.URL) bool {
	switch u.Scheme {
	case "https", "wss":
		return true
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.IsLoopback()
	}
	const local = "localhost"
	return strings.EqualFold(host, local) ||
		len(host) > len(local) && host[len(host)-len(local)-1] == '.' && strings.EqualFold(host[len(host)-len(local):], local)
}

// http returns the session's request machinery, building it on first use.
// It fails with ErrSessionClosed once the session is closed.
func (s *Session) http() (*httpState, error) {
	if h := s.hs.Load(); h != nil {
		return h, nil
	}
	s.hsMu.Lock()
	defer s.hsMu.Unlock()
	if s.closed.Load() {
		return nil, s.errClosed()
	}
	if h := s.hs.Load(); h != nil {
		return h, nil
	}
	h, err := newHTTPState(s)
	if err != nil {
		return nil, err
	}
	s.hs.Store(h)
	return h, nil
}

func newHTTPState(s *Session) (*httpState, error) {
	cfg := s.config
	h := &httpState{s: s, defaults: http.Header{}, retry: newRetryPolicy(cfg)}
	h.closed, h.cancel = context.WithCancelCause(context.Background())
	for k, v := range cfg.Headers {
		h.defaults.Set(k, v)
	}
	s.preset.Apply(h.defaults)
	h.insecure = insecureDefaults(h.defaults, cfg.Headers, s.preset)
	if ws := s.preset.WebSocket; ws != nil {
		h.ws = webSocketDefaults(h.defaults, cfg.Headers, ws)
		h.wsInsecure = insecureDefaults(h.ws, cfg.Headers, s.preset)
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil { // Validate has checked it
			return nil, err
		}
		h.baseURL = u
	}

	h.tlsConf = &tls.Config{
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // the caller asked for it
		ClientSessionCache: &s.tickets,
	}
	if cfg.CACerts != "" {
		pool, err := rootsWith(cfg.CACerts)
		if err != nil {
			return nil, err
		}
		h.tlsConf.RootCAs = pool
	}
	h.dialer = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if cfg.LocalAddress != "" {
		h.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cfg.LocalAddress)}
	}
	h.tcp.Store(&tcpHolder{h.newTCPTransport()})

	h.client = &http.Client{
		Transport:     &roundTripper{h: h},
		Timeout:       time.Duration(cfg.Timeout) * time.Millisecond,
		CheckRedirect: perRequestRedirects(redirectPolicy(cfg)),
	}
	if j := s.cookieJar(true); j != nil {
		h.client.Jar = j
	}
	return h, nil
}

// tcpHolder lets the transport, an interface, live in an atomic.Pointer.
type tcpHolder struct{ tcpTransport }

// newTCPTransport builds the session's own HTTP/1.1 and HTTP/2 transport:
// its connections are never shared with another session. A fingerprinted
// preset gets the browser's stack, any other Go's.
func (h *httpState) newTCPTransport() tcpTransport {
	if h.s.preset.Fingerprinted() {
		return h.newFPTransport()
	}
	return h.newGoTransport()
}

func (h *httpState) newGoTransport() *http.Transport {
	cfg := h.s.config
	maxConns, maxIdle, idleTimeout := cfg.Pool()
	t := &http.Transport{
		Proxy:                 h.proxy,
		DialContext:           h.dial,
		TLSClientConfig:       h.tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableKeepAlives:     cfg.DisableKeepAlives,
		MaxConnsPerHost:       maxConns,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       idleTimeout,
		ExpectContinueTimeout: time.Second,
		Protocols:             new(http.Protocols),
	}
	switch {
	case cfg.ForceHTTP1:
		t.Protocols.SetHTTP1(true)
	case cfg.ForceHTTP2:
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetUnencryptedHTTP2(true) // prior knowledge on http://
	default:
		t.Protocols.SetHTTP1(true)
		t.Protocols.SetHTTP2(true)
	}
	return t
}

// proxy is the Transport's Proxy function: the session's current proxy.
// The environment's proxy settings are ignored: a session is an explicit
// identity.
func (h *httpState) proxy(*http.Request) (*url.URL, error) { return h.s.proxy.Load(), nil }

// dial dials addr, or where ConnectTo sends it, from LocalAddress, trying
// IPv4 first if PreferIPv4 is set.
func (h *httpState) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	addr, network = h.route(network, addr)
	if network == "tcp4" {
		c, err := h.dialer.DialContext(ctx, network, addr)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		network = "tcp"
	}
	return h.dialer.DialContext(ctx, network, addr)
}

// route applies ConnectTo and PreferIPv4 to a dial.
func (h *httpState) route(network, addr string) (string, string) {
	cfg := h.s.config
	if to, ok := cfg.ConnectTo[addr]; ok {
		addr = to
	}
	if cfg.PreferIPv4 && network == "tcp" {
		network = "tcp4"
	}
	return addr, network
}

// http3 returns the session's HTTP/3 transport, building it on first use.
func (h *httpState) http3() *http3.Transport {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h3 == nil {
		h.h3 = &http3.Transport{TLSClientConfig: h.tlsConf.Clone(), Dial: h.dialQUIC}
		// QUIC tickets carry transport parameters: keep them apart from
		// the TCP ones that Marshal saves.
		h.h3.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(16)
	}
	return h.h3
}

// dialQUIC dials a QUIC connection over the session's own UDP socket,
// bound to LocalAddress if set.
func (h *httpState) dialQUIC(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
	network := "udp"
	if alt := h.altFor(addr); alt != "" {
		addr = alt
	}
	addr, tcpNet := h.route("tcp", addr)
	if tcpNet == "tcp4" {
		network = "udp4"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", hostOf(addr))
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %s", addr)
	}
	ip := ips[0]
	if network == "udp4" {
		for _, a := range ips {
			if a.Unmap().Is4() {
				ip = a
				break
			}
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	raddr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(ip.Unmap().String(), port))
	if err != nil {
		return nil, err
	}
	tr, err := h.quicTransport()
	if err != nil {
		return nil, err
	}
	return tr.DialEarly(ctx, raddr, tlsConf, qc)
}

func (h *httpState) quicTransport() (*quic.Transport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.udp != nil {
		return h.udp, nil
	}
	var laddr *net.UDPAddr
	if cfg := h.s.config; cfg.LocalAddress != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(cfg.LocalAddress)}
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("quic: %w", err)
	}
	h.udp = &quic.Transport{Conn: conn}
	return h.udp, nil
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// useHTTP3 reports whether a request to u goes over HTTP/3: always with
// ForceHTTP3, and for an https origin that advertised h3 in Alt-Svc and has
// not failed, unless DisableHTTP3, a forced protocol, a proxy or a
// fingerprinted preset rules it out: the browser's handshake is over TCP,
// and an HTTP/3 connection would show Go's.
func (h *httpState) useHTTP3(u *url.URL) bool {
	cfg := h.s.config
	if cfg.ForceHTTP3 {
		return true
	}
	if u.Scheme != "https" || cfg.DisableHTTP3 || cfg.ForceHTTP1 || cfg.ForceHTTP2 || h.s.proxy.Load() != nil || h.s.preset.Fingerprinted() {
		return false
	}
	return h.altFor(authority(u)) != ""
}

// altFor returns origin's h3 alternative, "" if none.
func (h *httpState) altFor(origin string) string {
	if m := h.altSvc.Load(); m != nil {
		return (*m)[origin]
	}
	return ""
}

// setAlt records origin's h3 alternative (alt "" marks HTTP/3 as failed
// there; del removes the record). The caller holds h.mu.
func (h *httpState) setAlt(origin, alt string, del bool) {
	old := h.altSvc.Load()
	m := make(map[string]string)
	if old != nil {
		maps.Copy(m, *old)
	}
	if del {
		delete(m, origin)
	} else {
		m[origin] = alt
	}
	h.altSvc.Store(&m)
}

// authority returns u's host:port, with the scheme's default port.
func authority(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "http" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// noteAltSvc records an origin's HTTP/3 advertisement from a response.
func (h *httpState) noteAltSvc(u *url.URL, resp *http.Response) {
	if u.Scheme != "https" || resp.ProtoMajor == 3 {
		return
	}
	v := resp.Header.Get("Alt-Svc")
	if v == "" {
		return
	}
	origin := authority(u)
	alt, ok := parseAltSvcH3(v, u.Hostname())
	cleared := strings.TrimSpace(v) == "clear"
	if !ok && !cleared || ok && h.altFor(origin) == alt {
		return // nothing new: the common case takes no lock
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.altSvc.Load(); m != nil {
		if prev, seen := (*m)[origin]; seen && prev == "" {
			return // HTTP/3 failed here before: stay on TCP
		}
	}
	h.setAlt(origin, alt, cleared)
}

// parseAltSvcH3 returns the authority of the first h3 alternative in an
// Alt-Svc header value (RFC 7838), with host filled in when the
// alternative gives only a port.
func parseAltSvcH3(v, host string) (string, bool) {
	for _, alt := range strings.Split(v, ",") {
		entry, _, _ := strings.Cut(alt, ";")
		proto, val, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || strings.TrimSpace(proto) != "h3" {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		ah, port, err := net.SplitHostPort(val)
		if err != nil || port == "" {
			continue
		}
		if ah == "" {
			ah = host
		}
		return net.JoinHostPort(ah, port), true
	}
	return "", false
}

// markHTTP3Broken keeps an origin on TCP after HTTP/3 failed.
func (h *httpState) markHTTP3Broken(u *url.URL) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setAlt(authority(u), "", false)
}

// setProxy switches the proxy: a new transport, so that no connection made
// through the old proxy is reused; the old one's idle connections close now
// and its busy ones once their requests end.
func (h *httpState) setProxy() {
	old := h.tcp.Swap(&tcpHolder{h.newTCPTransport()}).tcpTransport
	old.CloseIdleConnections()
	h.mu.Lock()
	h.retired = append(h.retired, old)
	h.nRetired.Store(int32(len(h.retired)))
	h.mu.Unlock()
}

// afterRequest closes the idle connections of transports retired by
// SetProxy, once no request may still use them. (On a closed session,
// endRequest closes everything when the last request ends.)
func (h *httpState) afterRequest() {
	if h.nRetired.Load() == 0 {
		return
	}
	h.mu.Lock()
	retired := h.retired
	drop := h.s.inFlight.Load() == 0
	if drop {
		h.retired = nil
		h.nRetired.Store(0)
	}
	h.mu.Unlock()
	for _, t := range retired {
		t.CloseIdleConnections()
		if ft, ok := t.(*fpTransport); ok && drop {
			ft.h1.detach() // no request on it: let it be collected
		}
	}
}

// close cancels every request in flight and closes every connection.
func (h *httpState) close() {
	h.cancel(ErrSessionClosed)
	h.closeConnections()
}

func (h *httpState) closeConnections() {
	h.tcp.Load().CloseIdleConnections()
	// Decide once, under the lock, what to close: a request that begins
	// now on the closing session fails before it touches HTTP/3, so with
	// none in flight the QUIC transport is ours to close.
	h.mu.Lock()
	retired := h.retired
	h.retired = nil
	h.nRetired.Store(0)
	var h3 *http3.Transport
	var udp *quic.Transport
	if h.s.inFlight.Load() == 0 {
		h3, udp = h.h3, h.udp
		h.h3, h.udp = nil, nil
	}
	h.mu.Unlock()
	for _, t := range retired {
		t.CloseIdleConnections()
	}
	if h3 != nil {
		_ = h3.Close()
	}
	if udp != nil {
		_ = udp.Close()
		_ = udp.Conn.Close()
	}
}

// redirectPolicy follows up to MaxRedirects (10 by default) redirects,
// none if FollowRedirects is false.
func redirectPolicy(cfg *protocol.SessionConfig) func(*http.Request, []*http.Request) error {
	if cfg.FollowRedirects != nil && !*cfg.FollowRedirects {
		return func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	max := cfg.MaxRedirects
	if max == 0 {
		max = 10
	}
	return func(_ *http.Request, via []*http.Request) error {
		if len(via) > max {
			return fmt.Errorf("stopped after %d redirects", max)
		}
		return nil
	}
}

// lookupPreset resolves the config's preset; unknown names are an error that
// lists the known ones.
func lookupPreset(cfg *protocol.SessionConfig) (*preset.Preset, error) {
	p, err := preset.Lookup(cfg.PresetName())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return p, nil
}

// rootPools caches the system roots plus a config's CACerts, by the PEM
// text: building one clones the system pool and parses the PEM (about 50
// KB and 270 allocations), and a worker pool gives every session the same
// CACerts. A pool is never changed once built, so sessions share it. The
// cache is small and simply emptied when full: distinct CA sets are few.
var rootPools struct {
	sync.Mutex
	m map[string]*x509.CertPool
}

const maxRootPools = 16

func rootsWith(pemText string) (*x509.CertPool, error) {
	rootPools.Lock()
	pool := rootPools.m[pemText]
	rootPools.Unlock()
	if pool != nil {
		return pool, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	certs, err := protocol.ParseCACerts(pemText)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	rootPools.Lock()
	defer rootPools.Unlock()
	if len(rootPools.m) >= maxRootPools {
		clear(rootPools.m)
	}
	if rootPools.m == nil {
		rootPools.m = make(map[string]*x509.CertPool)
	}
	rootPools.m[pemText] = pool
	return pool, nil
}
