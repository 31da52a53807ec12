//go:build unix

package session

import (
	"errors"
	"syscall"
)

// alive reports whether idle connection c still looks open: nothing came
// on it while it sat idle, not even the server's close. It peeks at the
// socket without blocking: one system call.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false // the server spoke unasked: the connection is unusable
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true // cannot look: the request finds out
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN is a quiet, open connection. No error is the server's
		// FIN (0 bytes) or a byte it should not have sent; any other
		// error a broken connection.
		alive = errors.Is(err, syscall.EAGAIN)
		return true
	})
	return alive
}
