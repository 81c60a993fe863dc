package sensor

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringWait parks the reader goroutine until the ring has records, through
// the Go runtime's netpoller instead of a blocking epoll_wait.
//
// Why: ringbuf.Reader waits in epoll_wait, a blocking system call that
// keeps the thread's P. The reader hands each event to the consumer and
// goes straight back to wait, so on a small load the consumer was runnable
// on a P held by a thread asleep in the kernel: the Go runtime's sysmon had
// to notice (it polls every 20 µs while that lasts), take the P back and
// wake another thread for it, and the reader's thread then slept again for
// lack of a P. Each step is a system call, a futex wake-up or a timer, and
// in a VM each of those is a trap: most of the agent's CPU per small load,
// spent beside the loader on a small host. Parked on the netpoller, the
// reader frees its P: the consumer runs at once on the same thread, and
// with nothing to do every thread sleeps in one epoll_wait (the runtime's)
// and sysmon backs off.
//
// The ring's fd is polled edge-triggered by the runtime. That loses
// nothing: wait checks the ring's positions after the runtime's readiness
// is reset (RawConn.Read) and parks only if it is empty, and the kernel
// wakes the waiters of an empty ring for the next record (the default
// submit wakes when the reader has consumed everything before it; the
// exit hook forces it, see exit_wakeup in bpf/sensor.bpf.c).
type ringWait struct {
	f  *os.File
	rc syscall.RawConn
}

// newRingWait polls m, a BPF_MAP_TYPE_RINGBUF, on a duplicate of its fd.
// An error means the runtime cannot poll it: the caller keeps waiting in
// ringbuf.Reader.
func newRingWait(m *ebpf.Map) (*ringWait, error) {
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup ring fd: %w", err)
	}
	// The flag is on the file description the map shares: bpf() ignores it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ringbuf")
	// os.ErrNoDeadline: the runtime could not add the fd to its epoll set.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("poll ring fd: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("poll ring fd: %w", err)
	}
	return &ringWait{f: f, rc: rc}, nil
}

// wait returns nil once avail reports records, os.ErrDeadlineExceeded at
// the deadline set by setDeadline, or another error once closed.
func (w *ringWait) wait(avail func() int) error {
	return w.rc.Read(func(uintptr) bool { return avail() > 0 })
}

func (w *ringWait) setDeadline(t time.Time) {
	w.f.SetReadDeadline(t)
}

// close wakes a wait and returns once none runs (so avail is not called
// after close returns) or will.
func (w *ringWait) close() {
	w.f.Close()
}

// waitTimedOut is whether a wait ended at its deadline.
func waitTimedOut(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// closeWait closes the reader's wait, if it has one.
func (s *Sensor) closeWait() {
	if s.wait != nil {
		s.wait.close()
	}
}
