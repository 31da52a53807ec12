package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rosterhq/roster/codec"
	"github.com/rosterhq/roster/protocol"
)

// Do sends req as this session: with its connections, cookies, proxy,
// preset and config headers (the request's own headers win), redirects and
// retries. A relative URL resolves against the config's BaseURL. The
// session's Timeout bounds the request unless req's context ends sooner.
//
// The request counts as in flight, and keeps the session from idle
// eviction, until the response body is closed or read to EOF: close it.
// Closing the session cancels the request; the error, from Do or from
// reading the body, then matches ErrSessionClosed. On a closed session Do
// fails at once with ErrSessionClosed.
//
// A request with an Upgrade header (a WebSocket) goes over HTTP/1.1, on a
// connection of its own; its 101 response's body is the connection, an
// io.ReadWriteCloser, as net/http gives it, in flight until closed and
// closed with the session. Under a session Timeout the body is
// http.Client's, which is not writable and ends at the deadline, as with
// net/http: leave Timeout unset for WebSockets.
func (s *Session) Do(req *http.Request) (*http.Response, error) {
	h, err := s.http()
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	if req.URL != nil && !req.URL.IsAbs() && h.baseURL != nil {
		r := new(http.Request)
		*r = *req
		r.URL = h.baseURL.ResolveReference(req.URL)
		req = r
	}
	if h.client.Timeout == 0 && req.Context().Value(noRedirectsKey{}) != nil {
		return h.doOnce(req)
	}
	return h.client.Do(req)
}

// doOnce is Do for a request that follows no redirect (WithoutRedirects)
// and has no session Timeout: what http.Client does for it, cookies from
// and to the jar and errors as *url.Error, without the redirect
// machinery's copies of the request, header and URL. rosterd's proxy path
// is such a request.
func (h *httpState) doOnce(req *http.Request) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		closeRequestBody(req)
		ue := &url.Error{Op: urlErrorOp(req.Method), Err: err}
		if req.URL != nil {
			ue.URL = urlWithoutPassword(req.URL)
		}
		return nil, ue
	}
	switch {
	case req.URL == nil:
		return fail(errors.New("http: nil Request.URL"))
	case req.RequestURI != "":
		return fail(errors.New("http: Request.RequestURI can't be set in client requests"))
	}
	// The caller's request is not changed: what is added goes on a copy.
	out := req
	own := func() {
		if out == req {
			out = shallowCopy(req)
			out.Header = req.Header.Clone()
			if out.Header == nil {
				out.Header = http.Header{}
			}
		}
	}
	if req.Header == nil {
		own()
	}
	if u := req.URL.User; u != nil && req.Header.Get("Authorization") == "" {
		own()
		pass, _ := u.Password()
		out.SetBasicAuth(u.Username(), pass)
	}
	if jar := h.client.Jar; jar != nil {
		if cs := jar.Cookies(req.URL); len(cs) > 0 {
			own()
			for _, c := range cs {
				out.AddCookie(c)
			}
		}
	}
	resp, err := h.client.Transport.RoundTrip(out)
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		// As http.Client: an https request answered in plain HTTP.
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: urlWithoutPassword(req.URL), Err: err}
	}
	if jar := h.client.Jar; jar != nil {
		if rc := resp.Cookies(); len(rc) > 0 {
			jar.SetCookies(req.URL, rc)
		}
	}
	return resp, nil
}

func shallowCopy(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	return r
}

// urlErrorOp is the Op of a *url.Error for method, as http.Client writes
// it: "Get", "Post".
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// urlWithoutPassword is u as http.Client names it in errors: any password
// replaced by ***.
func urlWithoutPassword(u *url.URL) string {
	if _, has := u.User.Password(); has {
		return strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1)
	}
	return u.String()
}

// Get sends a GET request for url; see Do.
func (s *Session) Get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return s.Do(req)
}

// Post sends a POST request with the given content type and body; see Do.
// A body of type *bytes.Buffer, *bytes.Reader or *strings.Reader can be
// replayed, so such a request may be retried.
func (s *Session) Post(ctx context.Context, url, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return s.Do(req)
}

// Client returns an *http.Client that is this session, for libraries that
// take one: its requests count, refresh and close exactly like those of Do,
// through the session's own transport and cookie jar. Each call returns a
// new Client, so a library that changes its Timeout or CheckRedirect
// changes only its own. It does not resolve relative URLs (http.Client
// cannot). On a closed session its requests fail with ErrSessionClosed.
func (s *Session) Client() *http.Client {
	h, err := s.http()
	if err != nil {
		return &http.Client{Transport: closedTransport{}}
	}
	c := *h.client
	return &c
}

type closedTransport struct{}

func (closedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeRequestBody(req)
	return nil, ErrSessionClosed
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// roundTripper is the session's http.RoundTripper, under both Do and
// Client: it counts the request in flight, ties it to the session's life,
// adds the preset and config headers, retries, picks HTTP/3 or TCP, and
// decodes the content codings the preset asked for.
type roundTripper struct{ h *httpState }

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	h := rt.h
	s := h.s
	if err := s.beginRequest(); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	// The request ends when the session closes. A request whose context
	// is the background one (no deadline, no values: http.NewRequest,
	// Get with context.Background()) takes the session's own context as
	// is; one that the session's own HTTP/1.1 client carries keeps its
	// context, as that client aborts its connections itself when the
	// session closes; any other gets a child that the session's close
	// cancels, which costs a context and a registration with the session.
	ctx := h.closed
	done := func() {
		s.endRequest()
		h.afterRequest()
	}
	tr := h.tcp.Load().tcpTransport
	if h.abortsOnClose(tr, req) {
		ctx = req.Context()
	} else if req.Context() != context.Background() {
		c, cancel := context.WithCancelCause(req.Context())
		stop := context.AfterFunc(h.closed, func() { cancel(ErrSessionClosed) })
		ctx = c
		done = func() {
			stop()
			cancel(nil)
			s.endRequest()
			h.afterRequest()
		}
	}

	out := req.WithContext(ctx)
	if !s.preset.Fingerprinted() {
		defaults := h.defaultsFor(req.URL)
		if h.ws != nil && strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
			defaults = h.webSocketDefaultsFor(req.URL)
		}
		out.Header = defaults.Clone()
		for k, vv := range req.Header {
			out.Header[http.CanonicalHeaderKey(k)] = vv
		}
		delete(out.Header, HeaderOrderKey) // net/http would refuse the name
	}
	// A fingerprinted transport merges the defaults under the request's
	// headers as it builds fhttp's header, so out keeps req's (shared, not
	// changed): one copy of the headers, not two.
	decode := req.Header.Get("Accept-Encoding") == "" && h.defaults.Get("Accept-Encoding") != "" && req.Method != http.MethodHead

	resp, err := h.send(ctx, out, tr)
	if err != nil {
		done()
		return nil, closedErr(ctx, err)
	}
	h.noteAltSvc(out.URL, resp)
	if decode && resp.StatusCode != http.StatusSwitchingProtocols {
		decodeBody(resp)
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		done()
		return resp, nil
	}
	tb := &trackedBody{rc: resp.Body, ctx: ctx, done: done}
	if w, ok := resp.Body.(io.Writer); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection after a protocol switch (a WebSocket): writable,
		// as net/http gives it, and in flight until closed. The transport
		// let go of it with the 101: the session's close closes it here.
		stop := context.AfterFunc(h.closed, func() { _ = tb.rc.Close() })
		done := tb.done
		tb.done = func() { stop(); done() }
		resp.Body = &switchedBody{trackedBody: tb, w: w}
		return resp, nil
	}
	resp.Body = tb
	return resp, nil
}

// switchedBody is the body of a 101 response: the connection, an
// io.ReadWriteCloser.
type switchedBody struct {
	*trackedBody
	w io.Writer
}

func (b *switchedBody) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	return n, closedErr(b.ctx, err)
}

// abortsOnClose reports whether req goes over tr to a client that ends it
// itself when the session closes: the fingerprinted session's own HTTP/1.1
// one. Not with retries, whose later attempts may find another transport
// (SetProxy) that does not.
func (h *httpState) abortsOnClose(tr tcpTransport, req *http.Request) bool {
	ft, ok := tr.(*fpTransport)
	return ok && !h.retry.enabled && ft.ownHTTP1(req)
}

// closedErr makes an error caused by the session closing match
// ErrSessionClosed.
func closedErr(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), ErrSessionClosed) && !errors.Is(err, ErrSessionClosed) {
		return fmt.Errorf("%w: %w", ErrSessionClosed, err)
	}
	return err
}

// send makes the request, retrying as the config says: the first attempt
// over tr, later ones over the session's transport of the moment.
func (h *httpState) send(ctx context.Context, req *http.Request, tr tcpTransport) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			tr = h.tcp.Load().tcpTransport
		}
		resp, err := h.sendOnce(req, tr)
		wait, retry := h.retry.next(attempt, req, resp, err)
		if !retry || ctx.Err() != nil {
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			_ = resp.Body.Close()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-h.closed.Done(): // ctx may be the request's own: see RoundTrip
			t.Stop()
			return nil, context.Cause(h.closed)
		}
		r := new(http.Request)
		*r = *req
		if req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		req = r
	}
}

// sendOnce makes one attempt over HTTP/3 or TCP. An HTTP/3 attempt that an
// Alt-Svc advertisement led to falls back to TCP if it fails.
func (h *httpState) sendOnce(req *http.Request, tr tcpTransport) (*http.Response, error) {
	// An upgrade (a WebSocket) needs HTTP/1.1, over TCP.
	if _, upgrade := req.Header["Upgrade"]; upgrade && !h.s.config.ForceHTTP3 || !h.useHTTP3(req.URL) {
		return tr.RoundTrip(req)
	}
	resp, err := h.http3().RoundTrip(req)
	if err == nil || req.Context().Err() != nil || h.s.config.ForceHTTP3 {
		return resp, err
	}
	h.markHTTP3Broken(req.URL)
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, err
		}
		r := new(http.Request)
		*r = *req
		if r.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
		req = r
	}
	return tr.RoundTrip(req)
}

// decodeBody replaces a coded body by its decoding, as net/http does for
// gzip when it asked for it itself. An unknown coding is left as it is.
func decodeBody(resp *http.Response) {
	ce := resp.Header.Get("Content-Encoding")
	if ce == "" || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	rc, err := codec.NewReader(ce, resp.Body)
	if err != nil {
		return
	}
	resp.Body = rc
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
}

// trackedBody ends the request's in-flight count when the body is closed or
// read to EOF, and makes errors caused by the session closing match
// ErrSessionClosed.
type trackedBody struct {
	rc   io.ReadCloser
	ctx  context.Context
	done func()
	once sync.Once
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.once.Do(b.done)
	} else if err != nil {
		err = closedErr(b.ctx, err)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.done)
	return err
}

// retryPolicy decides whether and when to retry.
type retryPolicy struct {
	enabled  bool
	max      int
	min, cap time.Duration
	status   map[int]bool
}

func newRetryPolicy(cfg *protocol.SessionConfig) retryPolicy {
	p := retryPolicy{enabled: cfg.RetryEnabled, max: cfg.MaxRetries, min: ms(cfg.RetryWaitMin), cap: ms(cfg.RetryWaitMax)}
	if p.max == 0 {
		p.max = 3
	}
	if p.min == 0 {
		p.min = 100 * time.Millisecond
	}
	if p.cap == 0 {
		p.cap = 5 * time.Second
	}
	p.cap = max(p.cap, p.min)
	codes := cfg.RetryOnStatus
	if len(codes) == 0 {
		codes = []int{429, 500, 502, 503, 504}
	}
	p.status = make(map[int]bool, len(codes))
	for _, c := range codes {
		p.status[c] = true
	}
	return p
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// next reports whether the attempt-th try (from 0) should be retried, and
// after how long: jittered exponential backoff between min and cap, or the
// response's Retry-After if it asks for longer. Only requests whose body
// can be replayed are retried.
func (p *retryPolicy) next(attempt int, req *http.Request, resp *http.Response, err error) (time.Duration, bool) {
	if !p.enabled || attempt >= p.max {
		return 0, false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return 0, false
	}
	switch {
	case err != nil:
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, false
		}
	case p.status[resp.StatusCode]:
	default:
		return 0, false
	}
	// Full jitter: uniform in [min, min * 2^attempt], capped.
	hi := min(p.min<<min(attempt, 30), p.cap)
	wait := p.min + rand.N(hi-p.min+1)
	if resp != nil {
		if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok && ra > wait {
			wait = ra
		}
	}
	return wait, true
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
