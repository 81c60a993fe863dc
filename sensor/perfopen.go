package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Once its on-demand ioctl gate is on, the agent never calls
// perf_event_open from its own process: another on-demand agent's gate
// would stop it (SIGSTOP, the whole process) while that agent's hook is
// off, and if that agent is itself stopped by this one's gate, neither
// ever continues anyone (docs/SENSOR.md, "Two on-demand agents"). A
// short-lived child (the agent's own executable re-executed, perfOpenEnv
// set) opens the perf event and stops itself; the agent takes the fd with
// pidfd_getfd whether the child stopped itself or another agent's gate
// stopped it, kills the child and attaches with the fd. The agent needs
// nothing from another agent to go on, so no cycle of stops can close.

// perfOpenEnv names the tracepoint id a perf-open child opens.
const perfOpenEnv = "EBPF_SENTRY_PERF_OPEN_TRACEPOINT"

func init() {
	if id := os.Getenv(perfOpenEnv); id != "" {
		os.Exit(perfOpenChild(id))
	}
}

// perfOpenChild is the child's whole life: open the tracepoint's perf
// event (the attributes cilium/ebpf's link.Tracepoint uses), stop, and
// stay stopped (the agent kills it).
func perfOpenChild(id string) int {
	cfg, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", perfOpenEnv, id, err)
		return 2
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: cfg, Sample_type: unix.PERF_SAMPLE_RAW, Sample: 1, Wakeup: 1}
	if _, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC); err != nil {
		fmt.Fprintf(os.Stderr, "perf_event_open tracepoint %d: %v\n", cfg, err)
		return 1
	}
	for {
		// stopped until killed: a SIGCONT (another agent's, for its own
		// stop at the open) finds it stopping again, its fd kept
		unix.Kill(os.Getpid(), unix.SIGSTOP)
	}
}

// perfHelpers are the perf-open children the agent started: their
// perf_event_open reports are the agent's own (identified by pid and
// start time, as the kernel reports them; the agent is their parent, so
// the pid is not reused before it reaps them).
type perfHelpers struct {
	mu   sync.Mutex
	pids map[uint32]uint64 // pid → start time (clock ticks since boot)
}

func (h *perfHelpers) add(pid uint32, start uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pids == nil {
		h.pids = map[uint32]uint64{}
	}
	if len(h.pids) >= 64 {
		clear(h.pids) // reports are read within moments; old entries are long handled
	}
	h.pids[pid] = start
}

func (h *perfHelpers) is(pid uint32, start uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.pids[pid]
	return ok && s == start
}

// tracepointIDOf reads group/event's id from tracefs.
func tracepointIDOf(group, event string) (uint64, error) {
	var firstErr error
	for _, root := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		b, err := os.ReadFile(root + "/events/" + group + "/" + event + "/id")
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("tracepoint %s/%s id %q: %w", group, event, b, err)
		}
		return id, nil
	}
	return 0, fmt.Errorf("tracepoint %s/%s id: %w", group, event, firstErr)
}

// openPerfInChild opens tracepoint id's perf event in a perf-open child and
// returns the fd, now the agent's.
func (s *Sensor) openPerfInChild(id uint64) (int, error) {
	// a child stopped by someone before its open (not the agent's doing)
	// holds no fd: try again, a bounded number of times
	var errs []error
	for range 3 {
		fd, err := s.openPerfRound(id)
		if err == nil {
			return fd, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errNoPerfFD) {
			break
		}
	}
	return -1, errors.Join(errs...)
}

var errNoPerfFD = errors.New("perf-open child stopped without a perf event fd")

func (s *Sensor) openPerfRound(id uint64) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{exe}
	cmd.Env = []string{perfOpenEnv + "=" + strconv.FormatUint(id, 10)}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// the child dies with the thread that started it: kept locked to this
	// goroutine until the child is reaped
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start perf-open child: %w", err)
	}
	pid := cmd.Process.Pid
	defer func() {
		cmd.Process.Kill() // stopped or not
		cmd.Wait()
	}()
	if start, err := procStartTicks(pid); err == nil {
		s.perfHelpers.add(uint32(pid), start)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd of perf-open child: %w", err)
	}
	defer unix.Close(pidfd)
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("wait for perf-open child: %w", err)
		}
		break
	}
	// stopped (by itself after the open, or by another agent's gate at
	// the open's exit) or exited (the open failed)
	const cldStopped = 5
	if info.Code != cldStopped {
		cmd.Process.Kill()
		cmd.Wait()
		return -1, fmt.Errorf("perf-open child exited: %s", strings.TrimSpace(stderr.String()))
	}
	fds := perfFDsOf(uint32(pid))
	if len(fds) != 1 {
		if len(fds) == 0 {
			return -1, errNoPerfFD
		}
		return -1, fmt.Errorf("perf-open child holds %d perf event fds, want 1", len(fds))
	}
	fd, err := unix.PidfdGetfd(pidfd, int(fds[0]), 0)
	if err != nil {
		return -1, fmt.Errorf("%w: take its perf event fd: %w", errNoPerfFD, err)
	}
	return fd, nil
}

// procState is the state letter of pid in /proc (0 if it is gone).
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// hookLink is an attached hook: a cilium/ebpf link, or a perf event with a
// program set by ioctl.
type hookLink interface {
	Close() error
	Info() (*link.Info, error)
}

// perfLink is a program attached to a perf event fd the agent took from a
// perf-open child: a BPF link (5.15+), or PERF_EVENT_IOC_SET_BPF before.
type perfLink struct {
	raw *link.RawLink // nil: attached by ioctl
	fd  int
}

func (l *perfLink) Close() error {
	var err error
	if l.raw != nil {
		err = l.raw.Close()
	}
	return errors.Join(err, unix.Close(l.fd))
}

func (l *perfLink) Info() (*link.Info, error) {
	if l.raw != nil {
		return l.raw.Info()
	}
	return nil, fmt.Errorf("perf event ioctl info: %w", link.ErrNotSupported)
}

// attachTracepointFromChild attaches prog to group/event with a perf event
// opened by a perf-open child.
func (s *Sensor) attachTracepointFromChild(prog *ebpf.Program, group, event string) (hookLink, error) {
	id, err := tracepointIDOf(group, event)
	if err != nil {
		return nil, err
	}
	fd, err := s.openPerfInChild(id)
	if err != nil {
		return nil, err
	}
	raw, linkErr := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: prog, Attach: ebpf.AttachPerfEvent})
	if linkErr == nil {
		return &perfLink{raw: raw, fd: fd}, nil
	}
	// before 5.15: no perf event links
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("perf event link: %v; PERF_EVENT_IOC_SET_BPF: %w", linkErr, err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("enable perf event: %w", err)
	}
	return &perfLink{fd: fd}, nil
}
