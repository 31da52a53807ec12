package session

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	utls "github.com/bogdanfinn/utls"
	"golang.org/x/net/http/httpguts"
)

// h1Transport is a fingerprinted session's HTTP/1.1 client: for http://
// targets reached directly or through SOCKS5, the path a forward proxy
// such as rosterd puts most requests on, and for https targets whose
// server picks http/1.1 in ALPN (over fpTransport.dialTLS, the browser's
// handshake). http:// targets through an HTTP proxy, HTTP/2 and upgrades
// go through fhttp.
//
// It exists because fhttp's HTTP/1.1 client is the costliest part of a
// proxied request: its ordered header writer lowercases both names at
// every comparison of its sort (about 60 allocations a request) under a
// process-wide lock, each connection runs two goroutines that every
// request crosses, and it decodes gzip it did not ask for, which forced
// accept-encoding into lower case where the browser writes
// Accept-Encoding. Here the caller's goroutine writes the request and
// reads the response head, headers go out in the preset's order and the
// browser's spelling from a precomputed rank, and the body is written
// alongside the read only when there is one.
//
// Its pool follows the session's MaxConnsPerHost, MaxIdleConnsPerHost and
// IdleConnTimeout, as net/http's does, and it keeps net/http's rules where
// a user would notice: requests are checked before they are written, a
// request is sent twice only if net/http would send it twice, and the
// session's close ends its requests (abortAll), so that plain http://
// requests need no context of their own for it.
type h1Transport struct {
	ft          *fpTransport
	maxConns    int // per host; 0: no limit
	maxIdle     int // per host
	idleTimeout time.Duration
	keepAlive   bool
	now         func() time.Time // time.Now but in tests

	// rank places a header, by canonical key, in the preset's order.
	rank map[string]int

	// dials counts connections dialled, for tests.
	dials atomic.Int64

	// unwatch ends the watch on the session's close (see detach).
	unwatch func() bool

	mu     sync.Mutex
	hosts  map[h1Key]*h1Host
	busy   map[*h1Conn]struct{} // carrying a request
	closed bool                 // the session closed: no more requests
}

func newH1Transport(ft *fpTransport, maxConns, maxIdle int, idleTimeout time.Duration, keepAlive bool) *h1Transport {
	t := &h1Transport{
		ft: ft, maxConns: maxConns, maxIdle: maxIdle, idleTimeout: idleTimeout, keepAlive: keepAlive,
		now:   time.Now,
		rank:  make(map[string]int, len(ft.order)),
		hosts: make(map[h1Key]*h1Host),
		busy:  make(map[*h1Conn]struct{}),
	}
	// Requests keep their own contexts (see roundTripper.RoundTrip): the
	// session's close ends them here, at one registration per session
	// rather than a context and a registration per request.
	t.unwatch = context.AfterFunc(ft.h.closed, t.abortAll)
	for i, n := range ft.order {
		k := http.CanonicalHeaderKey(n)
		if _, ok := t.rank[k]; !ok {
			t.rank[k] = i
		}
	}
	return t
}

// h1Key names a pool: one host:port, over TLS or not.
type h1Key struct {
	addr string
	tls  bool
}

func h1KeyOf(u *url.URL) h1Key { return h1Key{canonicalAddr(u), u.Scheme == "https"} }

// spokeHTTP1 reports whether a connection of the pool of key has carried
// a request to its end, so that the server speaks HTTP/1.1 there, while the
// pool holds connections.
func (t *h1Transport) spokeHTTP1(key h1Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	hp := t.hosts[key]
	return hp != nil && hp.spoke
}

// h1Host is the pool of one host:port, over TLS or not.
type h1Host struct {
	key  h1Key
	idle []*h1Conn // oldest first; reuse takes the newest
	open int       // connections open, idle or busy
	// wait holds requests waiting under MaxConnsPerHost, first first. A
	// waiter receives a connection, or nil: a free slot to dial into.
	wait  []chan *h1Conn
	timer *time.Timer // closes idle connections past the timeout
	armed bool        // timer is set to fire
	spoke bool        // a connection carried a request to its end (put)
	toH2  bool        // a connection that picked h2 is being handed over
}

// h1Conn is one connection.
type h1Conn struct {
	host   *h1Host
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool // it has carried a request before this one

	// For https: the connection's TLS state, translated once for every
	// response on it, as net/http's responses on one connection share one.
	tls   *utls.Conn
	state *tls.ConnectionState

	// For alive, made on the first look: the socket, the peek, its answer.
	raw   syscall.RawConn
	peek  func(fd uintptr) bool
	quiet bool
}

// errStale marks a failure on a reused connection before any byte of the
// response came: the server had closed it while it was idle.
var errStale = errors.New("session: idle connection closed by the server")

// errPickedH2 is roundTrip's error when the server of an https request
// picked h2 in ALPN on the connection dialled for it: req (the request, or
// the copy a replay made) was not sent, and its body is untouched. The
// caller sends it over HTTP/2 on conn, then calls wake; or, with conn and
// wake nil, the request waited while another one's connection picked h2,
// and goes over that one.
type errPickedH2 struct {
	conn net.Conn
	req  *http.Request
	wake func()
}

func (e *errPickedH2) Error() string { return "session: the server picked h2" }

// checkNow is check, and the request's context not ended yet; on an error
// the request's body is closed.
func (t *h1Transport) checkNow(req *http.Request) (string, error) {
	ruri, err := t.check(req)
	if err == nil && req.Context().Err() != nil {
		err = context.Cause(req.Context())
	}
	if err != nil {
		closeRequestBody(req)
		return "", err
	}
	return ruri, nil
}

// roundTrip sends req, which passed checkNow (ruri its request-target), to
// an http:// target or an https one, over a pooled connection or a new
// one. A request that fails on a connection the server had closed while
// idle is sent once more on a new one if it can be replayed. If the server
// of an https request picks h2 on the new connection, roundTrip returns
// *errPickedH2.
func (t *h1Transport) roundTrip(req *http.Request, key h1Key, ruri string) (*http.Response, error) {
	ctx := req.Context()
	replay := replayable(req)
	for {
		c, err := t.get(ctx, key)
		if picked := (*errPickedH2)(nil); errors.As(err, &picked) {
			picked.req = req // the body goes over HTTP/2
			return nil, err
		}
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		if c.reused && !c.alive() {
			// net/http notices what a server did to an idle connection
			// (closed it, or answered 408 and closed) before reusing it,
			// as its read loop sits on it; this client looks, at one
			// system call. Closes that land after the look are what the
			// errStale replay is for.
			t.discard(c)
			continue
		}
		resp, err := t.exchange(ctx, c, req, ruri)
		if err == nil {
			return resp, nil
		}
		if !errors.Is(err, errStale) || !replay {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			r := new(http.Request)
			*r = *req
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
			req = r
		}
	}
}

// replayable reports whether req may be sent again when the connection it
// was written on turns out to have been closed by the server, as net/http
// decides: an idempotent method or an Idempotency-Key, and a body that is
// absent or can be had again. The server may have acted on the first copy.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := req.Header["X-Idempotency-Key"]
	return ok
}

// host returns the pool of key, making it. Called with t.mu held.
func (t *h1Transport) host(key h1Key) *h1Host {
	hp := t.hosts[key]
	if hp == nil {
		hp = &h1Host{key: key}
		t.hosts[key] = hp
	}
	return hp
}

// newConn wraps a connection that joins hp's pool busy. Called with t.mu
// held.
func (t *h1Transport) newConn(hp *h1Host, nc net.Conn) *h1Conn {
	c := &h1Conn{host: hp, nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
	c.tls, _ = nc.(*utls.Conn)
	t.busy[c] = struct{}{}
	return c
}

// get returns an idle connection to key, or dials one, waiting for a free
// slot first under MaxConnsPerHost.
func (t *h1Transport) get(ctx context.Context, key h1Key) (*h1Conn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, context.Cause(t.ft.h.closed)
	}
	hp := t.host(key)
	if n := len(hp.idle); n > 0 {
		c := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		t.busy[c] = struct{}{}
		t.mu.Unlock()
		c.reused = true
		return c, nil
	}
	// Under the limit, or while a connection that picked h2 is being
	// handed to fhttp (see toH2), a request waits.
	if t.maxConns > 0 && hp.open >= t.maxConns || hp.toH2 {
		ch := make(chan *h1Conn, 1)
		hp.wait = append(hp.wait, ch)
		t.mu.Unlock()
		var done <-chan struct{} // the request's end, or the session's
		select {
		case c := <-ch:
			if c == useH2 {
				return nil, &errPickedH2{}
			}
			if c != nil {
				c.reused = true
				return c, nil // still busy: put handed it over
			}
			// A slot, already counted in hp.open: dial into it.
		case <-ctx.Done():
			done = ctx.Done()
		case <-t.ft.h.closed.Done():
			done = t.ft.h.closed.Done()
		}
		if done != nil {
			t.mu.Lock()
			if i := slices.Index(hp.wait, ch); i >= 0 {
				hp.wait = slices.Delete(hp.wait, i, i+1)
				t.mu.Unlock()
			} else {
				// Handed something as the context ended: pass it on.
				t.mu.Unlock()
				switch c := <-ch; c {
				case useH2: // nothing held
				case nil:
					t.release(hp)
				default:
					t.put(c)
				}
			}
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, context.Cause(t.ft.h.closed)
		}
	} else {
		hp.open++
		t.mu.Unlock()
	}
	// A dial is rare enough to afford the context that the session's
	// close cancels.
	dctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(t.ft.h.closed, func() { cancel(context.Cause(t.ft.h.closed)) })
	var nc net.Conn
	var err error
	if key.tls {
		nc, err = t.ft.dialTLS(dctx, "tcp", key.addr)
	} else {
		nc, err = t.ft.h.dialThrough(dctx, "tcp", key.addr)
	}
	stop()
	cancel(nil)
	if err != nil {
		t.release(hp)
		if errors.Is(context.Cause(dctx), ErrSessionClosed) {
			return nil, fmt.Errorf("%w: %w", ErrSessionClosed, err)
		}
		return nil, err
	}
	if key.tls && negotiated(nc) == "h2" {
		return nil, &errPickedH2{conn: nc, wake: t.toHTTP2(hp)}
	}
	t.dials.Add(1)
	t.mu.Lock()
	c := t.newConn(hp, nc)
	closed := t.closed
	t.mu.Unlock()
	if closed {
		t.discard(c)
		return nil, context.Cause(t.ft.h.closed)
	}
	return c, nil
}

// abortAll ends every request in flight, by failing its connection's I/O,
// and refuses new ones: the session closed.
func (t *h1Transport) abortAll() {
	t.mu.Lock()
	t.closed = true
	for c := range t.busy {
		_ = c.nc.SetDeadline(time.Unix(1, 0))
	}
	t.mu.Unlock()
	t.closeIdle()
}

// detach lets a transport that SetProxy retired, and that carries no
// request any more, be collected: it stops watching the session's close.
func (t *h1Transport) detach() { t.unwatch() }

// sessionErr is the error of a request that the session's close ended, or
// nil.
func (t *h1Transport) sessionErr() error {
	if t.ft.h.closed.Err() != nil {
		return context.Cause(t.ft.h.closed)
	}
	return nil
}

// put returns a connection that finished its exchange cleanly: to a
// waiter, to the idle list, or closed if the list is full.
func (t *h1Transport) put(c *h1Conn) {
	hp := c.host
	t.mu.Lock()
	hp.spoke = true
	if t.closed {
		t.mu.Unlock()
		t.discard(c)
		return
	}
	if len(hp.wait) > 0 {
		ch := hp.wait[0]
		hp.wait = slices.Delete(hp.wait, 0, 1)
		t.mu.Unlock()
		ch <- c
		return
	}
	if !t.keepAlive || len(hp.idle) >= t.maxIdle {
		t.mu.Unlock()
		t.discard(c)
		return
	}
	delete(t.busy, c)
	c.idleAt = t.now()
	hp.idle = append(hp.idle, c)
	// The timer is armed once and re-armed by expire, not reset here:
	// resetting the earliest timer on every request wakes a thread that
	// sleeps in the network poller, which cost more than the request.
	if !hp.armed {
		hp.armed = true
		if hp.timer == nil {
			hp.timer = time.AfterFunc(t.idleTimeout, func() { t.expire(hp) })
		} else {
			hp.timer.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
}

// discard closes a connection that cannot carry another request and frees
// its slot.
func (t *h1Transport) discard(c *h1Conn) {
	_ = c.nc.Close()
	t.mu.Lock()
	delete(t.busy, c)
	t.mu.Unlock()
	t.release(c.host)
}

// useH2 is what a waiter receives, instead of a connection or a slot, when
// a connection dialled for its host picked h2: fhttp's HTTP/2 carries it.
var useH2 = new(h1Conn)

// toHTTP2 frees the slot of a connection that picked h2 and is going to
// fhttp. Until the returned func is called (the hand-over done), requests
// to hp wait, so that they do not dial; then they all go to HTTP/2.
func (t *h1Transport) toHTTP2(hp *h1Host) (wake func()) {
	t.mu.Lock()
	hp.open--
	hp.toH2 = true
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		waiting := hp.wait
		hp.wait = nil
		hp.toH2 = false
		t.forgetIfEmpty(hp)
		t.mu.Unlock()
		for _, ch := range waiting {
			ch <- useH2
		}
	}
}

// release frees one connection slot of hp: a waiter gets it, or the count
// drops, and an empty host leaves the map.
func (t *h1Transport) release(hp *h1Host) {
	t.mu.Lock()
	if len(hp.wait) > 0 {
		ch := hp.wait[0]
		hp.wait = slices.Delete(hp.wait, 0, 1)
		t.mu.Unlock()
		ch <- nil
		return
	}
	hp.open--
	t.forgetIfEmpty(hp)
	t.mu.Unlock()
}

// forgetIfEmpty drops hp from the map once it holds nothing, so that a
// session that visits many hosts does not keep one entry for each. Called
// with t.mu held.
func (t *h1Transport) forgetIfEmpty(hp *h1Host) {
	if hp.open == 0 && len(hp.wait) == 0 && !hp.toH2 && t.hosts[hp.key] == hp {
		delete(t.hosts, hp.key)
		if hp.timer != nil {
			hp.timer.Stop()
		}
	}
}

// expire closes hp's connections idle for the timeout or longer, and sets
// the timer for the next to expire.
func (t *h1Transport) expire(hp *h1Host) {
	t.mu.Lock()
	now := t.now()
	n := 0
	for n < len(hp.idle) && now.Sub(hp.idle[n].idleAt) >= t.idleTimeout {
		n++
	}
	stale := slices.Clone(hp.idle[:n])
	hp.idle = slices.Delete(hp.idle, 0, n)
	hp.open -= n
	hp.armed = len(hp.idle) > 0
	if hp.armed {
		hp.timer.Reset(t.idleTimeout - now.Sub(hp.idle[0].idleAt))
	}
	t.forgetIfEmpty(hp)
	t.mu.Unlock()
	for _, c := range stale {
		_ = c.nc.Close()
	}
}

// closeIdle closes every idle connection.
func (t *h1Transport) closeIdle() {
	t.mu.Lock()
	var idle []*h1Conn
	for _, hp := range t.hosts {
		idle = append(idle, hp.idle...)
		hp.open -= len(hp.idle)
		hp.idle = nil
		t.forgetIfEmpty(hp)
	}
	t.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

// exchange writes req on c and reads the response head. The body streams
// from the connection, which goes back to the pool at its end.
func (t *h1Transport) exchange(ctx context.Context, c *h1Conn, req *http.Request, ruri string) (*http.Response, error) {
	// The context ends the exchange by failing the connection's I/O. The
	// session's own context needs no registration: abortAll does that.
	stop := func() bool { return t.sessionErr() == nil }
	if ctx != t.ft.h.closed {
		stop = context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	}
	var wrote chan error // the body's write, alongside the read
	// fail ends a failed exchange; early says no byte of the response came.
	fail := func(err error, early bool) (*http.Response, error) {
		if wrote != nil {
			// The body's write closes the connection when it fails: its
			// error is then the cause of the read's.
			if errors.Is(err, net.ErrClosed) {
				err = <-wrote
			} else {
				select {
				case werr := <-wrote:
					if werr != nil {
						err = werr
					}
				default:
				}
			}
		}
		stop()
		t.discard(c)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if serr := t.sessionErr(); serr != nil {
			return nil, fmt.Errorf("%w: %w", serr, err)
		}
		if early {
			err = t.staleIf(c, err)
		}
		return nil, err
	}
	if ctx.Err() != nil { // ended before the registration: nothing sent
		closeRequestBody(req)
		return fail(ctx.Err(), false)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := hasBody && req.ContentLength <= 0
	closeAfter := !t.keepAlive || req.Close || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
	if err := t.writeHead(c.bw, req, ruri, hasBody, chunked, closeAfter); err != nil {
		closeRequestBody(req)
		return fail(err, true)
	}
	if hasBody {
		wrote = make(chan error, 1)
		go func() {
			err := writeBody(c.bw, req, chunked)
			if err != nil {
				_ = c.nc.Close() // fails the read below, as the server may wait for the rest
			}
			wrote <- err
		}()
	} else if err := c.bw.Flush(); err != nil {
		return fail(err, true)
	}

	// A failed exchange closes the connection, which ends the body's
	// write (if any) at its next write; it is not waited for, as it may
	// be waiting for the caller's body to deliver.
	if _, err := c.br.Peek(1); err != nil {
		return fail(err, true)
	}
	resp, err := http.ReadResponse(c.br, req)
	// Interim responses (100 Continue, 103 Early Hints) precede the one;
	// as many as net/http reads, so that a server cannot keep the request
	// reading them.
	for n := 0; err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols; n++ {
		if n == max1xx {
			err = errors.New("session: too many 1xx informational responses")
			break
		}
		resp, err = http.ReadResponse(c.br, req)
	}
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		err = errors.New("session: unexpected 101 Switching Protocols")
	}
	if err != nil {
		return fail(err, false)
	}
	if c.tls != nil {
		if c.state == nil {
			s := c.tls.ConnectionState()
			c.state = connectionState(&s)
		}
		resp.TLS = c.state
	}
	b := &h1Body{t: t, c: c, rc: resp.Body, ctx: ctx, stop: stop, wrote: wrote, reuse: !resp.Close && !closeAfter}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// max1xx is how many interim responses a request reads, as net/http.
const max1xx = 5

// staleIf turns err into errStale if c was reused and nothing of the
// response came: the server closed the connection while it sat idle.
func (t *h1Transport) staleIf(c *h1Conn, err error) error {
	if c.reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return err
}

// errBadHeader is the error of a request that cannot be written.
var errBadHeader = errors.New("session: invalid request")

// check refuses a request that cannot be written as it is, before it takes
// a connection, as net/http does: a bad method, host, request-target
// (a space or control character would end the request line early), header
// name or value, or a ContentLength without a body. It returns the
// request-target. fpTransport.RoundTrip runs it for every request, so that
// fhttp's routes refuse alike.
func (t *h1Transport) check(req *http.Request) (string, error) {
	if !validMethod(req.Method) {
		return "", fmt.Errorf("%w: method %q", errBadHeader, req.Method)
	}
	if _, err := hostHeader(req); err != nil {
		return "", err
	}
	ruri := req.URL.RequestURI()
	if strings.IndexFunc(ruri, isCTLOrSpace) >= 0 {
		return "", fmt.Errorf("%w: space or control character in the request target %q", errBadHeader, ruri)
	}
	for _, h := range []http.Header{req.Header, req.Trailer} {
		for k, vv := range h {
			if k == HeaderOrderKey {
				continue
			}
			if !httpguts.ValidHeaderFieldName(k) {
				return "", fmt.Errorf("%w: header name %q", errBadHeader, k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					return "", fmt.Errorf("%w: value of header %s", errBadHeader, k)
				}
			}
		}
	}
	if req.ContentLength > 0 && (req.Body == nil || req.Body == http.NoBody) {
		return "", fmt.Errorf("%w: Request.ContentLength=%d with nil Body", errBadHeader, req.ContentLength)
	}
	return ruri, nil
}

// hostHeader is req's Host header: Request.Host or the URL's, an
// internationalised name in its ASCII (punycode) form, as net/http writes it.
func hostHeader(req *http.Request) (string, error) {
	host := req.Host
	if host == "" || host == req.URL.Host { // NewRequest copies it
		host, _ = asciiAuthority(req.URL) // in lower case, as the browser and fhttp write it
	}
	h, err := httpguts.PunycodeHostPort(host)
	if err != nil || !httpguts.ValidHostHeader(h) {
		return "", fmt.Errorf("%w: host %q", errBadHeader, host)
	}
	return h, nil
}

// isCTLOrSpace reports a rune the request-target may not hold. url.Parse
// keeps a space in the query as it is; written out, it would end the
// request-target early. net/http writes it anyway and the server answers
// 400; a browser would have escaped it, so refusing says what is wrong.
func isCTLOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

// h1Field is one header field to write.
type h1Field struct {
	rank int
	name string // as written
	vv   []string
}

// writeHead writes the request line and header: the request's headers
// over the session's defaults, each name as the browser spells it, in the
// preset's order (or the request's HeaderOrderKey); names the order does
// not place follow, sorted.
// The request must have passed check, whose request-target ruri is.
func (t *h1Transport) writeHead(w *bufio.Writer, req *http.Request, ruri string, hasBody, chunked, closeAfter bool) error {
	host, _ := hostHeader(req)
	own := ownOrder(req.Header)
	var buf [32]h1Field
	fields := buf[:0]
	add := func(k string, vv []string) {
		name := k
		if w, ok := t.ft.p.WireName(k); ok {
			name = w
		}
		fields = append(fields, h1Field{t.rankOf(own, k), name, vv})
	}
	hostVal := [1]string{host}
	add("Host", hostVal[:])
	for k, vv := range req.Header {
		if k == HeaderOrderKey {
			continue
		}
		switch k = http.CanonicalHeaderKey(k); k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // from the request's fields
		}
		add(k, vv)
	}
	defaults := t.ft.h.defaultsFor(req.URL)
	for k, vv := range defaults {
		// Headers the browser sends over HTTP/2 only are left out.
		if _, ok := req.Header[k]; ok || t.ft.http2Only[k] {
			continue
		}
		if !canonicalIn(req.Header, k) {
			add(k, vv)
		}
	}
	if !canonicalIn(req.Header, "Connection") {
		if closeAfter {
			add("Connection", connClose)
		} else if _, ok := defaults["Connection"]; !ok {
			add("Connection", connKeepAlive)
		}
	}
	var lenVal [1]string
	switch {
	case chunked:
		add("Transfer-Encoding", teChunked)
		if len(req.Trailer) > 0 {
			names := make([]string, 0, len(req.Trailer))
			for k := range req.Trailer {
				names = append(names, k)
			}
			slices.Sort(names)
			add("Trailer", []string{strings.Join(names, ",")})
		}
	case hasBody || req.ContentLength > 0 || methodWantsBody(req.Method):
		lenVal[0] = strconv.FormatInt(max(req.ContentLength, 0), 10)
		add("Content-Length", lenVal[:])
	}
	slices.SortFunc(fields, func(a, b h1Field) int {
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		return compareFold(a.name, b.name)
	})

	_, _ = w.WriteString(req.Method)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(ruri)
	_, _ = w.WriteString(" HTTP/1.1\r\n")
	for _, f := range fields {
		for _, v := range f.vv {
			_, _ = w.WriteString(f.name)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(textproto.TrimString(v))
			_, err := w.WriteString("\r\n")
			if err != nil {
				return err
			}
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

var (
	connClose     = []string{"close"}
	connKeepAlive = []string{"keep-alive"}
	teChunked     = []string{"chunked"}
)

// ownOrder returns the request's own order (HeaderOrderKey, lowercase
// names, host and connection first unless it places them), or nil.
func ownOrder(h http.Header) []string {
	own, ok := h[HeaderOrderKey]
	if !ok {
		return nil
	}
	order := make([]string, len(own))
	for i, n := range own {
		order[i] = strings.ToLower(n)
	}
	return withConnHeaders(order)
}

// rankOf is where the header with canonical key k goes: its place in own
// if not nil, else in the preset's order; after them all if not placed.
func (t *h1Transport) rankOf(own []string, k string) int {
	if own == nil {
		if r, ok := t.rank[k]; ok {
			return r
		}
		return len(t.ft.order)
	}
	for i, n := range own {
		if strings.EqualFold(n, k) {
			return i
		}
	}
	return len(own)
}

// compareFold compares ASCII strings as their lower case would compare:
// names an order leaves out are sorted so, whatever their spelling, on
// HTTP/1.1 and on HTTP/2 alike (see fpTransport.header).
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := lowerASCII(a[i]), lowerASCII(b[i])
		if ca != cb {
			return cmp.Compare(ca, cb)
		}
	}
	return cmp.Compare(len(a), len(b))
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// canonicalIn reports whether h has key k under any spelling.
func canonicalIn(h http.Header, k string) bool {
	if _, ok := h[k]; ok {
		return true
	}
	for n := range h {
		if strings.EqualFold(n, k) {
			return true
		}
	}
	return false
}

func validMethod(m string) bool {
	return m != "" && strings.IndexFunc(m, func(r rune) bool { return !httpguts.IsTokenRune(r) }) < 0
}

// methodWantsBody reports whether a bodiless request with method m still
// says Content-Length: 0, as browsers and net/http do.
func methodWantsBody(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// writeBody writes req's body (and its trailers, if chunked) and flushes.
// The body is closed either way, as a RoundTripper must.
func writeBody(w *bufio.Writer, req *http.Request, chunked bool) error {
	defer closeRequestBody(req)
	// The head goes first, on its own: a server may answer, or wait for
	// more, on seeing it, and a body may come slowly. With the buffer
	// empty, a sized body is copied straight to the connection.
	if err := w.Flush(); err != nil {
		return err
	}
	if !chunked {
		n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
		if err == nil && n != req.ContentLength {
			err = fmt.Errorf("session: request body has %d bytes, ContentLength says %d", n, req.ContentLength)
		}
		if err != nil {
			return err
		}
		return w.Flush()
	}
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(flushEach{cw, w}, req.Body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil { // the last chunk, 0\r\n
		return err
	}
	if err := req.Trailer.Write(w); err != nil {
		return err
	}
	if _, err := w.WriteString("\r\n"); err != nil {
		return err
	}
	return w.Flush()
}

// flushEach writes each chunk through to the connection as it comes.
type flushEach struct {
	io.Writer
	buf *bufio.Writer
}

func (f flushEach) Write(p []byte) (int, error) {
	n, err := f.Writer.Write(p)
	if err == nil {
		err = f.buf.Flush()
	}
	return n, err
}

// h1Body is a response body: at its end the connection goes back to the
// pool, or is closed if it cannot carry another request.
type h1Body struct {
	t     *h1Transport
	c     *h1Conn
	rc    io.ReadCloser
	ctx   context.Context
	stop  func() bool
	wrote chan error // nil if the request had no body
	reuse bool

	mu   sync.Mutex
	done bool
	err  error // after done: what Read returns
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	done, derr := b.done, b.err
	b.mu.Unlock()
	if done {
		return 0, derr
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		} else if serr := b.t.sessionErr(); serr != nil {
			err = fmt.Errorf("%w: %w", serr, err)
		}
		b.finish(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

// finish ends the exchange once: the connection is reused only after the
// whole body was read, the request's body was written, and neither side
// asked to close.
func (b *h1Body) finish(eof bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.err = http.ErrBodyReadAfterClose
	if eof {
		b.err = io.EOF
	}
	b.mu.Unlock()
	stopped := b.stop() // false once the context fired: the deadline is set
	reuse := eof && b.reuse && stopped
	if reuse && b.wrote != nil {
		// The server answered, usually after reading the whole body, but
		// the write may not have reported yet: wait a little, as net/http
		// does, before giving up on the connection.
		select {
		case err := <-b.wrote:
			reuse = err == nil
		default:
			timer := time.NewTimer(50 * time.Millisecond)
			select {
			case err := <-b.wrote:
				reuse = err == nil
			case <-timer.C:
				reuse = false
			}
			timer.Stop()
		}
	}
	if reuse {
		b.t.put(b.c)
	} else {
		b.t.discard(b.c)
	}
}
