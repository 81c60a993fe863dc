package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/nsthread"
)

// A block on the syscall hooks is a SIGKILL sent at sys_enter: the bpf()
// call still runs to its end. A link dies with its fd, so a killed caller
// leaves none; a BPF_PROG_ATTACH attachment (cgroup, flow dissector,
// sockmap, lirc) belongs to its target and outlives the caller. The agent
// takes it off again when the exit record says the call succeeded.

// Undo outcomes (AttachUndo.Outcome).
const (
	// UndoDetached: the agent detached the program (BPF_PROG_DETACH).
	UndoDetached = "detached_by_sentry"
	// UndoNotAttached: the target no longer held the program (detached or
	// replaced meanwhile) or no longer exists, which ends its attachments.
	UndoNotAttached = "not_attached"
	// UndoFailed: the attachment may still be in place (Error says why).
	UndoFailed = "detach_failed"
)

// AttachUndo is what the agent did about a blocked BPF_PROG_ATTACH the
// kernel completed.
type AttachUndo struct {
	Outcome string `json:"outcome"`
	// Window is how long the program was attached: from the syscall's
	// return (the exit record's time) to the detach's return.
	Window time.Duration `json:"window_ns"`
	Error  string        `json:"error,omitempty"`
}

const (
	attachTypeFlowDissector = 17 // BPF_FLOW_DISSECTOR
	attachTypeLircMode2     = 16 // BPF_LIRC_MODE2
	undoFailedCounter       = "blocked_attach_not_detached"
)

// needsUndo: a blocked BPF_PROG_ATTACH whose caller was to be killed, and
// that the kernel completed anyway.
func needsUndo(ev *AttachEvent) bool {
	return ev.Op == OpProgAttach && ev.Verdict == VerdictBlock && ev.ProgID != 0 &&
		(ev.Action == ActionKilled || ev.Action == ActionKillFailed) &&
		(ev.Result == AttachDone || ev.Result == AttachKilled) && ev.Errno == 0
}

// undoAttach detaches what ev attached, records the outcome in ev and
// counts a failure. exitKtime is the exit record's CLOCK_MONOTONIC time.
func (s *Sensor) undoAttach(ev *AttachEvent, exitKtime uint64) {
	err := detachBlocked(ev)
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	u := &AttachUndo{Outcome: UndoDetached}
	if now := uint64(ts.Nano()); exitKtime != 0 && now > exitKtime {
		u.Window = time.Duration(now - exitKtime)
	}
	switch {
	case err == nil:
	case errors.Is(err, errNotAttached):
		u.Outcome = UndoNotAttached
		u.Error = err.Error()
	default:
		u.Outcome, u.Error = UndoFailed, err.Error()
		s.mu.Lock()
		s.userLost[undoFailedCounter]++
		s.mu.Unlock()
		s.log.Error("ENFORCEMENT FAILED: a blocked BPF_PROG_ATTACH completed and the sensor could not detach it",
			"prog_id", ev.ProgID, "attach_type", ev.Target.AttachType, "caller", ev.Caller.PID, "err", err)
	}
	ev.Undo = u
}

var errNotAttached = errors.New("not attached")

// detachBlocked issues BPF_PROG_DETACH of ev's program from ev's target,
// reopened from what the kernel reported: the cgroup by id, the sockmap by
// map id, the network namespace by inode; the caller's fds are gone.
func detachBlocked(ev *AttachEvent) error {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(ev.ProgID))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("prog %d is gone (%w)", ev.ProgID, errNotAttached)
		}
		return fmt.Errorf("open prog %d: %w", ev.ProgID, err)
	}
	defer prog.Close()
	at := ebpf.AttachType(ev.Target.AttachType)
	detach := func(target int) error {
		err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: target, Program: prog, Attach: at})
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("prog %d: %w", ev.ProgID, errNotAttached)
		}
		return err
	}
	t := ev.Target
	switch {
	case t.AttachType < 64 && (1<<t.AttachType)&cgroupAttachTypes != 0 && t.CgroupIno != 0:
		fd, err := openCgroupByID(t.CgroupIno)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return detach(fd)
	case t.MapID != 0:
		m, err := ebpf.NewMapFromID(ebpf.MapID(t.MapID))
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("map %d is gone, with its attachments (%w)", t.MapID, errNotAttached)
		}
		if err != nil {
			return fmt.Errorf("open map %d: %w", t.MapID, err)
		}
		defer m.Close()
		return detach(m.FD())
	case t.AttachType == attachTypeFlowDissector:
		return inNetns(t.NetNS, func() error { return detach(0) })
	case t.AttachType == attachTypeLircMode2:
		// the device fd exists only in the caller, which may have exited
		f, err := os.Open(fmt.Sprintf("/proc/%d/fd/%d", ev.Caller.PID, t.FD))
		if err != nil {
			return fmt.Errorf("lirc device (fd %d of pid %d): %w", t.FD, ev.Caller.PID, err)
		}
		defer f.Close()
		return detach(int(f.Fd()))
	}
	return fmt.Errorf("attach type %d: no way to reopen the target", t.AttachType)
}

// cgroupAttachTypes are the bpf_attach_types whose target is a cgroup
// (bpf/attach.h CGROUP_ATTACH_TYPES).
const cgroupAttachTypes = uint64(1)<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<6 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12 |
	1<<13 | 1<<14 | 1<<15 | 1<<18 | 1<<19 | 1<<20 | 1<<21 | 1<<22 | 1<<29 | 1<<30 | 1<<31 | 1<<32 | 1<<34 |
	1<<43 | 1<<49 | 1<<50 | 1<<51 | 1<<52 | 1<<53

// openCgroupByID opens a cgroup v2 directory by its id (the kernfs file
// handle is the id).
func openCgroupByID(id uint64) (int, error) {
	mnt, err := cgroup2Mount()
	if err != nil {
		return -1, fmt.Errorf("cgroup %d: %w", id, err)
	}
	root, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("cgroup %d: %w", id, err)
	}
	defer unix.Close(root)
	return openCgroupAt(root, id)
}

// openCgroupAt opens cgroup id by handle from root, an fd on the cgroup v2
// mount.
func openCgroupAt(root int, id uint64) (int, error) {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint64(b, id)
	const fileidKernfs = 0xfe
	fd, err := unix.OpenByHandleAt(root, unix.NewFileHandle(fileidKernfs, b), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("cgroup %d is gone, with its attachments (%w)", id, errNotAttached)
	}
	if err != nil {
		return -1, fmt.Errorf("open cgroup %d by handle: %w", id, err)
	}
	return fd, nil
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted (the first
// cgroup2 line of mountinfo; /sys/fs/cgroup on unified hosts).
func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// … mount point (field 5) … " - " fstype source options
		pre, post, ok := strings.Cut(line, " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return unescapeMountinfo(fields[4]), nil
		}
	}
	return "", errors.New("no cgroup2 mount in /proc/self/mountinfo")
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// inNetns runs fn on a locked thread in network namespace ino; the thread
// is thrown away afterwards, so no goroutine ever runs there.
func inNetns(ino uint32, fn func() error) error {
	if ino == 0 {
		return errors.New("network namespace unknown")
	}
	path := findNetns(ino)
	if path == "" {
		return fmt.Errorf("network namespace %d: no process, fd or /run/netns entry holds it (%w)", ino, errNotAttached)
	}
	return nsthread.InNetns(path, fn)
}

func nsInode(path string) uint32 {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

// findNetns finds a file naming network namespace ino: the sensor's own, a
// /run/netns bind mount, a process in it or an fd holding it.
func findNetns(ino uint32) string {
	if nsInode("/proc/self/ns/net") == ino {
		return "/proc/self/ns/net"
	}
	m, _ := filepath.Glob("/run/netns/*")
	for _, p := range m {
		if nsInode(p) == ino {
			return p
		}
	}
	dirs, _ := os.ReadDir("/proc")
	var pids []string
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err == nil {
			pids = append(pids, d.Name())
		}
	}
	for _, pid := range pids {
		if p := "/proc/" + pid + "/ns/net"; nsInode(p) == ino {
			return p
		}
	}
	want := fmt.Sprintf("net:[%d]", ino)
	for _, pid := range pids {
		fds, _ := os.ReadDir("/proc/" + pid + "/fd")
		for _, fd := range fds {
			p := "/proc/" + pid + "/fd/" + fd.Name()
			if l, err := os.Readlink(p); err == nil && l == want {
				return p
			}
		}
	}
	return ""
}
