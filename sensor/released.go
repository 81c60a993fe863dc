package sensor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// CatchUp waits, up to timeout, for the reader's delivered-up-to-now mark
// (Delivered), so that an attach or detach made before now is on Attaches
// (or already received) when it returns true. The agent calls it before
// deciding that a link vanished without a BPF_LINK_DETACH: the detach's
// record, if there was one, was submitted before the link went. false: the
// mark did not come within timeout (a flood, or the reader blocked on a
// full channel the caller is not receiving from), and the caller decides
// on what it has.
func (s *Sensor) CatchUp(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.Delivered():
		return true
	case <-t.C:
		return false
	}
}

// PerfEventProg is the id of the program attached to perf event fd of
// process pid (BPF_TASK_FD_QUERY, what `bpftool perf` shows). ENOENT: a
// perf event without a program; EBADF: no such fd; ESRCH: no such
// process.
func PerfEventProg(pid uint32, fd int32) (uint32, error) {
	q, err := taskFDQuery(pid, fd)
	if err != nil {
		return 0, err
	}
	return q.progID, nil
}

// PerfHolder is a process's fd on a perf event.
type PerfHolder struct {
	PID uint32
	FD  int32
}

// PerfHolderOf finds a perf event fd, in any process but the agent, that
// runs program progID: the perf event attachment of that program lives
// while one is held. It walks /proc (every process's fd table): the agent
// calls it only when the fd that attached the program no longer runs it.
// A process whose fds cannot be read is skipped and counted in unreadable.
func PerfHolderOf(progID uint32) (h PerfHolder, found bool, unreadable int) {
	self := uint32(os.Getpid())
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return PerfHolder{}, false, 1
	}
	for _, p := range procs {
		pid64, err := strconv.ParseUint(p.Name(), 10, 32)
		if err != nil || uint32(pid64) == self {
			continue
		}
		pid := uint32(pid64)
		for _, fd := range perfFDsOf(pid) {
			id, err := PerfEventProg(pid, fd)
			if err != nil {
				if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.EBADF) {
					unreadable++
				}
				continue
			}
			if id == progID {
				return PerfHolder{PID: pid, FD: fd}, true, unreadable
			}
		}
	}
	return PerfHolder{}, false, unreadable
}

// A BPF_PROG_ATTACH attachment belongs to its target, not to a file: it
// ends with a BPF_PROG_DETACH (a call the sensor sees), when another
// attach replaces it, or when the target goes. A removed cgroup (rmdir)
// can no longer be opened by its id and takes no new process or socket;
// the kernel frees its programs once the last socket created in it
// closes (cgroup_bpf_release). A deleted interface drops its tcx
// programs at once; a freed sockmap or sockhash drops its programs.

// Kinds of BPF_PROG_ATTACH targets the agent can check.
const (
	ProgAttachUnchecked = iota // flow dissector, lirc, …: not checked
	ProgAttachCgroup           // target: cgroup id
	ProgAttachSockMap          // target: map id
	ProgAttachTCX              // target: ifindex in network namespace NetNS
)

const (
	attachTypeTCXIngress = 46
	attachTypeTCXEgress  = 47
)

// ProgAttachKind is how a BPF_PROG_ATTACH to t can be checked later: the
// kernel identity that names its target (cgroup id, map id, or ifindex
// and network namespace inode).
func ProgAttachKind(t RawTarget) int {
	switch {
	case t.AttachType < 64 && (1<<t.AttachType)&cgroupAttachTypes != 0 && t.CgroupIno != 0:
		return ProgAttachCgroup
	case t.MapID != 0:
		return ProgAttachSockMap
	case (t.AttachType == attachTypeTCXIngress || t.AttachType == attachTypeTCXEgress) && t.FD != 0 && t.NetNS != 0:
		return ProgAttachTCX
	}
	return ProgAttachUnchecked
}

// ProgAttachState says whether program progID is still attached to t
// with t's attach type, from the kernel: gone with how it was found, or
// an error when it could not be checked (then nothing is known).
func ProgAttachState(t RawTarget, progID uint32) (gone bool, how string, err error) {
	at := ebpf.AttachType(t.AttachType)
	switch ProgAttachKind(t) {
	case ProgAttachCgroup:
		fd, err := openCgroupByIDCached(t.CgroupIno)
		if errors.Is(err, errNotAttached) {
			return true, fmt.Sprintf("cgroup id %d can no longer be opened by its id: removed (rmdir); its programs are freed once no socket created in it remains", t.CgroupIno), nil
		}
		if err != nil {
			return false, "", err
		}
		defer unix.Close(fd)
		return queryHolds(fd, at, progID, fmt.Sprintf("cgroup id %d", t.CgroupIno))
	case ProgAttachSockMap:
		m, err := ebpf.NewMapFromID(ebpf.MapID(t.MapID))
		if errors.Is(err, os.ErrNotExist) {
			return true, fmt.Sprintf("map id %d is gone (freed), and its programs with it", t.MapID), nil
		}
		if err != nil {
			return false, "", fmt.Errorf("open map %d: %w", t.MapID, err)
		}
		defer m.Close()
		return queryHolds(m.FD(), at, progID, fmt.Sprintf("map id %d", t.MapID))
	case ProgAttachTCX:
		where := fmt.Sprintf("ifindex %d in network namespace %d", t.FD, t.NetNS)
		q := func() error {
			gone, how, err = queryHolds(int(t.FD), at, progID, where)
			if gone {
				// an ifindex can be given again (ip link add index N)
				how = fmt.Sprintf("BPF_PROG_QUERY on %s no longer lists it: detached or replaced unseen, or the interface deleted (the ifindex may name a new one)", where)
			}
			if errors.Is(err, unix.ENODEV) {
				gone, how, err = true, where+": no such interface (deleted); tcx drops its programs with the device", nil
			}
			return nil
		}
		var nsErr error
		if nsInode("/proc/self/ns/net") == t.NetNS {
			nsErr = q()
		} else {
			nsErr = inNetns(t.NetNS, q)
		}
		if errors.Is(nsErr, errNotAttached) {
			return true, fmt.Sprintf("network namespace %d is gone (no process, fd or /run/netns entry holds it), with its interfaces", t.NetNS), nil
		}
		if nsErr != nil {
			return false, "", nsErr
		}
		return gone, how, err
	}
	return false, "", fmt.Errorf("attach type %d: target not checked", t.AttachType)
}

// queryHolds is BPF_PROG_QUERY on target (an fd, or an ifindex for tcx):
// gone when progID is not among the programs attached with at. One call
// with room for 64 ids (a cgroup's limit per attach type), again with
// the count the kernel gave when more are attached.
func queryHolds(target int, at ebpf.AttachType, progID uint32, what string) (bool, string, error) {
	ids := make([]uint32, 64)
	for {
		attr := struct {
			target, attachType, queryFlags, attachFlags uint32
			progIDs                                     uint64
			progCnt, _                                  uint32
		}{target: uint32(target), attachType: uint32(at), progIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), progCnt: uint32(len(ids))}
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_QUERY, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(ids)
		if errno == unix.ENOSPC && int(attr.progCnt) > len(ids) {
			ids = make([]uint32, attr.progCnt)
			continue
		}
		if errno != 0 {
			return false, "", fmt.Errorf("BPF_PROG_QUERY on %s: %w", what, errno)
		}
		for _, id := range ids[:min(int(attr.progCnt), len(ids))] {
			if id == progID {
				return false, "", nil
			}
		}
		return true, fmt.Sprintf("BPF_PROG_QUERY on %s no longer lists it: detached or replaced by a call the sentry did not report", what), nil
	}
}

// cgroupRoot is an fd on the cgroup v2 mount kept for opening cgroups by
// id at every check (reading mountinfo each time cost more than the rest
// of the check; BenchmarkReleaseCheck).
var cgroupRoot struct {
	sync.Mutex
	fd int // 0: not open
}

// openCgroupByIDCached is openCgroupByID through the kept mount fd.
func openCgroupByIDCached(id uint64) (int, error) {
	cgroupRoot.Lock()
	defer cgroupRoot.Unlock()
	if cgroupRoot.fd <= 0 {
		mnt, err := cgroup2Mount()
		if err != nil {
			return -1, fmt.Errorf("cgroup %d: %w", id, err)
		}
		fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("cgroup %d: %w", id, err)
		}
		cgroupRoot.fd = fd
	}
	fd, err := openCgroupAt(cgroupRoot.fd, id)
	if err != nil && !errors.Is(err, errNotAttached) {
		unix.Close(cgroupRoot.fd) // found again at the next check
		cgroupRoot.fd = 0
	}
	return fd, err
}
