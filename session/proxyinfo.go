package session

import (
	"context"
	"net/http"
	"net/url"
)

// ProxyURL returns the session's current upstream proxy, as set by its
// config or SetProxy, or nil for none. The caller must not change it. It
// costs one atomic load.
func (s *Session) ProxyURL() *url.URL { return s.proxy.Load() }

// connectHeaderKey carries extra header fields for the CONNECT request that
// Dial sends to an HTTP proxy.
type connectHeaderKey struct{}

// WithConnectHeader returns a context under which Session.Dial, when the
// session's proxy is an http:// or https:// one, adds the fields of h to
// the CONNECT request it sends to that proxy. rosterd uses it to send a
// Via field, so that a chain of proxies leading back to it is detected.
func WithConnectHeader(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, connectHeaderKey{}, h)
}

func connectHeader(ctx context.Context) http.Header {
	h, _ := ctx.Value(connectHeaderKey{}).(http.Header)
	return h
}
