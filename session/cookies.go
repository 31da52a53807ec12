package session

import (
	"fmt"
	"net/url"

	"github.com/rosterhq/roster/protocol"
)

// CookieState is one cookie with all its attributes; see protocol.CookieState.
type CookieState = protocol.CookieState

// Cookies returns every unexpired cookie in the session's jar with all its
// attributes; nil if it has none or no jar.
func (s *Session) Cookies() []CookieState {
	if j := s.cookieJar(false); j != nil {
		return j.Export()
	}
	return nil
}

// SetCookies adds cookies to the session's jar, replacing those with the
// same domain, path and name. If any is invalid it adds none and says which.
// It fails without a jar (WithoutCookieJar).
func (s *Session) SetCookies(cs []CookieState) error {
	if s.noJar {
		return fmt.Errorf("session %q has no cookie jar", s.id)
	}
	s.changed()
	return s.cookieJar(true).Import(cs)
}

// ClearCookies empties the session's jar.
func (s *Session) ClearCookies() {
	if j := s.cookieJar(false); j != nil {
		s.changed()
		j.Clear()
	}
}

func (s *Session) cookieCount() int {
	if j := s.cookieJar(false); j != nil {
		return j.Len()
	}
	return 0
}

// SetProxy switches the session's proxy: an http://, https:// or socks5://
// URL, or "" for none. New connections use it; idle connections are closed
// at once and busy ones when their requests end, so no request after
// SetProxy returns goes out through the old proxy.
func (s *Session) SetProxy(proxyURL string) error {
	s.changed()
	cfg := s.Config()
	cfg.Proxy = proxyURL
	if err := cfg.Validate(); err != nil {
		return err
	}
	var u *url.URL
	if proxyURL != "" {
		var err error
		if u, err = url.Parse(proxyURL); err != nil {
			return err
		}
	}
	s.hsMu.Lock()
	defer s.hsMu.Unlock()
	if s.closed.Load() {
		return ErrSessionClosed
	}
	s.proxy.Store(u)
	if h := s.hs.Load(); h != nil {
		h.setProxy()
	}
	return nil
}
