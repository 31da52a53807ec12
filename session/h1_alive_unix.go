//go:build unix

package session

import (
	"errors"
	"syscall"
)

// alive reports whether idle connection c still looks open: nothing came
// on it while it sat idle, not even the server's close. It peeks at the
// socket without blocking: one system call, and no allocation after the
// connection's first look.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false // the server spoke unasked: the connection is unusable
	}
	if c.peek == nil {
		nc := c.nc
		if c.tls != nil {
			// The socket under TLS. Bytes on it while the connection is
			// idle are the server's close_notify or close, or, rarely, a
			// late session ticket or key update, which costs a new
			// connection.
			nc = c.tls.NetConn()
		}
		sc, ok := nc.(syscall.Conn)
		if !ok {
			return true // cannot look: the request finds out
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		c.raw = raw
		c.peek = func(fd uintptr) bool {
			var b [1]byte
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			// EAGAIN is a quiet, open connection. No error is the
			// server's FIN (0 bytes) or a byte it should not have sent;
			// any other error a broken connection.
			c.quiet = errors.Is(err, syscall.EAGAIN)
			return true
		}
	}
	c.quiet = false
	if err := c.raw.Read(c.peek); err != nil {
		return false
	}
	return c.quiet
}
