package session

import (
	"crypto/tls"
	"fmt"
	"sync"

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
	mu    sync.Mutex
	keys  []string // insertion order, oldest first
	items map[string]*tls.ClientSessionState
}

// Get implements tls.ClientSessionCache.
func (c *ticketCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.items[key]
	return cs, ok
}

// Put implements tls.ClientSessionCache; a nil cs removes the entry.
func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = map[string]*tls.ClientSessionState{}
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
		ticket, state, err := c.items[k].ResumptionState()
		if err != nil || state == nil {
			continue
		}
		b, err := state.Bytes()
		if err != nil {
			continue
		}
		out = append(out, protocol.TLSSession{Key: k, Ticket: ticket, State: b})
	}
	return out
}

// load checks saved TLS sessions and puts them in the cache. On error the
// cache may hold some of them.
func (c *ticketCache) load(saved []protocol.TLSSession) error {
	for i, t := range saved {
		if t.Key == "" {
			return fmt.Errorf("tlsSessions[%d]: empty key", i)
		}
		state, err := tls.ParseSessionState(t.State)
		if err != nil {
			return fmt.Errorf("tlsSessions[%d] (%q): %v", i, t.Key, err)
		}
		cs, err := tls.NewResumptionState(t.Ticket, state)
		if err != nil {
			return fmt.Errorf("tlsSessions[%d] (%q): %v", i, t.Key, err)
		}
		c.Put(t.Key, cs)
	}
	return nil
}
