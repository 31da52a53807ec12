// Package protocol holds the JSON-shaped types that cross roster's API
// boundaries: the configuration of a session, as a Go caller builds it and as
// the daemon reads it from a request body.
//
// Every field has a camelCase JSON name; durations are integers of
// milliseconds so that any language can write them. The zero value of every
// field means its documented default, so an empty object (or a nil
// *SessionConfig) asks for a session with the defaults.
package protocol

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// DefaultPreset is the header preset of a session whose config names none.
const DefaultPreset = "chrome-latest"

// Limits that Validate enforces.
const (
	// MaxRedirectsLimit is the largest MaxRedirects.
	MaxRedirectsLimit = 100
	// MaxRetriesLimit is the largest MaxRetries.
	MaxRetriesLimit = 20
	// MaxHeaders is the most entries Headers may have.
	MaxHeaders = 100
	// MaxTimeoutMs is the largest Timeout, in milliseconds: one day. A
	// request that may take longer can use 0 (no timeout) and a context.
	MaxTimeoutMs = 24 * 60 * 60 * 1000
	// MaxRetryWaitMs is the largest RetryWaitMin and RetryWaitMax, in
	// milliseconds: one hour. With at most MaxRetriesLimit retries the
	// exponential backoff stays far from overflowing a time.Duration.
	MaxRetryWaitMs = 60 * 60 * 1000
	// MaxConnsPerHostLimit bounds MaxConnsPerHost and MaxIdleConnsPerHost;
	// MaxIdleConnTimeout bounds IdleConnTimeout (one day, in ms).
	MaxConnsPerHostLimit = 4096
	MaxIdleConnTimeout   = 24 * 60 * 60 * 1000
)

// Defaults of the connection pool fields of SessionConfig.
const (
	DefaultMaxIdleConnsPerHost = 128
	DefaultIdleConnTimeout     = 90 * time.Second
)

// ErrInvalidConfig is wrapped by every error Validate and Decode return.
var ErrInvalidConfig = errors.New("invalid session config")

// SessionConfig describes one session: its HTTP identity and how it makes
// requests. A nil *SessionConfig means all defaults.
type SessionConfig struct {
	// Preset names the browser header profile; empty means DefaultPreset.
	Preset string `json:"preset,omitempty"`
	// BaseURL, if set, is an absolute http or https URL that relative
	// request URLs resolve against.
	BaseURL string `json:"baseURL,omitempty"`
	// Proxy is an http://, https:// or socks5:// URL, with optional
	// user:password, that every request goes through.
	Proxy string `json:"proxy,omitempty"`
	// Timeout bounds each request, in milliseconds, at most MaxTimeoutMs;
	// 0 means none beyond the request's context.
	Timeout int `json:"timeout,omitempty"`

	// FollowRedirects turns redirect following off when explicitly false;
	// nil means true.
	FollowRedirects *bool `json:"followRedirects,omitempty"`
	// MaxRedirects is how many redirects are followed; 0 means 10.
	MaxRedirects int `json:"maxRedirects,omitempty"`

	// RetryEnabled turns on retries of failed requests whose body can be
	// replayed.
	RetryEnabled bool `json:"retryEnabled,omitempty"`
	// MaxRetries is how many times a request is retried; 0 means 3.
	MaxRetries int `json:"maxRetries,omitempty"`
	// RetryWaitMin is the shortest wait before a retry, in milliseconds, at
	// most MaxRetryWaitMs; 0 means 100.
	RetryWaitMin int `json:"retryWaitMin,omitempty"`
	// RetryWaitMax caps the jittered exponential backoff, in milliseconds,
	// at most MaxRetryWaitMs; 0 means 5000 (or RetryWaitMin, if larger).
	RetryWaitMax int `json:"retryWaitMax,omitempty"`
	// RetryOnStatus lists the response status codes that are retried; empty
	// means 429, 500, 502, 503 and 504.
	RetryOnStatus []int `json:"retryOnStatus,omitempty"`

	// InsecureSkipVerify turns off TLS certificate verification.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// CACerts holds PEM-encoded certificates trusted as roots in addition
	// to the system's.
	CACerts string `json:"caCerts,omitempty"`
	// DisableKeepAlives closes each connection after one request.
	DisableKeepAlives bool `json:"disableKeepAlives,omitempty"`
	// MaxConnsPerHost caps the connections, busy and idle, that the session
	// holds to one host; a request beyond the cap waits for one. 0 means
	// no cap.
	//
	// A browser keeps about 6 HTTP/1.1 connections per host, and a server
	// that counts them sees a session with more as something other than
	// one browser. A worker pool that drives one session from many
	// goroutines at once needs as many connections as it has requests in
	// flight, or each request waits (with a cap) or dials and closes a
	// connection of its own (with too small an idle pool). Set 6 to look
	// like one browser and accept the queueing; leave 0 for throughput.
	MaxConnsPerHost int `json:"maxConnsPerHost,omitempty"`
	// MaxIdleConnsPerHost is how many idle connections per host the
	// session keeps for reuse; 0 means DefaultMaxIdleConnsPerHost (128).
	// Below the concurrency put on the session, connections are dialled and
	// closed at every burst. An idle connection costs one file descriptor.
	MaxIdleConnsPerHost int `json:"maxIdleConnsPerHost,omitempty"`
	// IdleConnTimeout closes a connection idle this many milliseconds; 0
	// means DefaultIdleConnTimeout (90 s).
	IdleConnTimeout int `json:"idleConnTimeout,omitempty"`
	// ForceHTTP1, ForceHTTP2 and ForceHTTP3 pin the protocol; at most one
	// may be set. DisableHTTP3 keeps a session off QUIC.
	ForceHTTP1   bool `json:"forceHTTP1,omitempty"`
	ForceHTTP2   bool `json:"forceHTTP2,omitempty"`
	ForceHTTP3   bool `json:"forceHTTP3,omitempty"`
	DisableHTTP3 bool `json:"disableHTTP3,omitempty"`
	// PreferIPv4 dials IPv4 addresses before IPv6 ones.
	PreferIPv4 bool `json:"preferIPv4,omitempty"`
	// LocalAddress is the IP address outgoing connections are bound to.
	LocalAddress string `json:"localAddress,omitempty"`
	// ConnectTo maps a request's host:port to the host:port that is dialled
	// instead, keeping the request's Host and TLS server name.
	ConnectTo map[string]string `json:"connectTo,omitempty"`
	// Headers are sent with every request, over the preset's; a request's
	// own headers win over both.
	Headers map[string]string `json:"headers,omitempty"`
	// WithoutCookieJar turns the session's cookie jar off.
	WithoutCookieJar bool `json:"withoutCookieJar,omitempty"`
	// Intercept, when explicitly false, keeps this session's CONNECT
	// tunnels through rosterd plain even with interception on (-intercept):
	// https then bypasses the session's cookies, headers and TLS. nil
	// means true. Go callers of Do are not affected.
	Intercept *bool `json:"intercept,omitempty"`
}

// Pool returns the connection pool settings the config asks for, with the
// defaults filled in: the cap on connections per host (0: none), the idle
// connections kept per host, and how long an idle one is kept.
func (c *SessionConfig) Pool() (maxConnsPerHost, maxIdleConnsPerHost int, idleConnTimeout time.Duration) {
	maxIdleConnsPerHost, idleConnTimeout = DefaultMaxIdleConnsPerHost, DefaultIdleConnTimeout
	if c == nil {
		return 0, maxIdleConnsPerHost, idleConnTimeout
	}
	if c.MaxIdleConnsPerHost > 0 {
		maxIdleConnsPerHost = c.MaxIdleConnsPerHost
	}
	if c.MaxConnsPerHost > 0 {
		maxIdleConnsPerHost = min(maxIdleConnsPerHost, c.MaxConnsPerHost)
	}
	if c.IdleConnTimeout > 0 {
		idleConnTimeout = time.Duration(c.IdleConnTimeout) * time.Millisecond
	}
	return c.MaxConnsPerHost, maxIdleConnsPerHost, idleConnTimeout
}

// PresetName returns the preset the config asks for, DefaultPreset if none.
func (c *SessionConfig) PresetName() string {
	if c == nil || c.Preset == "" {
		return DefaultPreset
	}
	return c.Preset
}

// Clone returns a deep copy of c; nil stays nil.
func (c *SessionConfig) Clone() *SessionConfig {
	if c == nil {
		return nil
	}
	d := *c
	if c.FollowRedirects != nil {
		v := *c.FollowRedirects
		d.FollowRedirects = &v
	}
	if c.Intercept != nil {
		v := *c.Intercept
		d.Intercept = &v
	}
	d.RetryOnStatus = append([]int(nil), c.RetryOnStatus...)
	d.ConnectTo = cloneMap(c.ConnectTo)
	d.Headers = cloneMap(c.Headers)
	return &d
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	d := make(map[string]string, len(m))
	for k, v := range m {
		d[k] = v
	}
	return d
}

// Validate reports the first problem with c: a value out of range, a URL or
// address that does not parse, or options that contradict each other. The
// error wraps ErrInvalidConfig and names the field and the value. A nil
// config is valid. Validate does not check that the preset exists; the
// session package, which holds the presets, does.
func (c *SessionConfig) Validate() error {
	if c == nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Preset != "" && !printable(c.Preset) {
		return bad("preset %q: not a name", c.Preset)
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil {
			return bad("baseURL %q: %v", c.BaseURL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return bad("baseURL %q: want an absolute http or https URL", c.BaseURL)
		}
	}
	if c.Proxy != "" {
		u, err := url.Parse(c.Proxy)
		if err != nil {
			// url.Error repeats the URL, password and all: say less.
			return bad("proxy: not a valid URL")
		}
		switch u.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return bad("proxy %q: scheme %q is not http, https or socks5", redact(c.Proxy), u.Scheme)
		}
		if u.Host == "" {
			return bad("proxy %q: no host", redact(c.Proxy))
		}
	}
	if c.Timeout < 0 {
		return bad("timeout %d ms: must not be negative", c.Timeout)
	}
	if c.Timeout > MaxTimeoutMs {
		return bad("timeout %d ms: want 0 to %d ms (one day)", c.Timeout, MaxTimeoutMs)
	}
	if c.MaxRedirects < 0 || c.MaxRedirects > MaxRedirectsLimit {
		return bad("maxRedirects %d: want 0 to %d", c.MaxRedirects, MaxRedirectsLimit)
	}
	if c.FollowRedirects != nil && !*c.FollowRedirects && c.MaxRedirects > 0 {
		return bad("maxRedirects %d with followRedirects false: redirects are off", c.MaxRedirects)
	}
	if c.MaxRetries < 0 || c.MaxRetries > MaxRetriesLimit {
		return bad("maxRetries %d: want 0 to %d", c.MaxRetries, MaxRetriesLimit)
	}
	if c.RetryWaitMin < 0 || c.RetryWaitMin > MaxRetryWaitMs {
		return bad("retryWaitMin %d ms: want 0 to %d ms (one hour)", c.RetryWaitMin, MaxRetryWaitMs)
	}
	if c.RetryWaitMax < 0 || c.RetryWaitMax > MaxRetryWaitMs {
		return bad("retryWaitMax %d ms: want 0 to %d ms (one hour)", c.RetryWaitMax, MaxRetryWaitMs)
	}
	if c.RetryWaitMax > 0 && c.RetryWaitMin > c.RetryWaitMax {
		return bad("retryWaitMin %d is above retryWaitMax %d", c.RetryWaitMin, c.RetryWaitMax)
	}
	for _, code := range c.RetryOnStatus {
		if code < 100 || code > 599 {
			return bad("retryOnStatus: %d is not an HTTP status code", code)
		}
	}
	if !c.RetryEnabled && (c.MaxRetries > 0 || len(c.RetryOnStatus) > 0 || c.RetryWaitMin > 0 || c.RetryWaitMax > 0) {
		return bad("maxRetries, retryOnStatus or retryWait set with retryEnabled false")
	}
	if c.MaxConnsPerHost < 0 || c.MaxConnsPerHost > MaxConnsPerHostLimit {
		return bad("maxConnsPerHost %d: want 0 to %d", c.MaxConnsPerHost, MaxConnsPerHostLimit)
	}
	if c.MaxIdleConnsPerHost < 0 || c.MaxIdleConnsPerHost > MaxConnsPerHostLimit {
		return bad("maxIdleConnsPerHost %d: want 0 to %d", c.MaxIdleConnsPerHost, MaxConnsPerHostLimit)
	}
	if c.MaxConnsPerHost > 0 && c.MaxIdleConnsPerHost > c.MaxConnsPerHost {
		return bad("maxIdleConnsPerHost %d is above maxConnsPerHost %d", c.MaxIdleConnsPerHost, c.MaxConnsPerHost)
	}
	if c.IdleConnTimeout < 0 || c.IdleConnTimeout > MaxIdleConnTimeout {
		return bad("idleConnTimeout %d ms: want 0 to %d (one day)", c.IdleConnTimeout, MaxIdleConnTimeout)
	}
	if c.DisableKeepAlives && (c.MaxIdleConnsPerHost > 0 || c.IdleConnTimeout > 0) {
		return bad("maxIdleConnsPerHost or idleConnTimeout with disableKeepAlives: no connection is kept")
	}
	forced := 0
	for _, f := range []bool{c.ForceHTTP1, c.ForceHTTP2, c.ForceHTTP3} {
		if f {
			forced++
		}
	}
	if forced > 1 {
		return bad("more than one of forceHTTP1, forceHTTP2, forceHTTP3 is set")
	}
	if c.ForceHTTP3 && c.DisableHTTP3 {
		return bad("forceHTTP3 and disableHTTP3 are both set")
	}
	if c.ForceHTTP3 && c.Proxy != "" {
		return bad("forceHTTP3 with a proxy: HTTP/3 does not go through proxies")
	}
	if c.CACerts != "" {
		if _, err := ParseCACerts(c.CACerts); err != nil {
			return bad("caCerts: %v", err)
		}
	}
	if c.LocalAddress != "" && net.ParseIP(c.LocalAddress) == nil {
		return bad("localAddress %q: not an IP address", c.LocalAddress)
	}
	for from, to := range c.ConnectTo {
		for _, hp := range []string{from, to} {
			if err := checkHostPort(hp); err != nil {
				return bad("connectTo %q: %v", hp, err)
			}
		}
	}
	if len(c.Headers) > MaxHeaders {
		return bad("%d headers: at most %d", len(c.Headers), MaxHeaders)
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			return bad("header name %q: not a valid HTTP token", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return bad("header %q: value contains CR, LF or NUL", k)
		}
	}
	return nil
}

// Decode reads one SessionConfig from JSON and validates it. Empty input, or
// the JSON value null, means all defaults (a nil config). Unknown fields,
// field names in another case ("Timeout" for "timeout"), duplicate keys,
// trailing data and invalid values are errors that wrap ErrInvalidConfig.
func Decode(data []byte) (*SessionConfig, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	if err := checkStrict(data, reflect.TypeFor[SessionConfig]()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c SessionConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidConfig)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseCACerts parses PEM-encoded certificates. It fails if the text holds
// no certificate, or a CERTIFICATE block that does not parse.
func ParseCACerts(pemText string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(pemText)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	if host == "" || !printable(host) {
		return errors.New("bad host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// redact hides a proxy URL's password in error messages.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparseable)"
}
