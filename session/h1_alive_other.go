//go:build !unix

package session

// alive cannot peek at a socket here: an idle connection counts as open,
// and a request that cannot be sent twice learns otherwise from its error.
func (c *h1Conn) alive() bool { return c.br.Buffered() == 0 }
