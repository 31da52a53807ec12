package session

import (
	"context"
	"net/http"
)

// noRedirectsKey marks a request context under which redirects are not
// followed.
type noRedirectsKey struct{}

// WithoutRedirects returns a context under which Do, and the session's
// Client, return a redirect response (3xx) as it is rather than follow it,
// whatever the session's FollowRedirects says. The cookies the response
// sets are still stored in the session's jar. rosterd's proxy uses it, so
// that its clients see the redirects, as a forward proxy's clients must.
func WithoutRedirects(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRedirectsKey{}, true)
}

// perRequestRedirects wraps a CheckRedirect policy so that a request made
// under WithoutRedirects stops at its first response.
func perRequestRedirects(policy func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if req.Context().Value(noRedirectsKey{}) != nil {
			return http.ErrUseLastResponse
		}
		return policy(req, via)
	}
}
