package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fhttp "github.com/bogdanfinn/fhttp"
	"github.com/bogdanfinn/fhttp/http2"
	utls "github.com/bogdanfinn/utls"
	"github.com/rosterhq/roster/preset"
)

// HeaderOrderKey is a request header key whose values give the order, by
// lowercase name, in which a fingerprinted session writes the request's
// headers, over the preset's order:
//
//	req.Header[session.HeaderOrderKey] = []string{"user-agent", "accept", "x-mine"}
//
// Headers it does not name follow, sorted by their lowercase names. It is
// never sent, and a session on Go's own stack (preset "go") ignores it.
const HeaderOrderKey = fhttp.HeaderOrderKey

// tcpTransport is what carries a session's HTTP/1.1 and HTTP/2 requests:
// net/http's Transport for Go's own stack, fpTransport for a browser's.
type tcpTransport interface {
	RoundTrip(*http.Request) (*http.Response, error)
	CloseIdleConnections()
}

// fpTransport carries requests as the preset's browser: TLS through uTLS
// with the browser's ClientHello, HTTP/2 with its SETTINGS, WINDOW_UPDATE,
// priorities and pseudo-header order (fhttp), and headers in its order and
// spelling. The session's API stays net/http: requests and responses are
// translated at this boundary, bodies streamed both ways.
type fpTransport struct {
	h  *httpState
	p  *preset.Preset
	t1 *fhttp.Transport // dials; HTTP/1.1 for HTTP proxies
	// tu carries upgrades (WebSockets): HTTP/1.1 only, on connections of
	// their own, so that they never share a pool with other requests or
	// try HTTP/2. Made on the first upgrade (tuMu).
	tu   atomic.Pointer[fhttp.Transport]
	tuMu sync.Mutex
	t2   *http2.Transport // t1's HTTP/2 connections; nil under ForceHTTP1
	h2c  *http2.Transport // ForceHTTP2 on http://: HTTP/2 by prior knowledge
	h1   *h1Transport     // HTTP/1.1: http:// without an HTTP proxy, and https
	// h1Direct says the session had no HTTP proxy when this transport was
	// built (SetProxy builds a new one): http:// goes through h1. Fixed,
	// so that a request decides once which client carries it.
	h1Direct bool
	order    []string        // host, connection, then the preset's order
	placed   map[string]bool // the names in order
	tlsCfg   *utls.Config    // shared by every connection; the spec is per connection
	// http2Only holds the canonical keys of the preset's OmitOnHTTP1.
	http2Only map[string]bool
	alpn      []string // replaces the preset's ALPN when a protocol is forced

	// lastTLS is the latest translated connection state (see tlsState).
	lastTLS atomic.Pointer[tlsState]

	// lower maps the canonical keys of the session's default headers to
	// their lowercase form, for requests that go over HTTP/2.
	lower map[string]string
	// ws is the preset's WebSocket handshake, nil if it has none.
	ws *wsShape
}

func (h *httpState) newFPTransport() *fpTransport {
	cfg := h.s.config
	p := h.s.preset
	ft := &fpTransport{h: h, p: p}
	ft.order = withConnHeaders(p.Order())
	ft.placed = make(map[string]bool, 3*len(ft.order))
	for _, n := range ft.order {
		k := http.CanonicalHeaderKey(n)
		ft.placed[n] = true
		ft.placed[k] = true
		ft.placed[ft.wireName(k)] = true
	}
	ft.lower = make(map[string]string, len(h.defaults)+2)
	for k := range h.defaults {
		ft.lower[k] = strings.ToLower(k)
	}
	if p.WebSocket != nil {
		ft.ws = newWSShape(ft, p.WebSocket)
	}
	ft.http2Only = make(map[string]bool, len(p.OmitOnHTTP1))
	for _, n := range p.OmitOnHTTP1 {
		ft.http2Only[http.CanonicalHeaderKey(n)] = true
	}
	ft.tlsCfg = &utls.Config{
		RootCAs:            h.tlsConf.RootCAs,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // the caller asked for it
		ClientSessionCache: (*utlsTickets)(&h.s.tickets),
		// The capture is a first connection: it has no pre_shared_key.
		// Offer one only when there is a session to resume, as the
		// browser does.
		OmitEmptyPsk: true,
	}
	switch {
	case cfg.ForceHTTP1:
		ft.alpn = []string{"http/1.1"}
	case cfg.ForceHTTP2:
		ft.alpn = []string{"h2"}
	}
	maxConns, maxIdle, idleTimeout := cfg.Pool()
	ft.t1 = ft.fhttpTransport(ft.dialTLS)
	ft.h1 = newH1Transport(ft, maxConns, maxIdle, idleTimeout, !cfg.DisableKeepAlives)
	pu := h.s.proxy.Load()
	ft.h1Direct = pu == nil || pu.Scheme == "socks5" || pu.Scheme == "socks5h"
	if !cfg.ForceHTTP1 {
		t2, err := http2.ConfigureTransports(ft.t1)
		if err != nil { // only if t1 was configured before: it is new
			panic("session: " + err.Error())
		}
		ft.shapeHTTP2(t2, idleTimeout)
		ft.t2 = t2
	}
	if cfg.ForceHTTP2 {
		ft.h2c = &http2.Transport{
			AllowHTTP: true,
			DialTLS: func(network, addr string, _ *utls.Config) (net.Conn, error) {
				ctx, cancel := context.WithTimeout(h.closed, 30*time.Second)
				defer cancel()
				return h.dialThrough(ctx, network, addr)
			},
			DisableCompression: true,
		}
		ft.shapeHTTP2(ft.h2c, idleTimeout)
	}
	return ft
}

// shapeHTTP2 gives t the preset's HTTP/2 connection preface and HEADERS.
func (ft *fpTransport) shapeHTTP2(t *http2.Transport, idleTimeout time.Duration) {
	spec := ft.p.HTTP2
	t.Settings = make(map[http2.SettingID]uint32, len(spec.Settings))
	t.SettingsOrder = make([]http2.SettingID, len(spec.Settings))
	for i, s := range spec.Settings {
		t.Settings[http2.SettingID(s.ID)] = s.Value
		t.SettingsOrder[i] = http2.SettingID(s.ID)
	}
	t.ConnectionFlow = spec.WindowUpdate
	for _, pr := range spec.Priorities {
		t.Priorities = append(t.Priorities, http2.Priority{StreamID: pr.StreamID, PriorityParam: priorityParam(pr.Priority)})
	}
	// fhttp sets the PRIORITY flag on HEADERS unless the priority is zero.
	t.HeaderPriority = &http2.PriorityParam{}
	if hp := spec.HeadersPriority; hp != nil {
		pp := priorityParam(*hp)
		t.HeaderPriority = &pp
	}
	t.PseudoHeaderOrder = spec.PseudoHeaderOrder
	t.IdleConnTimeout = idleTimeout
}

func priorityParam(p preset.Priority) http2.PriorityParam {
	return http2.PriorityParam{StreamDep: p.DependsOn, Exclusive: p.Exclusive, Weight: uint8(p.Weight - 1)}
}

// proxy is the fhttp Transport's Proxy function. Only http:// targets go
// through it (as absolute-form requests, or SOCKS5); https targets reach
// dialTLS, which tunnels through the proxy itself so that the handshake
// with the server is the browser's.
func (ft *fpTransport) proxy(req *fhttp.Request) (*url.URL, error) {
	if req.URL.Scheme == "https" {
		return nil, nil
	}
	return ft.h.s.proxy.Load(), nil
}

// dialTLS opens a connection to addr, through the session's proxy if any,
// and runs the browser's TLS handshake on it; or, for fhttp's dial for a
// request that the own client handed over (see handOver), returns the
// connection it dialled.
func (ft *fpTransport) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	if d, ok := ctx.Value(dialedKey{}).(*dialed); ok && d.addr == addr {
		if c := d.take(); c != nil {
			return c, nil
		}
	}
	alpn := ft.alpn
	// A WebSocket gets a connection of its own that offers http/1.1
	// only, as Chrome's and Firefox's do; Chrome's then also leaves out
	// ALPS, which goes with h2.
	_, upgrade := ctx.Value(upgradeKey{}).(bool)
	if upgrade {
		alpn = []string{"http/1.1"}
	}
	var (
		raw net.Conn
		err error
	)
	if pu := ft.h.s.proxy.Load(); pu != nil && pu.Scheme == "https" && addr == canonicalAddr(pu) {
		// fhttp reaches an https proxy (for an http:// target) through
		// this dialer too: TLS with the proxy itself, not a tunnel to
		// it, and HTTP/1.1 to it, as net/http does.
		raw, err = ft.h.dialer.DialContext(ctx, network, addr)
		alpn = []string{"http/1.1"}
	} else {
		raw, err = ft.h.dialThrough(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	cfg := ft.tlsCfg.Clone()
	cfg.ServerName = hostOf(addr)
	uc := utls.UClient(raw, cfg, utls.HelloCustom, false, false, false)
	spec, err := ft.p.TLS.NewSpec()
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("preset %s: %w", ft.p.Name, err)
	}
	if alpn != nil {
		for _, e := range spec.Extensions {
			if a, ok := e.(*utls.ALPNExtension); ok {
				a.AlpnProtocols = alpn
			}
		}
	}
	if upgrade {
		spec.Extensions = slices.DeleteFunc(spec.Extensions, func(e utls.TLSExtension) bool {
			switch e.(type) {
			case *utls.ApplicationSettingsExtension, *utls.ApplicationSettingsExtensionNew:
				return true
			}
			return false
		})
	}
	if err := uc.ApplyPreset(spec); err != nil {
		raw.Close()
		return nil, fmt.Errorf("preset %s: %w", ft.p.Name, err)
	}
	if err := uc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	// fhttp recognises a *utls.Conn, not the UConn around it, when it
	// picks HTTP/2 by ALPN. After the handshake the UConn adds nothing:
	// records, post-handshake tickets and key updates are the Conn's.
	return uc.Conn, nil
}

// CloseIdleConnections closes the idle connections of every protocol.
func (ft *fpTransport) CloseIdleConnections() {
	ft.h1.closeIdle()
	ft.t1.CloseIdleConnections()
	if tu := ft.tu.Load(); tu != nil {
		tu.CloseIdleConnections()
	}
	if ft.h2c != nil {
		ft.h2c.CloseIdleConnections()
	}
}

// RoundTrip sends req over the session's own HTTP/1.1 client if that can
// carry it, else over fhttp, translating the response back.
//
// An https request goes over the own client's HTTP/1.1 connections to its
// server if it has some, else over a cached HTTP/2 connection of fhttp's;
// if there is neither, the own client dials one with the browser's
// handshake (under MaxConnsPerHost, or it waits for a connection), and if
// ALPN picks h2 on that connection it hands the request and the
// connection to fhttp (see dialed). So every HTTP/1.1 request over TLS,
// the first included, is written by the own client in the browser's
// spelling, and HTTP/2 by fhttp, on the connection the own client dialled.
func (ft *fpTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Checked once, whichever client carries it, so that a request is
	// refused alike on every route, and before any dial.
	ruri, err := ft.h1.checkNow(req)
	if err != nil {
		return nil, err
	}
	switch ft.route(req) {
	case routeHTTP1:
		return ft.orHandOver(ft.h1.roundTrip(req, h1KeyOf(req.URL), ruri))
	case routeHTTPS:
		// The own client's connections say the server speaks HTTP/1.1:
		// building the request for fhttp to be told it has no HTTP/2
		// connection would cost a third of the request.
		key := h1KeyOf(req.URL)
		if !ft.h1.spokeHTTP1(key) {
			var resp *http.Response
			if resp, req, err = ft.cachedHTTP2(req); !errors.Is(err, http2.ErrNoCachedConn) {
				return resp, err
			}
		}
		return ft.orHandOver(ft.h1.roundTrip(req, key, ruri))
	}
	ctx := req.Context()
	h2 := ft.h2c != nil && req.URL.Scheme == "http"
	if _, ok := req.Header["Upgrade"]; ok && !h2 {
		fresp, err := ft.upgrader().RoundTrip(ft.request(ctx, req, true, false))
		return ft.response(req, fresp, err)
	}
	freq := ft.request(ctx, req, ft.http1Only(req.URL), h2)
	if h2 {
		fresp, err := ft.h2c.RoundTrip(freq)
		return ft.response(req, fresp, err)
	}
	fresp, err := ft.t1.RoundTrip(freq)
	return ft.response(req, fresp, err)
}

// cachedHTTP2 sends req over fhttp's HTTP/2 connection to its server, if
// there is one; if not, it returns http2.ErrNoCachedConn and the request
// to send instead: req, or a copy with its body anew from GetBody when
// fhttp had sent some of it on a connection that then went away
// (GOAWAY) and found no other.
func (ft *fpTransport) cachedHTTP2(req *http.Request) (*http.Response, *http.Request, error) {
	freq := ft.request(req.Context(), req, false, true)
	var tb *bodyTracker
	if req.Body != nil && req.Body != http.NoBody {
		tb = &bodyTracker{ReadCloser: req.Body}
		freq.Body = tb
	}
	fresp, err := ft.t2.RoundTrip(freq)
	if !errors.Is(err, http2.ErrNoCachedConn) {
		if err != nil {
			closeRequestBody(req) // fhttp's HTTP/2 does not on every error
		}
		resp, err := ft.response(req, fresp, err)
		return resp, req, err
	}
	if tb == nil || !tb.used.Load() {
		return nil, req, err
	}
	if req.GetBody == nil {
		closeRequestBody(req)
		return nil, req, errors.New("session: cannot rewind the request body after the HTTP/2 connection went away")
	}
	body, gerr := req.GetBody()
	if gerr != nil {
		return nil, req, gerr
	}
	r := new(http.Request)
	*r = *req
	r.Body = body
	return nil, r, err
}

// bodyTracker records whether a request body was read or closed.
type bodyTracker struct {
	io.ReadCloser
	used atomic.Bool
}

func (b *bodyTracker) Read(p []byte) (int, error) {
	b.used.Store(true)
	return b.ReadCloser.Read(p)
}

func (b *bodyTracker) Close() error {
	b.used.Store(true)
	return b.ReadCloser.Close()
}

// orHandOver returns the own client's answer, unless it says that the
// server picked h2: then the request goes over HTTP/2 (handOver).
func (ft *fpTransport) orHandOver(resp *http.Response, err error) (*http.Response, error) {
	var picked *errPickedH2
	if !errors.As(err, &picked) {
		return resp, err
	}
	return ft.handOver(picked)
}

// handOver sends the request of picked over HTTP/2: on the connection the
// own client dialled for it, which fhttp's dial for the request takes, or
// (conn nil) on the one another request's dial handed over.
func (ft *fpTransport) handOver(picked *errPickedH2) (*http.Response, error) {
	req := picked.req
	ctx := req.Context()
	if picked.conn != nil {
		d := &dialed{addr: canonicalAddr(req.URL)}
		d.conn.Store(&picked.conn)
		defer d.drop()
		ctx = context.WithValue(ctx, dialedKey{}, d)
	}
	fresp, err := ft.t1.RoundTrip(ft.request(ctx, req, false, true))
	if picked.wake != nil {
		picked.wake() // the connection is fhttp's now (or failed)
	}
	return ft.response(req, fresp, err)
}

// fhttpURL is u as fhttp should see it: a non-ASCII host in the form
// canonicalAddr dials (IDNA's lookup profile: punycode, lower case). fhttp
// files a new HTTP/2 connection under that form but looks connections up
// under a punycode that keeps upper case, so that a host such as
// Bücher.test would never find its connection and dial without end.
func fhttpURL(u *url.URL) *url.URL {
	a, ok := asciiAuthority(u)
	if ok {
		return u
	}
	v := *u
	v.Host = a
	return &v
}

// request translates req for fhttp, with ctx: its header as header builds
// it for HTTP/1.1 (http1) or HTTP/2 (h2).
func (ft *fpTransport) request(ctx context.Context, req *http.Request, http1, h2 bool) *fhttp.Request {
	// WithContext is the only way to set an fhttp.Request's context, and it
	// copies the request and clones its URL: called on an empty request,
	// it copies nothing. The URL is shared, as net/http's WithContext
	// does; fhttp's transports do not change it.
	freq := new(fhttp.Request).WithContext(ctx)
	freq.Method = req.Method
	freq.URL = fhttpURL(req.URL)
	freq.Proto = req.Proto
	freq.ProtoMajor = req.ProtoMajor
	freq.ProtoMinor = req.ProtoMinor
	if ft.ws != nil && strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		freq.Header = ft.header(req.Header, ft.h.webSocketDefaultsFor(req.URL), ft.ws, http1, h2)
	} else {
		freq.Header = ft.header(req.Header, ft.h.defaultsFor(req.URL), nil, http1, h2)
	}
	freq.Body = req.Body
	freq.GetBody = req.GetBody
	freq.ContentLength = req.ContentLength
	freq.TransferEncoding = req.TransferEncoding
	freq.Close = req.Close
	freq.Host = req.Host
	if req.Host == req.URL.Host { // NewRequest copies it
		freq.Host = freq.URL.Host
	}
	freq.Trailer = fhttp.Header(req.Trailer)
	return freq
}

// response translates fhttp's answer to req back.
func (ft *fpTransport) response(req *http.Request, fresp *fhttp.Response, err error) (*http.Response, error) {
	if err != nil {
		return nil, err
	}
	resp := &http.Response{
		Status:           fresp.Status,
		StatusCode:       fresp.StatusCode,
		Proto:            fresp.Proto,
		ProtoMajor:       fresp.ProtoMajor,
		ProtoMinor:       fresp.ProtoMinor,
		Header:           http.Header(fresp.Header),
		ContentLength:    fresp.ContentLength,
		TransferEncoding: fresp.TransferEncoding,
		Close:            fresp.Close,
		Uncompressed:     fresp.Uncompressed,
		Trailer:          http.Header(fresp.Trailer),
		Request:          req,
		TLS:              ft.tlsState(fresp.TLS),
	}
	switch {
	case fresp.StatusCode == http.StatusSwitchingProtocols:
		// fhttp's body is the connection, an io.ReadWriteCloser, as
		// net/http's: it stays one.
		resp.Body = fresp.Body
	case fresp.Body != nil && fresp.Body != fhttp.NoBody:
		resp.Body = &trailerBody{ReadCloser: fresp.Body, from: fresp, to: resp}
	default:
		resp.Body = http.NoBody
	}
	return resp, nil
}

// ownHTTP1 reports whether req goes over the session's own HTTP/1.1 client:
// an http:// target reached directly or through SOCKS5, neither HTTP/2 by
// prior knowledge nor a protocol upgrade. (fhttp carries the rest: TLS
// and HTTP/2, absolute-form requests to an HTTP proxy, and upgrades.)
func (ft *fpTransport) ownHTTP1(req *http.Request) bool {
	if req.URL.Scheme != "http" || ft.h2c != nil {
		return false
	}
	if !ft.h1Direct {
		return false
	}
	_, upgrade := req.Header["Upgrade"]
	return !upgrade
}

// A route is the way RoundTrip sends a request.
type route int

const (
	routeFHTTP route = iota // fhttp: upgrades, h2c, http:// through an HTTP proxy
	routeHTTP1              // the own HTTP/1.1 client
	routeHTTPS              // a cached HTTP/2 connection, else the own client
)

// route picks req's way: the own HTTP/1.1 client for http:// it can carry
// (ownHTTP1) and for https under ForceHTTP1 (ALPN offers only http/1.1);
// fhttp for upgrades and the rest of http://; for other https, fhttp's
// HTTP/2 if it has a connection, else the own client.
func (ft *fpTransport) route(req *http.Request) route {
	if ft.ownHTTP1(req) {
		return routeHTTP1
	}
	if req.URL.Scheme != "https" {
		return routeFHTTP
	}
	if _, upgrade := req.Header["Upgrade"]; upgrade {
		return routeFHTTP
	}
	if ft.t2 == nil { // ForceHTTP1
		return routeHTTP1
	}
	return routeHTTPS
}

// negotiated returns the ALPN protocol of a connection dialTLS made.
func negotiated(c net.Conn) string {
	if tc, ok := c.(*utls.Conn); ok {
		return tc.ConnectionState().NegotiatedProtocol
	}
	return ""
}

// dialed carries a connection that RoundTrip dialled, and on which the
// server picked h2, to fhttp: fhttp's dial for the request (dialTLS, with
// the request's context) takes it instead of dialling, so that the
// session opens one connection where the browser opens one. If fhttp
// served the request on another connection, drop closes it.
type dialed struct {
	addr string
	conn atomic.Pointer[net.Conn]
}

type dialedKey struct{}

// upgradeKey marks the context of a dial for an upgrade, for dialTLS.
type upgradeKey struct{}

// upgrader returns tu, making it on the first call: t1's settings, no
// HTTP/2, and dials that offer http/1.1 only (see dialTLS).
func (ft *fpTransport) upgrader() *fhttp.Transport {
	if t := ft.tu.Load(); t != nil {
		return t
	}
	ft.tuMu.Lock()
	defer ft.tuMu.Unlock()
	if t := ft.tu.Load(); t != nil {
		return t
	}
	t := ft.fhttpTransport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return ft.dialTLS(context.WithValue(ctx, upgradeKey{}, true), network, addr)
	})
	t.TLSNextProto = map[string]func(string, *utls.Conn) fhttp.RoundTripper{} // no HTTP/2
	ft.tu.Store(t)
	return t
}

// fhttpTransport is an fhttp transport with the session's pool settings,
// dialling TLS with dialTLS.
func (ft *fpTransport) fhttpTransport(dialTLS func(context.Context, string, string) (net.Conn, error)) *fhttp.Transport {
	cfg := ft.h.s.config
	maxConns, maxIdle, idleTimeout := cfg.Pool()
	return &fhttp.Transport{
		Proxy:                 ft.proxy,
		DialContext:           ft.h.dial,
		DialTLSContext:        dialTLS,
		TLSClientConfig:       ft.tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableKeepAlives:     cfg.DisableKeepAlives,
		DisableCompression:    true, // the session decodes what the preset asked for
		MaxConnsPerHost:       maxConns,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       idleTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// take returns the connection once; nil after that.
func (d *dialed) take() net.Conn {
	if p := d.conn.Swap(nil); p != nil {
		return *p
	}
	return nil
}

func (d *dialed) drop() {
	if c := d.take(); c != nil {
		_ = c.Close()
	}
}

// http1Only reports whether a request to u that t1 or h2c carries surely
// goes over HTTP/1.1: plain http:// (through an HTTP proxy) unless
// ForceHTTP2 makes it h2c. (Upgrades go over tu, HTTP/1.1 always.)
func (ft *fpTransport) http1Only(u *url.URL) bool {
	cfg := ft.h.s.config
	return cfg.ForceHTTP1 || u.Scheme == "http" && !cfg.ForceHTTP2
}

// header builds the request's fhttp header, h over the session's defaults
// for the request's origin: each name spelled as the browser spells it and
// an order, the request's own (HeaderOrderKey) or the preset's. A keep-alive Connection header is added as browsers send
// it over HTTP/1.1; HTTP/2 drops it.
//
// For a request that goes over HTTP/2 (h2) every name is in lower case, as
// HTTP/2 sends it anyway: fhttp's HTTP/2 writer sorts the header
// with a comparison that lowercases both names each time, and a name
// already in lower case costs it no allocation (about half of a request's
// allocations otherwise).
func (ft *fpTransport) header(h, defaults http.Header, ws *wsShape, http1, h2 bool) fhttp.Header {
	out := make(fhttp.Header, len(h)+len(defaults)+2)
	name := ft.wireName
	order, placed := ft.order, ft.placed
	switch {
	case h2:
		name = ft.lowerName
	case ws != nil:
		name = ws.name
		order, placed = ws.order, ws.placed
	}
	for k, vv := range h {
		switch k = http.CanonicalHeaderKey(k); k {
		case HeaderOrderKey, "Content-Length", "Transfer-Encoding":
			// The request's fields say these; fhttp writes them.
		default:
			out[name(k)] = vv
		}
	}
	// Config and preset headers (canonical keys), under the request's own,
	// less those the browser sends over HTTP/2 only when this request
	// surely goes over HTTP/1.1.
	for k, vv := range defaults {
		w := name(k)
		if _, ok := out[w]; !ok && !(http1 && ft.http2Only[k]) {
			out[w] = vv
		}
	}
	// HTTP/2 drops Connection, and fhttp's sort would pay for its
	// capital on every comparison.
	if _, ok := out["Connection"]; !ok && !h2 && !ft.h.s.config.DisableKeepAlives {
		out["Connection"] = []string{"keep-alive"}
	}
	if own, ok := h[HeaderOrderKey]; ok {
		lower := make([]string, len(own))
		for i, n := range own {
			lower[i] = strings.ToLower(n)
		}
		order = withConnHeaders(lower)
		placed = make(map[string]bool, len(order))
		for _, n := range order {
			placed[n] = true
		}
	}
	// fhttp sorts the names the order leaves out by their spelling, so
	// that the same request would come out in another order once its
	// names are in lower case: they are placed here, sorted by their
	// lower case, as the session's own HTTP/1.1 client places them.
	// (ft.placed holds each name of the preset's order in every spelling
	// used here, so that the common case lowercases nothing.)
	var rest []string
	for k := range out {
		if placed[k] {
			continue
		}
		if l := strings.ToLower(k); !placed[l] {
			rest = append(rest, l)
		}
	}
	if len(rest) > 0 {
		slices.Sort(rest)
		order = append(slices.Clip(order), rest...)
	}
	out[fhttp.HeaderOrderKey] = order
	return out
}

// wsShape is the preset's WebSocket handshake as header builds it.
type wsShape struct {
	ft     *fpTransport
	order  []string          // the handshake's order, lowercase
	placed map[string]bool   // each name of order in every spelling used
	spell  map[string]string // canonical key → the browser's spelling
}

func newWSShape(ft *fpTransport, ws *preset.WebSocket) *wsShape {
	s := &wsShape{ft: ft, placed: map[string]bool{}, spell: map[string]string{}}
	for _, n := range ws.HeaderOrder {
		l, k := strings.ToLower(n), http.CanonicalHeaderKey(n)
		s.order = append(s.order, l)
		s.spell[k] = n
		s.placed[l], s.placed[k], s.placed[n] = true, true, true
	}
	s.order = withConnHeaders(s.order)
	return s
}

// name is how the handshake writes the header with canonical key k: in
// the browser's spelling, but for the keys fhttp acts on, which stay
// canonical, and Accept-Encoding, in lower case as wireName has it (fhttp
// would decode a refusal's body itself, and hang on deflate).
func (s *wsShape) name(k string) string {
	if fhttpCanonical[k] {
		return k
	}
	if n, ok := s.spell[k]; ok && k != "Accept-Encoding" {
		return n
	}
	return s.ft.wireName(k)
}

// wireName is how the header with canonical key k is written by fhttp: as
// the browser spells it, and Accept-Encoding in lower case. (fhttp writes
// HTTP/2, where every name goes in lower case anyway, and HTTP/1.1 only
// for http:// through an HTTP proxy and for upgrades.)
func (ft *fpTransport) wireName(k string) string {
	if k == "Accept-Encoding" {
		// fhttp's HTTP/1.1 transport decodes every response to a request
		// whose Accept-Encoding (looked up canonically) names gzip,
		// whoever asked for it, and hangs on deflate. Under a lowercase
		// key it leaves the body alone and the session decodes what it
		// asked for; the cost is the name's case on HTTP/1.1 (HTTP/2
		// lowercases every name).
		return "accept-encoding"
	}
	if w, ok := ft.p.WireName(k); ok {
		return w
	}
	return k
}

// lowerName is the lowercase form of canonical key k, but for the keys
// that fhttp looks up by their canonical spelling (to leave them out, or to
// act on them), which keep it.
func (ft *fpTransport) lowerName(k string) string {
	if fhttpCanonical[k] {
		return k
	}
	if l, ok := ft.lower[k]; ok {
		return l
	}
	return strings.ToLower(k)
}

// fhttpCanonical holds the keys fhttp's HTTP/1.1 and HTTP/2 writers look up
// by their canonical spelling: Host and the framing headers, left out of
// the header block; Connection, Upgrade and Expect, acted on.
var fhttpCanonical = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true,
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Upgrade": true,
	"Expect": true, "Te": true,
}

// withConnHeaders puts host and connection first in an order that does not
// place them, as browsers write them over HTTP/1.1.
func withConnHeaders(order []string) []string {
	var front []string
	for _, n := range []string{"host", "connection"} {
		if !slices.Contains(order, n) {
			front = append(front, n)
		}
	}
	return append(front, order...)
}

// trailerBody copies the trailers fhttp read at the end of the body to the
// net/http response: fhttp may store them in a map of its own.
type trailerBody struct {
	io.ReadCloser
	from *fhttp.Response
	to   *http.Response
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && len(b.from.Trailer) > 0 {
		if b.to.Trailer == nil {
			b.to.Trailer = http.Header{}
		}
		for k, vv := range b.from.Trailer {
			b.to.Trailer[k] = vv
		}
	}
	return n, err
}

// tlsState is a connection state translated for Response.TLS, and the
// uTLS state it was made from.
type tlsState struct {
	from *utls.ConnectionState
	to   *tls.ConnectionState
}

// tlsState returns s translated. fhttp gives every response on a
// connection the same *utls.ConnectionState, so the latest translation is
// kept and reused while requests stay on that connection: the responses
// then share one *tls.ConnectionState, as net/http's responses on one
// connection do.
func (ft *fpTransport) tlsState(s *utls.ConnectionState) *tls.ConnectionState {
	if s == nil {
		return nil
	}
	if last := ft.lastTLS.Load(); last != nil && last.from == s {
		return last.to
	}
	t := &tlsState{from: s, to: connectionState(s)}
	ft.lastTLS.Store(t)
	return t.to
}

// connectionState translates uTLS's connection state into crypto/tls's,
// for Response.TLS.
func connectionState(s *utls.ConnectionState) *tls.ConnectionState {
	if s == nil {
		return nil
	}
	return &tls.ConnectionState{
		Version:                     s.Version,
		HandshakeComplete:           s.HandshakeComplete,
		DidResume:                   s.DidResume,
		CipherSuite:                 s.CipherSuite,
		NegotiatedProtocol:          s.NegotiatedProtocol,
		ServerName:                  s.ServerName,
		PeerCertificates:            s.PeerCertificates,
		VerifiedChains:              s.VerifiedChains,
		SignedCertificateTimestamps: s.SignedCertificateTimestamps,
		OCSPResponse:                s.OCSPResponse,
	}
}
