package session

import (
	"crypto/tls"
	"fmt"
	"sync"

	utls "github.com/bogdanfinn/utls"
	"github.com/rosterhq/roster/protocol"
)

// maxTickets bounds the TLS sessions a session keeps: one per server it
// talks to, the oldest dropped first.
const maxTickets = 64

// ticketCache is the session's tls.ClientSessionCache. Unlike
// tls.NewLRUClientSessionCache it can export its entries and import them
// again, so that a restored session resumes TLS where the saved one left
// off.
type ticketCache struct {
	mu   sync.Mutex
	keys []string // insertion order, oldest first
	// items holds *tls.ClientSessionState for Go's stack and
	// *utls.ClientSessionState for a fingerprinted preset; a session uses
	// one kind, so a lookup of the other kind is a miss.
	items map[string]any
}

// Get implements tls.ClientSessionCache.
func (c *ticketCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.items[key].(*tls.ClientSessionState)
	return cs, ok
}

// Put implements tls.ClientSessionCache; a nil cs removes the entry.
func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	if cs == nil {
		c.put(key, nil)
		return
	}
	c.put(key, cs)
}

// utlsTickets is the same cache as a utls.ClientSessionCache, for the
// fingerprinted transport.
type utlsTickets ticketCache

// Get implements utls.ClientSessionCache.
func (u *utlsTickets) Get(key string) (*utls.ClientSessionState, bool) {
	c := (*ticketCache)(u)
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.items[key].(*utls.ClientSessionState)
	return cs, ok
}

// Put implements utls.ClientSessionCache; a nil cs removes the entry.
func (u *utlsTickets) Put(key string, cs *utls.ClientSessionState) {
	if cs == nil {
		(*ticketCache)(u).put(key, nil)
		return
	}
	(*ticketCache)(u).put(key, cs)
}

// put stores cs (nil removes the entry), dropping the oldest entry when
// the cache is full.
func (c *ticketCache) put(key string, cs any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[string]any{}
	}
	if _, ok := c.items[key]; ok {
		for i, k := range c.keys {
			if k == key {
				c.keys = append(c.keys[:i], c.keys[i+1:]...)
				break
			}
		}
		delete(c.items, key)
	}
	if cs == nil {
		return
	}
	if len(c.keys) >= maxTickets {
		delete(c.items, c.keys[0])
		c.keys = c.keys[1:]
	}
	c.keys = append(c.keys, key)
	c.items[key] = cs
}

// export returns the cache's entries, oldest first. Entries that cannot be
// serialised are skipped: resumption is an optimisation.
func (c *ticketCache) export() []protocol.TLSSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.TLSSession
	for _, k := range c.keys {
		var (
			ticket, b []byte
			err       error
		)
		switch cs := c.items[k].(type) {
		case *tls.ClientSessionState:
			var state *tls.SessionState
			if ticket, state, err = cs.ResumptionState(); err == nil && state != nil {
				b, err = state.Bytes()
			}
		case *utls.ClientSessionState:
			var state *utls.SessionState
			if ticket, state, err = cs.ResumptionState(); err == nil && state != nil {
				b, err = state.Bytes()
			}
		}
		if err != nil || b == nil {
			continue
		}
		out = append(out, protocol.TLSSession{Key: k, Ticket: ticket, State: b})
	}
	return out
}

// load checks saved TLS sessions and puts them in the cache, as uTLS
// sessions for a fingerprinted preset (fp) and crypto/tls ones otherwise.
// On error the cache may hold some of them.
func (c *ticketCache) load(saved []protocol.TLSSession, fp bool) error {
	for i, t := range saved {
		if t.Key == "" {
			return fmt.Errorf("tlsSessions[%d]: empty key", i)
		}
		var (
			cs  any
			err error
		)
		if fp {
			var state *utls.SessionState
			if state, err = utls.ParseSessionState(t.State); err == nil {
				cs, err = utls.NewResumptionState(t.Ticket, state)
			}
		} else {
			var state *tls.SessionState
			if state, err = tls.ParseSessionState(t.State); err == nil {
				cs, err = tls.NewResumptionState(t.Ticket, state)
			}
		}
		if err != nil {
			return fmt.Errorf("tlsSessions[%d] (%q): %v", i, t.Key, err)
		}
		c.put(t.Key, cs)
	}
	return nil
}
