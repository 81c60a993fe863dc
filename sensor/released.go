package sensor

import (
	"errors"
	"os"
	"strconv"
	"time"

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
