//go:build linux

package rtnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAttrIsPaddedToFourBytesAndCountsItsUnpaddedLength(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
		want    []byte // on a little-endian machine
	}{
		{"an empty payload is a bare header", nil, []byte{4, 0, 3, 0}},
		{"three bytes are padded with one zero", []byte("ab\x00"), []byte{7, 0, 3, 0, 'a', 'b', 0, 0}},
		{"four bytes need no padding", []byte("abc\x00"), []byte{8, 0, 3, 0, 'a', 'b', 'c', 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Attr(unix.IFLA_IFNAME, c.payload)
			want := c.want
			if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big endian: swap the header's two fields
				want = append([]byte{0, want[0], 0, want[2]}, want[4:]...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Attr = %v, want %v", got, want)
			}
		})
	}
}

func TestIfInfoPutsIndexFlagsAndChangeWhereTheKernelReadsThem(t *testing.T) {
	b := IfInfo(7, unix.IFF_UP, unix.IFF_UP)
	if len(b) != unix.SizeofIfInfomsg {
		t.Fatalf("%d bytes, want %d", len(b), unix.SizeofIfInfomsg)
	}
	if b[0] != 0 || binary.NativeEndian.Uint16(b[2:]) != 0 {
		t.Errorf("family %d type %d, want 0 0", b[0], binary.NativeEndian.Uint16(b[2:]))
	}
	if idx, fl, ch := binary.NativeEndian.Uint32(b[4:]), binary.NativeEndian.Uint32(b[8:]), binary.NativeEndian.Uint32(b[12:]); idx != 7 || fl != unix.IFF_UP || ch != unix.IFF_UP {
		t.Errorf("index %d flags %#x change %#x, want 7 %#x %#x", idx, fl, ch, unix.IFF_UP, unix.IFF_UP)
	}
}

func TestAckReadsTheKernelsErrno(t *testing.T) {
	answer := func(typ uint16, errno int32) []byte {
		b := make([]byte, unix.SizeofNlMsghdr+4)
		binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint32(b[unix.SizeofNlMsghdr:], uint32(errno))
		return b
	}
	if err := ack(answer(unix.NLMSG_ERROR, 0)); err != nil {
		t.Errorf("error 0: %v, want nil", err)
	}
	if err := ack(answer(unix.NLMSG_ERROR, -int32(unix.EOPNOTSUPP))); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("error -EOPNOTSUPP: %v, want EOPNOTSUPP", err)
	}
	if err := ack(answer(unix.RTM_NEWLINK, 0)); err == nil {
		t.Error("an answer that is not NLMSG_ERROR: nil, want an error")
	}
	if err := ack(answer(unix.NLMSG_ERROR, 0)[:unix.SizeofNlMsghdr]); err == nil {
		t.Error("a truncated answer: nil, want an error")
	}
}
