//go:build linux

// Package rtnl builds and sends rtnetlink requests that make or change
// network interfaces (a veth or netkit pair, a link set up), for the test
// helpers and test clients that need interfaces where no iproute2 runs.
package rtnl

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Attr is one netlink attribute: its header, payload and padding to 4 bytes.
// A nested attribute's payload is the concatenation of its attributes.
func Attr(typ uint16, payload []byte) []byte {
	l := unix.SizeofRtAttr + len(payload)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], payload)
	return b
}

// IfInfo is a struct ifinfomsg for interface index (0: the kernel picks
// one), with flags set where change has bits.
func IfInfo(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// NewLink sends one RTM_NEWLINK with body (an IfInfo and its attributes)
// in the calling thread's network namespace and waits for the kernel's
// answer: nil, or its errno.
func NewLink(body []byte, flags uint16) error { return request(unix.RTM_NEWLINK, body, flags) }

// DelLink deletes interface index (RTM_DELLINK) in the calling thread's
// network namespace: nil, or the kernel's errno.
func DelLink(index int32) error { return request(unix.RTM_DELLINK, IfInfo(index, 0, 0), 0) }

func request(typ uint16, body []byte, flags uint16) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	return ack(buf[:n])
}

// ack reads the kernel's answer to a request with NLM_F_ACK: an
// NLMSG_ERROR whose error is 0 (done) or a negative errno.
func ack(b []byte) error {
	if len(b) < unix.SizeofNlMsghdr+4 || binary.NativeEndian.Uint16(b[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("unexpected netlink answer (%d bytes)", len(b))
	}
	if e := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}
