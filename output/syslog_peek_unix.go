//go:build unix

package output

import (
	"errors"
	"syscall"
)

// peerOpen peeks at the stream without blocking: a syslog receiver never
// sends, so end-of-file or an error means it is gone; only "nothing to
// read" means the connection is still there. (A read deadline in the past
// would not do: Go then fails the read without asking the kernel.)
func (s *SyslogSink) peerOpen() bool {
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n > 0 || errors.Is(rerr, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && open
}
