// Package cookies is the cookie jar of a roster session: an in-memory
// http.CookieJar with the semantics of RFC 6265 section 5 that, unlike
// net/http/cookiejar, keeps every attribute of every cookie and can export
// them all (as protocol.CookieState values) and import them again, so that a
// session's identity can be saved, moved and restored.
//
// What the jar does, beyond net/http/cookiejar:
//   - A Secure cookie is neither sent over nor accepted from plain http, and a
//     non-Secure cookie from plain http that would shadow a Secure one is
//     ignored (RFC 6265bis "leave secure cookies alone"). Loopback hosts
//     (localhost, *.localhost, 127.0.0.0/8, ::1) count as secure, as in
//     browsers.
//   - Cookie names starting with "__Secure-" or "__Host-" (any case) must
//     meet the RFC 6265bis prefix rules.
//   - Max-Age and Expires are capped at 400 days from now, as RFC 6265bis and
//     browsers do.
//   - HttpOnly and SameSite are kept (and exported), though a jar, which sees
//     only HTTP requests and no site context, never acts on them.
//   - The path a cookie is matched against is the URL's escaped path, as
//     sent on the wire.
//   - The jar is bounded as browsers bound theirs, so that no server (and no
//     restored state) can make every later request too large to send: a
//     cookie whose name and value exceed 4096 bytes is ignored, as is a
//     Domain or Path attribute over 1024 bytes (RFC 6265bis section 5.7);
//     a site (a registrable domain, such as example.co.uk, with its
//     subdomains) keeps at most MaxCookiesPerSite cookies and the jar at
//     most MaxCookies, evicting the least recently used, as Chromium does.
//
// A Jar allocates nothing until its first cookie: an idle session's empty jar
// is a single small object.
package cookies

import (
	"cmp"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/rosterhq/roster/protocol"
)

// The jar's bounds. When a site holds more than MaxCookiesPerSite cookies,
// its expired and then its least recently used (sent or set) cookies are
// evicted until SitePurgeTo remain; when the jar holds more than MaxCookies,
// the same happens across all sites until PurgeTo remain. These are
// Chromium's numbers, bar its 3300 total, which is rounded down here.
// Evictions happen at the end of each SetCookies and Import call, so a
// response or a restore with too many cookies keeps the most recently used
// ones.
const (
	MaxCookiesPerSite = 180
	SitePurgeTo       = 150
	MaxCookies        = 3000
	PurgeTo           = 2700
)

// MaxAge is the longest a cookie set through SetCookies lives: a larger
// Max-Age, or a later Expires, is cut to it (RFC 6265bis sections 5.6.1
// and 5.6.2), as browsers do.
const MaxAge = 400 * 24 * time.Hour

// Options configures a Jar; a nil *Options means all defaults.
type Options struct {
	// PublicSuffixList tells which domains are public suffixes, for which
	// no domain cookie may be set; nil means publicsuffix.List.
	PublicSuffixList cookiejar.PublicSuffixList
	// Now is the jar's clock; nil means time.Now.
	Now func() time.Time
}

// Jar is an RFC 6265 cookie jar that implements http.CookieJar and keeps
// every attribute of its cookies. It is safe for concurrent use. The zero Jar
// is empty and ready to use, with the defaults of New(nil).
type Jar struct {
	psl cookiejar.PublicSuffixList
	now func() time.Time

	mu sync.Mutex
	// byDomain holds the cookies under their Domain, then path and name;
	// nil until the first cookie.
	byDomain map[string]map[pathName]*entry
	sites    map[string]int // cookies held per site, expired ones included
	n        int            // cookies held, expired ones included
	last     time.Time      // the latest Created handed out
	seq      uint64         // the next entry's sequence number
}

type pathName struct{ path, name string }

// entry is one stored cookie. seq breaks ties of Created, in the order the
// cookies entered the jar.
type entry struct {
	protocol.CookieState
	seq  uint64
	site string // the registrable domain of Domain; see siteOf
}

func (e *entry) expired(now time.Time) bool {
	return !e.Expires.IsZero() && !e.Expires.After(now)
}

// New returns an empty Jar configured by o; New(nil) uses the defaults.
func New(o *Options) *Jar {
	j := &Jar{}
	if o != nil {
		j.psl = o.PublicSuffixList
		j.now = o.Now
	}
	return j
}

func (j *Jar) clock() time.Time {
	now := time.Now
	if j.now != nil {
		now = j.now
	}
	return now().Round(0).UTC()
}

func (j *Jar) publicSuffixList() cookiejar.PublicSuffixList {
	if j.psl == nil {
		return publicsuffix.List
	}
	return j.psl
}

// SetCookies stores the cookies of a response from u, following RFC 6265
// section 5.3; cookies the RFC says to ignore are dropped without a word. It
// does nothing unless u is an http or https URL with a host.
func (j *Jar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if u == nil || len(cookies) == 0 {
		return
	}
	https, ok := httpScheme(u.Scheme)
	if !ok {
		return
	}
	host, ok := canonicalHost(u.Hostname())
	if !ok {
		return
	}
	secure := https || isLoopback(host)
	defPath := defaultPath(u.EscapedPath())
	now := j.clock()

	j.mu.Lock()
	defer j.mu.Unlock()
	var over []string // sites past their bound
	for _, c := range cookies {
		if c != nil {
			if site := j.setLocked(c, host, defPath, secure, now); site != "" && j.sites[site] == MaxCookiesPerSite+1 {
				over = append(over, site)
			}
		}
	}
	j.boundLocked(over, now)
}

// setLocked stores (or deletes, or ignores) one cookie received from host.
// It returns the cookie's site if it stored a new cookie, "" otherwise.
func (j *Jar) setLocked(c *http.Cookie, host, defPath string, secureOrigin bool, now time.Time) string {
	if c.Secure && !secureOrigin {
		return "" // RFC 6265bis section 5.7: no Secure cookie from plain http
	}
	if strings.ContainsRune(c.Value, '"') {
		return "" // net/http would drop the DQUOTEs; Quoted says whether there were any
	}
	// RFC 6265bis section 5.7: a name and value over 4096 bytes drop the
	// cookie (Validate below sees to it); an attribute over 1024 bytes is
	// ignored.
	attrDomain, path := c.Domain, c.Path
	if len(attrDomain) > protocol.MaxCookieAttributeSize {
		attrDomain = ""
	}
	if len(path) > protocol.MaxCookieAttributeSize {
		path = ""
	}
	domain, hostOnly, ok := j.domainAndType(host, attrDomain)
	if !ok {
		return ""
	}
	if path == "" || path[0] != '/' || !printable(path) {
		path = defPath
	}
	if !prefixOK(c, hostOnly) {
		return ""
	}

	e := entry{CookieState: protocol.CookieState{
		Name:       c.Name,
		Value:      c.Value,
		Domain:     domain,
		Path:       path,
		HostOnly:   hostOnly,
		Secure:     c.Secure,
		HttpOnly:   c.HttpOnly,
		SameSite:   sameSite(c.SameSite),
		LastAccess: now,
	}}
	if c.Quoted {
		e.Value = `"` + c.Value + `"`
	}
	remove := false
	switch {
	case c.MaxAge < 0:
		remove = true
	case c.MaxAge > 0:
		if c.MaxAge > int(MaxAge/time.Second) {
			e.Expires = now.Add(MaxAge)
		} else {
			e.Expires = now.Add(time.Duration(c.MaxAge) * time.Second)
		}
	case !c.Expires.IsZero():
		if !c.Expires.After(now) {
			remove = true
		} else {
			e.Expires = c.Expires.Round(0).UTC()
			if limit := now.Add(MaxAge); e.Expires.After(limit) {
				e.Expires = limit
			}
		}
	}
	e.Created = now // for Validate; the real one comes below
	if e.Validate() != nil {
		return ""
	}
	if !c.Secure && !secureOrigin && j.shadowsSecureLocked(&e, now) {
		return "" // RFC 6265bis section 5.7: leave secure cookies alone
	}

	k := pathName{path, c.Name}
	b := j.byDomain[domain]
	old := b[k]
	if remove {
		if old != nil {
			j.deleteLocked(b, domain, k)
		}
		return ""
	}
	if old != nil && !old.expired(now) {
		e.Created, e.seq, e.site = old.Created, old.seq, old.site
		*old = e // in place: an overwrite allocates nothing
		return ""
	}
	e.Created = j.nextCreatedLocked(now)
	e.seq = j.seq
	j.seq++
	if old != nil {
		e.site = old.site
		*old = e
		return ""
	}
	e.site = j.siteOf(domain)
	stored := new(entry)
	*stored = e
	j.putLocked(b, stored)
	return e.site
}

// putLocked stores e, replacing the cookie with its domain, path and name;
// b is the bucket of e.Domain, nil if there is none yet.
func (j *Jar) putLocked(b map[pathName]*entry, e *entry) {
	if b == nil {
		if j.byDomain == nil {
			j.byDomain = make(map[string]map[pathName]*entry)
		}
		b = make(map[pathName]*entry)
		j.byDomain[e.Domain] = b
	}
	k := pathName{e.Path, e.Name}
	if b[k] == nil {
		j.n++
		if j.sites == nil {
			j.sites = make(map[string]int)
		}
		j.sites[e.site]++
	}
	b[k] = e
}

func (j *Jar) deleteLocked(b map[pathName]*entry, domain string, k pathName) {
	if e := b[k]; e != nil {
		if j.sites[e.site]--; j.sites[e.site] <= 0 {
			delete(j.sites, e.site)
		}
	}
	delete(b, k)
	j.n--
	if len(b) == 0 {
		delete(j.byDomain, domain)
	}
}

// siteOf returns the registrable domain (eTLD+1) of a cookie domain: the
// public suffix and one label more, or domain itself if it is an IP
// address, a public suffix or has no suffix to speak of.
func (j *Jar) siteOf(domain string) string {
	if isIP(domain) {
		return domain
	}
	ps := j.publicSuffixList().PublicSuffix(domain)
	if ps == "" || len(ps) >= len(domain) || !hasDotSuffix(domain, ps) {
		return domain
	}
	rest := domain[:len(domain)-len(ps)-1]
	return domain[strings.LastIndexByte(rest, '.')+1:]
}

// boundLocked enforces the jar's bounds: first for the sites in over (some
// may repeat, or be back under), then for the whole jar.
func (j *Jar) boundLocked(over []string, now time.Time) {
	for _, site := range over {
		if j.sites[site] <= MaxCookiesPerSite {
			continue
		}
		var victims []*entry
		for d, b := range j.byDomain {
			if d == site || hasDotSuffix(d, site) {
				for _, e := range b {
					if e.site == site {
						victims = append(victims, e)
					}
				}
			}
		}
		j.evictLocked(victims, len(victims)-SitePurgeTo, now)
	}
	if j.n > MaxCookies {
		var all []*entry
		for _, b := range j.byDomain {
			for _, e := range b {
				all = append(all, e)
			}
		}
		j.evictLocked(all, len(all)-PurgeTo, now)
	}
}

// evictLocked deletes the n least recently used of es, expired ones first.
func (j *Jar) evictLocked(es []*entry, n int, now time.Time) {
	if n <= 0 {
		return
	}
	slices.SortFunc(es, func(a, b *entry) int {
		ae, be := a.expired(now), b.expired(now)
		switch {
		case ae && !be:
			return -1
		case be && !ae:
			return 1
		}
		if c := a.LastAccess.Compare(b.LastAccess); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for _, e := range es[:n] {
		j.deleteLocked(j.byDomain[e.Domain], e.Domain, pathName{e.Path, e.Name})
	}
}

// nextCreatedLocked returns the creation time of a new cookie: now, or just
// after the last one handed out, so that creation times are unique and the
// order of the Cookie header survives Export and Import.
func (j *Jar) nextCreatedLocked(now time.Time) time.Time {
	if !now.After(j.last) {
		now = j.last.Add(time.Nanosecond)
	}
	j.last = now
	return now
}

// shadowsSecureLocked reports whether the jar holds an unexpired Secure
// cookie named like e whose domain domain-matches e's (or the reverse) and
// whose path e's path path-matches.
func (j *Jar) shadowsSecureLocked(e *entry, now time.Time) bool {
	for d, b := range j.byDomain {
		if d != e.Domain && !hasDotSuffix(d, e.Domain) && !hasDotSuffix(e.Domain, d) {
			continue
		}
		for _, old := range b {
			if old.Secure && old.Name == e.Name && !old.expired(now) && pathMatch(e.Path, old.Path) {
				return true
			}
		}
	}
	return false
}

// prefixOK applies the cookie name prefixes of RFC 6265bis section 4.1.3:
// "__Secure-" needs Secure, "__Host-" needs Secure, no Domain attribute and
// Path=/. Both match in any case.
func prefixOK(c *http.Cookie, hostOnly bool) bool {
	switch {
	case hasPrefixFold(c.Name, "__Secure-"):
		return c.Secure
	case hasPrefixFold(c.Name, "__Host-"):
		return c.Secure && hostOnly && c.Domain == "" && c.Path == "/"
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Cookies returns the cookies to send in a request to u, following RFC 6265
// section 5.4: longer paths first, then earlier creation. Each has only Name,
// Value and Quoted set. It records the access in their LastAccess and drops
// expired cookies it comes across. It returns nil unless u is an http or
// https URL with a host.
func (j *Jar) Cookies(u *url.URL) []*http.Cookie {
	if u == nil {
		return nil
	}
	https, ok := httpScheme(u.Scheme)
	if !ok {
		return nil
	}
	host, ok := canonicalHost(u.Hostname())
	if !ok {
		return nil
	}
	secure := https || isLoopback(host)
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	ip := isIP(host)
	now := j.clock()

	j.mu.Lock()
	var buf [32]*entry
	selected := buf[:0]
	if j.n > 0 {
		// The cookies for host are under host and its parent domains.
		for d := host; ; {
			if b := j.byDomain[d]; b != nil {
				for k, e := range b {
					if e.expired(now) {
						j.deleteLocked(b, d, k)
						continue
					}
					if e.HostOnly && d != host || e.Secure && !secure || !pathMatch(path, e.Path) {
						continue
					}
					e.LastAccess = now
					selected = append(selected, e)
				}
			}
			i := strings.IndexByte(d, '.')
			if ip || i < 0 {
				break
			}
			d = d[i+1:]
		}
	}
	if len(selected) == 0 {
		j.mu.Unlock()
		return nil
	}
	slices.SortFunc(selected, func(a, b *entry) int {
		if c := cmp.Compare(len(b.Path), len(a.Path)); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	cs := make([]http.Cookie, len(selected))
	out := make([]*http.Cookie, len(selected))
	for i, e := range selected {
		v, quoted := e.Value, false
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v, quoted = v[1:len(v)-1], true
		}
		cs[i] = http.Cookie{Name: e.Name, Value: v, Quoted: quoted}
		out[i] = &cs[i]
	}
	j.mu.Unlock()
	return out
}

// Export returns every unexpired cookie with all its attributes, ordered by
// domain, path and name. Created is unique within a jar, so Import of the
// result into an empty jar gives a jar that sends the same cookies in the
// same order.
func (j *Jar) Export() []protocol.CookieState {
	now := j.clock()
	j.mu.Lock()
	j.purgeLocked(now)
	out := make([]protocol.CookieState, 0, j.n)
	for _, b := range j.byDomain {
		for _, e := range b {
			out = append(out, e.CookieState)
		}
	}
	j.mu.Unlock()
	slices.SortFunc(out, func(a, b protocol.CookieState) int {
		return cmp.Or(
			strings.Compare(a.Domain, b.Domain),
			strings.Compare(a.Path, b.Path),
			strings.Compare(a.Name, b.Name))
	})
	return out
}

// Import adds cs to the jar, replacing the cookies with the same domain, path
// and name, and skips those already expired. Past the jar's bounds it keeps
// the most recently used (by LastAccess), as SetCookies does, so a restore
// of more cookies than a browser would hold leaves a usable jar. It checks them all first: if
// one fails protocol.CookieState.Validate, or is a domain cookie (not
// HostOnly) for a public suffix or an IP address, which no jar would have
// stored, Import imports nothing and returns an error that names it and
// wraps protocol.ErrInvalidCookie. A zero Created or LastAccess means now.
func (j *Jar) Import(cs []protocol.CookieState) error {
	for i, c := range cs {
		err := c.Validate()
		if err == nil && !c.HostOnly && (isIP(c.Domain) || j.isPublicSuffix(c.Domain)) {
			err = fmt.Errorf("%w: domain %q: only a host-only cookie may be set for a public suffix or an IP address",
				protocol.ErrInvalidCookie, c.Domain)
		}
		if err != nil {
			return fmt.Errorf("cookies: import of cookie %d (%q, domain %q, path %q): %w", i, c.Name, c.Domain, c.Path, err)
		}
	}
	now := j.clock()
	j.mu.Lock()
	defer j.mu.Unlock()
	var over []string
	defer func() { j.boundLocked(over, now) }()
	for _, c := range cs {
		e := &entry{CookieState: c, seq: j.seq, site: j.siteOf(c.Domain)}
		e.Expires = utc(c.Expires)
		if e.expired(now) {
			continue
		}
		e.Created, e.LastAccess = utc(c.Created), utc(c.LastAccess)
		if e.Created.IsZero() {
			e.Created = now
		}
		if e.LastAccess.IsZero() {
			e.LastAccess = now
		}
		// New cookies come after imported ones, unless these are from the future.
		if e.Created.After(j.last) && !e.Created.After(now) {
			j.last = e.Created
		}
		j.seq++
		j.putLocked(j.byDomain[e.Domain], e)
		if j.sites[e.site] == MaxCookiesPerSite+1 {
			over = append(over, e.site)
		}
	}
	return nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// Clear removes every cookie, session cookies included.
func (j *Jar) Clear() {
	j.mu.Lock()
	j.byDomain, j.sites, j.n = nil, nil, 0
	j.mu.Unlock()
}

// Len returns the number of unexpired cookies in the jar.
func (j *Jar) Len() int {
	now := j.clock()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.purgeLocked(now)
	return j.n
}

// purgeLocked drops every expired cookie.
func (j *Jar) purgeLocked(now time.Time) {
	for d, b := range j.byDomain {
		for k, e := range b {
			if e.expired(now) {
				j.deleteLocked(b, d, k)
			}
		}
	}
}

// domainAndType returns the domain and host-only flag of a cookie with the
// Domain attribute attr received from host (RFC 6265 section 5.3 steps 4 to
// 6), and false if the cookie must be ignored.
func (j *Jar) domainAndType(host, attr string) (domain string, hostOnly, ok bool) {
	if attr == "" {
		return host, true, true
	}
	if isIP(host) {
		// An IP address has no subdomains: Domain may only repeat it, and
		// the cookie is host-only, as in browsers.
		return host, true, strings.EqualFold(attr, host)
	}
	attr = strings.TrimPrefix(attr, ".") // RFC 6265 section 5.2.3
	if attr == "" || attr[0] == '.' || attr[len(attr)-1] == '.' {
		return "", false, false
	}
	domain, ok = canonicalHost(attr)
	if !ok {
		return "", false, false
	}
	if j.isPublicSuffix(domain) {
		if domain == host {
			return host, true, true // the one domain cookie that is host-only
		}
		return "", false, false
	}
	if domain != host && !hasDotSuffix(host, domain) {
		return "", false, false // www.a.com may not set cookies for b.com
	}
	return domain, false, true
}

// isPublicSuffix reports whether domain is a public suffix ("com", "co.uk").
func (j *Jar) isPublicSuffix(domain string) bool {
	ps := j.publicSuffixList().PublicSuffix(domain)
	return ps != "" && !hasDotSuffix(domain, ps)
}

// httpScheme reports whether scheme is https (first) or http (second).
func httpScheme(scheme string) (https, ok bool) {
	switch {
	case strings.EqualFold(scheme, "https"):
		return true, true
	case strings.EqualFold(scheme, "http"):
		return false, true
	}
	return false, false
}

// canonicalHost returns host as RFC 6265 section 5.1.2 canonicalizes it:
// lower case, non-ASCII labels as Punycode A-labels, one trailing dot
// removed. It reports false for a host no cookie can belong to.
func canonicalHost(host string) (string, bool) {
	host = strings.TrimSuffix(host, ".")
	if host == "" || host[0] == '.' || !utf8.ValidString(host) {
		return "", false
	}
	host = strings.ToLower(host)
	if !isASCII(host) {
		a, err := toASCII(host)
		if err != nil {
			return "", false
		}
		host = a
	}
	for i := 0; i < len(host); i++ {
		if !domainByte(host[i]) {
			return "", false
		}
	}
	return host, host != "" && host[0] != '.'
}

// domainByte is the byte set protocol.CookieState.Validate allows in Domain.
func domainByte(b byte) bool {
	return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || strings.IndexByte("-._:%", b) >= 0
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isIP reports whether host is an IP address. Anything with a colon or a
// percent sign counts: no host name has one, and treating it as an address
// (host-only, no parent domains) is the safe side.
func isIP(host string) bool {
	if strings.ContainsAny(host, ":%") {
		return true
	}
	for i := 0; i < len(host); i++ {
		if (host[i] < '0' || host[i] > '9') && host[i] != '.' {
			return false // a name; net.ParseIP would allocate to say so
		}
	}
	return net.ParseIP(host) != nil
}

// isLoopback reports whether host is localhost or a loopback address, which
// browsers treat as a secure origin.
func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if !isIP(host) {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// hasDotSuffix reports whether s ends in "."+suffix.
func hasDotSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && s[len(s)-len(suffix)-1] == '.' && s[len(s)-len(suffix):] == suffix
}

// defaultPath returns the default-path of RFC 6265 section 5.1.4 for a
// request path: its directory, without the trailing slash.
func defaultPath(path string) string {
	if path == "" || path[0] != '/' {
		return "/"
	}
	i := strings.LastIndexByte(path, '/')
	if i == 0 {
		return "/"
	}
	return path[:i]
}

// pathMatch reports whether reqPath path-matches cookiePath (RFC 6265
// section 5.1.4).
func pathMatch(reqPath, cookiePath string) bool {
	if !strings.HasPrefix(reqPath, cookiePath) {
		return false
	}
	return len(reqPath) == len(cookiePath) ||
		cookiePath[len(cookiePath)-1] == '/' ||
		reqPath[len(cookiePath)] == '/'
}

func sameSite(s http.SameSite) string {
	switch s {
	case http.SameSiteStrictMode:
		return protocol.SameSiteStrict
	case http.SameSiteLaxMode:
		return protocol.SameSiteLax
	case http.SameSiteNoneMode:
		return protocol.SameSiteNone
	}
	return ""
}
