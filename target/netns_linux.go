//go:build linux

package target

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/nsthread"
)

// ownNetNS is the sensor's network namespace inode (0: unknown).
func ownNetNS() uint32 { return nsIno("/proc/self/ns/net") }

func nsIno(path string) uint32 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

// netnsPath finds a file that names network namespace ino: the caller's
// own, a bind mount under /run/netns, or any process in it.
func netnsPath(ino, pid uint32) string {
	if pid != 0 {
		if p := fmt.Sprintf("/proc/%d/ns/net", pid); nsIno(p) == ino {
			return p
		}
	}
	if m, _ := filepath.Glob("/run/netns/*"); len(m) > 0 {
		for _, p := range m {
			if nsIno(p) == ino {
				return p
			}
		}
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		if p := "/proc/" + d.Name() + "/ns/net"; nsIno(p) == ino {
			return p
		}
	}
	return ""
}

// interfaceName names ifindex in network namespace ino (0: the sensor's).
// Another namespace is entered on a locked thread that is thrown away
// afterwards, so no goroutine ever runs in it.
func interfaceName(ifindex, ino, pid uint32) (string, error) {
	if ino == 0 {
		ifc, err := net.InterfaceByIndex(int(ifindex))
		if err != nil {
			return "", fmt.Errorf("ifindex %d not in the sensor's network namespace", ifindex)
		}
		return ifc.Name, nil
	}
	path := netnsPath(ino, pid)
	if path == "" {
		return "", fmt.Errorf("ifindex %d in network namespace %d, which no process or /run/netns entry holds any more", ifindex, ino)
	}
	type result struct {
		name string
		err  error
	}
	var r result
	r.err = nsthread.InNetns(path, func() error {
		var err error
		r.name, err = ifname(ifindex)
		return err
	})
	if r.err != nil {
		return "", fmt.Errorf("ifindex %d in network namespace %d: %w", ifindex, ino, r.err)
	}
	return r.name, nil
}

// ifname asks the current thread's namespace (SIOCGIFNAME on a socket made
// here: net.InterfaceByIndex may run on another thread).
func ifname(ifindex uint32) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	ifr.SetUint32(ifindex)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return "", errors.New("no such interface")
		}
		return "", err
	}
	return strings.TrimRight(ifr.Name(), "\x00"), nil
}

// mapName is a map's name by id ("" when it is gone or unnamed).
func mapName(id uint32) string {
	m, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		return ""
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return ""
	}
	return info.Name
}

// Interface is a network interface in one network namespace: an ifindex
// names an interface only within its namespace.
type Interface struct {
	NetNS   uint32 // namespace inode
	Ifindex uint32
	Name    string
}

// Interfaces lists the interfaces of every network namespace the host
// shows (the sensor's, the /run/netns entries and those of live
// processes), each listed from inside its namespace. Errors of one
// namespace are joined; the others still count.
func Interfaces() ([]Interface, error) { return eachNamespace(interfacesIn) }

// eachNamespace gathers what in finds in every namespace the host shows;
// the errors of one namespace are joined, and the others still count.
func eachNamespace[T any](in func(path string, ino uint32) ([]T, error)) ([]T, error) {
	var out []T
	var errs []error
	for _, ns := range namespaces() {
		got, err := in(ns.path, ns.ino)
		if err != nil {
			errs = append(errs, fmt.Errorf("netns %d (%s): %w", ns.ino, ns.path, err))
		}
		out = append(out, got...)
	}
	return out, errors.Join(errs...)
}

func interfacesIn(path string, ino uint32) ([]Interface, error) {
	var out []Interface
	if ino == ownNetNS() {
		path = ""
	}
	err := nsthread.InNetns(path, func() error {
		// net.Interfaces opens its netlink socket on this thread
		ifs, err := net.Interfaces()
		for _, ifc := range ifs {
			out = append(out, Interface{NetNS: ino, Ifindex: uint32(ifc.Index), Name: ifc.Name})
		}
		return err
	})
	return out, err
}
