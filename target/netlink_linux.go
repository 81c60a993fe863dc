//go:build linux

package target

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/nsthread"
)

// NetlinkAttach is a program attached without bpf(): XDP set on a link or
// a tc bpf filter, as a netlink dump of its network namespace shows it.
type NetlinkAttach struct {
	NetNS     uint32 // namespace inode
	Ifindex   uint32
	Interface string
	// Hook is "xdp" (any mode), "tc_ingress" or "tc_egress" (clsact or
	// ingress qdisc filters).
	Hook   string
	ProgID uint32
	Name   string // the tc filter's name (object and section), when given
}

// Netlink attribute and message numbers this file reads (uapi: if_link.h,
// pkt_cls.h, pkt_sched.h).
const (
	tcaBPFName   = 7
	tcaBPFID     = 11
	tcParentIng  = 0xFFFFFFF2 // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS): also the ingress qdisc's
	tcParentEgr  = 0xFFFFFFF3
	sizeofTcMsg  = 20
	xdpAttrProg  = unix.IFLA_XDP_PROG_ID
	maxNamespace = 4096
)

// NetlinkAttachments dumps every network namespace the host shows (the
// sensor's, the /run/netns entries and those of live processes): the XDP
// program of each link and the bpf filters of each link's ingress and
// egress hooks. Errors of one namespace are joined; the others still count.
func NetlinkAttachments() ([]NetlinkAttach, error) { return eachNamespace(dumpNamespace) }

type nsRef struct {
	path string
	ino  uint32
}

func namespaces() []nsRef {
	seen := map[uint32]bool{}
	var out []nsRef
	add := func(p string) {
		if ino := nsIno(p); ino != 0 && !seen[ino] && len(out) < maxNamespace {
			seen[ino] = true
			out = append(out, nsRef{p, ino})
		}
	}
	add("/proc/self/ns/net")
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			add("/run/netns/" + e.Name())
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				add("/proc/" + e.Name() + "/ns/net")
			}
		}
	}
	return out
}

// dumpNamespace runs the dumps on a locked thread inside the namespace (a
// netlink socket belongs to the namespace it was made in); the thread is
// thrown away afterwards.
func dumpNamespace(path string, ino uint32) ([]NetlinkAttach, error) {
	type result struct {
		out []NetlinkAttach
		err error
	}
	var r result
	if ino == ownNetNS() {
		path = ""
	}
	r.err = nsthread.InNetns(path, func() error {
		var err error
		r.out, err = dumpHere(ino)
		return err
	})
	return r.out, r.err
}

func dumpHere(ino uint32) ([]NetlinkAttach, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []NetlinkAttach
	type link struct {
		index uint32
		name  string
	}
	var links []link
	err = dump(fd, unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg), func(typ uint16, body []byte) {
		if typ != unix.RTM_NEWLINK || len(body) < unix.SizeofIfInfomsg {
			return
		}
		l := link{index: binary.NativeEndian.Uint32(body[4:8])}
		var xdp uint32
		for a, v := range attrs(body[unix.SizeofIfInfomsg:]) {
			switch a {
			case unix.IFLA_IFNAME:
				l.name = cstr(v)
			case unix.IFLA_XDP:
				for b, w := range attrs(v) {
					if b == xdpAttrProg && len(w) >= 4 {
						xdp = binary.NativeEndian.Uint32(w)
					}
				}
			}
		}
		links = append(links, l)
		if xdp != 0 {
			out = append(out, NetlinkAttach{NetNS: ino, Ifindex: l.index, Interface: l.name, Hook: "xdp", ProgID: xdp})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("RTM_GETLINK: %w", err)
	}
	for _, l := range links {
		for _, parent := range []uint32{tcParentIng, tcParentEgr} {
			req := make([]byte, sizeofTcMsg)
			binary.NativeEndian.PutUint32(req[4:], l.index)
			binary.NativeEndian.PutUint32(req[12:], parent)
			hook := "tc_ingress"
			if parent == tcParentEgr {
				hook = "tc_egress"
			}
			err := dump(fd, unix.RTM_GETTFILTER, req, func(typ uint16, body []byte) {
				if typ != unix.RTM_NEWTFILTER || len(body) < sizeofTcMsg {
					return
				}
				var kind string
				var opts []byte
				for a, v := range attrs(body[sizeofTcMsg:]) {
					switch a {
					case unix.TCA_KIND:
						kind = cstr(v)
					case unix.TCA_OPTIONS:
						opts = v
					}
				}
				if kind != "bpf" {
					return
				}
				na := NetlinkAttach{NetNS: ino, Ifindex: l.index, Interface: l.name, Hook: hook}
				for b, w := range attrs(opts) {
					switch {
					case b == tcaBPFID && len(w) >= 4:
						na.ProgID = binary.NativeEndian.Uint32(w)
					case b == tcaBPFName:
						na.Name = cstr(w)
					}
				}
				if na.ProgID != 0 {
					out = append(out, na)
				}
			})
			// no qdisc at that hook: EINVAL/ENOENT, nothing attached there
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EOPNOTSUPP) {
				return out, fmt.Errorf("RTM_GETTFILTER %s %s: %w", l.name, hook, err)
			}
		}
	}
	slices.SortFunc(out, func(a, b NetlinkAttach) int {
		if a.Ifindex != b.Ifindex {
			return cmpU64(uint64(a.Ifindex), uint64(b.Ifindex))
		}
		return cmpU64(uint64(a.ProgID), uint64(b.ProgID))
	})
	return out, nil
}

var nlSeq uint32

// dump sends one NLM_F_DUMP request and calls each for every message of
// the answer until NLMSG_DONE.
func dump(fd int, typ uint16, body []byte, each func(typ uint16, body []byte)) error {
	nlSeq++
	seq := nlSeq
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		b := buf[:n]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			t := binary.NativeEndian.Uint16(b[4:])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("netlink: message of %d bytes in %d", l, len(b))
			}
			s := binary.NativeEndian.Uint32(b[8:])
			payload := b[unix.SizeofNlMsghdr:l]
			if s == seq {
				switch t {
				case unix.NLMSG_DONE:
					return nil
				case unix.NLMSG_ERROR:
					if len(payload) >= 4 {
						if e := int32(binary.NativeEndian.Uint32(payload)); e != 0 {
							return unix.Errno(-e)
						}
					}
					return nil
				default:
					each(t, payload)
				}
			}
			l = (l + 3) &^ 3
			if l > len(b) {
				break
			}
			b = b[l:]
		}
	}
}

// attrs iterates netlink attributes (type without the nested and
// byte-order bits); a truncated attribute ends the walk.
func attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= 4 {
			l := int(binary.NativeEndian.Uint16(b[0:]))
			t := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
			if l < 4 || l > len(b) {
				return
			}
			if !yield(t, b[4:l]) {
				return
			}
			l = (l + 3) &^ 3
			if l > len(b) {
				return
			}
			b = b[l:]
		}
	}
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
