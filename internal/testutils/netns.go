//go:build linux

package testutils

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/nsthread"
	"github.com/ebpf-sentry/ebpf-sentry/internal/rtnl"
)

var netnsSeq atomic.Int32

// Netns is a network namespace of a test's own, bind-mounted at Path
// (/run/netns/NAME, where iproute2 and the sensor look), made without
// iproute2 (the matrix VMs have none).
type Netns struct {
	Path string
	Ino  uint32 // the namespace's inode, as the kernel reports it
}

// NewNetns makes a network namespace named after prefix and removes it at
// cleanup. It is made on a locked thread that is thrown away afterwards.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("/run/netns", fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), netnsSeq.Add(1)))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		return unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
	})
	if err != nil {
		os.Remove(path)
		t.Fatalf("network namespace %s: %v", path, err)
	}
	t.Cleanup(func() {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
	})
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &Netns{Path: path, Ino: uint32(st.Ino)}
}

// AddVeth adds a veth pair (name, up, with ifindex index when not 0, and
// name+"p") to the namespace, through rtnetlink.
func (n *Netns) AddVeth(t testing.TB, name string, index int) {
	t.Helper()
	if err := n.NewVeth(name, index); err != nil {
		t.Fatalf("netns %s: %v", n.Path, err)
	}
}

// NewVeth is AddVeth returning the error: EOPNOTSUPP (wrapped) when the
// kernel has no veth driver (the matrix VMs load no modules).
func (n *Netns) NewVeth(name string, index int) error {
	return n.Do(func() error {
		peer := make([]byte, unix.SizeofIfInfomsg)
		peer = append(peer, rtnl.Attr(unix.IFLA_IFNAME, append([]byte(name+"p"), 0))...)
		info := rtnl.Attr(unix.IFLA_INFO_KIND, []byte("veth\x00"))
		info = append(info, rtnl.Attr(unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, rtnl.Attr(1 /* VETH_INFO_PEER */, peer))...)
		body := rtnl.IfInfo(int32(index), 0, 0)
		body = append(body, rtnl.Attr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
		body = append(body, rtnl.Attr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)...)
		if err := rtnl.NewLink(body, unix.NLM_F_CREATE|unix.NLM_F_EXCL); err != nil {
			return fmt.Errorf("veth %s: %w", name, err)
		}
		ifc, err := ifindexOf(name)
		if err != nil {
			return err
		}
		if err := rtnl.NewLink(rtnl.IfInfo(ifc, unix.IFF_UP, unix.IFF_UP), 0); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		return nil
	})
}

// DelLink deletes interface name (and a veth's peer with it) from the
// namespace, through rtnetlink.
func (n *Netns) DelLink(t testing.TB, name string) {
	t.Helper()
	err := n.Do(func() error {
		ifc, err := ifindexOf(name)
		if err != nil {
			return err
		}
		return rtnl.DelLink(ifc)
	})
	if err != nil {
		t.Fatalf("netns %s: delete %s: %v", n.Path, name, err)
	}
}

// Remove unmounts and removes the namespace's bind mount: with no process
// or fd in it, the kernel tears it down.
func (n *Netns) Remove(t testing.TB) {
	t.Helper()
	if err := unix.Unmount(n.Path, unix.MNT_DETACH); err != nil {
		t.Fatalf("unmount %s: %v", n.Path, err)
	}
	if err := os.Remove(n.Path); err != nil {
		t.Fatal(err)
	}
}

// Do runs fn inside the namespace, on a thread thrown away afterwards.
func (n *Netns) Do(fn func() error) error {
	return nsthread.InNetns(n.Path, fn)
}

func onThread(fn func() error) error { return nsthread.Do(fn) }

func ifindexOf(name string) (int32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("ifindex of %s: %w", name, err)
	}
	return int32(ifr.Uint32()), nil
}
