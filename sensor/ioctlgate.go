package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// IoctlHook says when the programs on ioctl (PERF_EVENT_IOC_SET_BPF
// attaches) are attached. Any program on the ioctl tracepoints costs every
// ioctl on the host (docs/PERFORMANCE.md), and an attach through ioctl
// needs a perf event fd, which only perf_event_open makes.
type IoctlHook string

const (
	// IoctlHookAlways: attached for the agent's lifetime (the mode's
	// programs: the exit program in monitor mode, entry, exit and the LSM
	// gate in enforce mode).
	IoctlHookAlways IoctlHook = "always"
	// IoctlHookOnDemand: attached while a process that may hold a perf
	// event fd without a program lives (sensor/ioctlgate.go).
	IoctlHookOnDemand IoctlHook = "on-demand"
	// IoctlHookAuto: on-demand where OnDemandIoctlSupport says the kernel
	// can, always elsewhere (the default; an empty Config.IoctlHook too).
	IoctlHookAuto IoctlHook = "auto"
)

// DefaultIoctlHook is what an empty Config.IoctlHook means (and run's
// --ioctl-hook default).
const DefaultIoctlHook = IoctlHookAlways

// ResolveIoctlHook says which hook h stands for here: empty is
// DefaultIoctlHook; auto is on-demand where OnDemandIoctlSupport says the
// kernel can, always elsewhere.
func ResolveIoctlHook(h IoctlHook) IoctlHook {
	if h == "" {
		h = DefaultIoctlHook
	}
	if h != IoctlHookAuto {
		return h
	}
	if OnDemandIoctlSupport() != nil {
		return IoctlHookAlways
	}
	return IoctlHookOnDemand
}

// Bounds of the on-demand hook's state.
const (
	maxPerfHolders   = 4096 // processes followed; beyond, the hook stays attached (counted: holders_full)
	maxPerfHolderFDs = 64   // fds per process queried after the fact; beyond, counted (fds_unqueried)
)

// OnDemandIoctlSupport says why the on-demand ioctl hook cannot run on this
// kernel, or nil: it follows processes by pidfd and stops a perf_event_open
// caller with bpf_send_signal(SIGSTOP) until the hook is attached.
func OnDemandIoctlSupport() error {
	if err := kernelprobe.Pidfd(); err != nil {
		return err
	}
	if err := kernelprobe.Helper(asm.FnSendSignal); err != nil {
		return fmt.Errorf("bpf_send_signal: %w", err)
	}
	return nil
}

// IoctlGuarantee says what the sensor sees of PERF_EVENT_IOC_SET_BPF
// attaches with hook h (doctor, docs/SENSOR.md).
func IoctlGuarantee(h IoctlHook) string {
	if h == IoctlHookAlways {
		return "always: the ioctl programs stay attached; every PERF_EVENT_IOC_SET_BPF is seen at the call (and stopped in enforce mode); every ioctl on the host pays for them"
	}
	return "on-demand: the ioctl programs are attached while a process that opened a perf event, or holds a perf event fd without a program, lives (perf_event_open is watched, its caller stopped until the hook is on, in both modes; an attach made before the hook was on, when the stop failed, is reported after the fact); not seen: a perf fd parked in a unix socket's queue when the last holder exits, and a perf event whose link-attached program is detached after its opener exited (docs/EVASION.md); --ioctl-hook always closes both"
}

// IoctlGateStats counts the on-demand hook's work (Sensor.IoctlGate).
type IoctlGateStats struct {
	Hook     IoctlHook `json:"hook"`
	Attached bool      `json:"attached"` // the ioctl programs are attached now
	Holders  int       `json:"holders"`  // processes followed now
	// Opens: perf_event_open results handled; Stopped: of them, callers
	// the kernel side stopped (all continued).
	Opens, Stopped uint64
	Attaches       uint64 // times the hook was attached
	Detaches       uint64
	Scans          uint64 // /proc scans for perf fd holders (before detaching, at start)
	Adopted        uint64 // holders the scans found: inherited, passed or pre-existing perf fds
	AfterTheFact   uint64 // attaches made while the hook was not attached, found by BPF_TASK_FD_QUERY
	Gone           uint64 // openers that had exited before the agent followed them (a scan follows)
	HoldersFull    uint64 // processes not followed: table full (the hook then stays attached)
	FDsUnqueried   uint64 // perf fds beyond maxPerfHolderFDs of one process, not queried after the fact
	Own            uint64 // the agent's own perf_event_open results: never followed (its fds carry its own programs)
	KernelReported uint64 // the kernel side's count of perf_event_open results
	KernelLost     uint64 // results the ring could not take (the caller is killed in enforce mode)
	StopFailed     uint64 // bpf_send_signal(SIGSTOP) failures (the caller is reported, not stopped)
}

type perfHolder struct {
	pid   uint32
	pidfd int
	fds   []int32
	owed  bool // stopped by the kernel side, SIGCONT not yet sent
}

// ioctlGate attaches the ioctl programs while a perf event fd may be used
// for an attach: from a perf_event_open (the kernel side reports each, on
// a ring of its own) until no process that opened one, or holds one without
// a program, lives.
type ioctlGate struct {
	s     *Sensor
	self  uint32 // the agent's tgid
	state *ebpf.Map
	ring  *ringbuf.Reader
	epfd  int
	wake  int // eventfd: ends the pidfd loop

	mu       sync.Mutex
	holders  map[uint32]*perfHolder
	full     bool // a process was not followed: keep the hook until a scan finds all
	stats    IoctlGateStats
	offSince uint64 // CLOCK_MONOTONIC ns when the hook last began to detach (0: never)
	closing  bool   // the agent stops: stopped callers are let go, nothing is followed
	closed   bool
	// stop: the kernel side stops a caller while the hook is off (0 only
	// in tests of the path a failed stop takes)
	stop uint32
	// only, when set (tests, Config.ioctlGateOnly), limits the processes
	// followed: on a shared host other processes' perf events would keep
	// the hook attached. A caller out of it that was stopped is continued.
	only func(pid uint32) bool
	// beforeAttach, when set (tests), runs before a report is handled,
	// outside the lock: the window between a perf_event_open and the hook.
	beforeAttach func()
	wg           sync.WaitGroup
}

func (s *Sensor) startIoctlGate() error {
	g := &ioctlGate{s: s, self: uint32(os.Getpid()), state: s.coll.Maps[sentryMapIoctlGate], holders: map[uint32]*perfHolder{}, epfd: -1, wake: -1, only: s.cfg.ioctlGateOnly}
	g.stats.Hook = IoctlHookOnDemand
	g.stop = 1
	var err error
	if g.ring, err = ringbuf.NewReader(s.coll.Maps[sentryMapPerfOpened]); err != nil {
		return fmt.Errorf("perf_event_open ring: %w", err)
	}
	if g.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		g.ring.Close()
		return fmt.Errorf("epoll: %w", err)
	}
	if g.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		g.ring.Close()
		unix.Close(g.epfd)
		return fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(g.epfd, unix.EPOLL_CTL_ADD, g.wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		g.closeFDs()
		return fmt.Errorf("epoll: %w", err)
	}
	// From now on another on-demand agent's gate may stop a caller of
	// perf_event_open: the agent's own opens go through a child
	// (sensor/perfopen.go), so that it is never stopped itself.
	s.armMu.Lock()
	s.perfViaChild = true
	s.armMu.Unlock()
	// Reports first, then the scan: a process that opens a perf event
	// after the scan is reported, one before it is found by it.
	if err := g.writeControl(1, 0); err != nil {
		g.closeFDs()
		return err
	}
	s.ioctlGate = g
	g.mu.Lock()
	g.scanLocked()
	if len(g.holders) > 0 || g.full {
		if err := g.attachLocked(); err != nil {
			g.mu.Unlock()
			return err
		}
	}
	g.mu.Unlock()
	g.wg.Add(2)
	go g.readOpens()
	go g.watchHolders()
	return nil
}

func (g *ioctlGate) closeFDs() {
	g.ring.Close()
	if g.epfd >= 0 {
		unix.Close(g.epfd)
	}
	if g.wake >= 0 {
		unix.Close(g.wake)
	}
}

// writeControl writes the user-space half of the gate state (g.mu held).
func (g *ioctlGate) writeControl(onDemand, armed uint32) error {
	c := sentrySentryIoctlGate{OnDemand: onDemand, Armed: armed, Stop: g.stop, SelfTgid: g.self}
	if err := g.state.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write ioctl gate state: %w", err)
	}
	return nil
}

// attachLocked attaches the ioctl programs of the current mode, then tells
// the kernel side, which stops no caller from then on.
func (g *ioctlGate) attachLocked() error {
	if g.stats.Attached {
		return nil
	}
	if err := g.s.setIoctlOpen(true); err != nil {
		return err
	}
	g.stats.Attached = true
	g.stats.Attaches++
	return g.writeControl(1, 1)
}

// detachLocked tells the kernel side first (a perf_event_open from then on
// stops its caller), then detaches.
func (g *ioctlGate) detachLocked() {
	if !g.stats.Attached {
		return
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // bpf_ktime_get_ns's clock
	if err := g.writeControl(1, 0); err != nil {
		g.s.log.Warn("ioctl hook: keep attached", "err", err)
		return
	}
	g.offSince = uint64(ts.Nano())
	if err := g.s.setIoctlOpen(false); err != nil {
		g.s.log.Warn("ioctl hook: detach", "err", err)
	}
	g.stats.Attached = false
	g.stats.Detaches++
}

func (g *ioctlGate) readOpens() {
	defer g.wg.Done()
	var rec ringbuf.Record
	for {
		if err := g.ring.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			if errors.Is(err, ringbuf.ErrFlushed) {
				g.mu.Lock()
				closing := g.closing
				g.mu.Unlock()
				if closing {
					return // drained at close
				}
				continue
			}
			g.s.log.Warn("read perf_event_open ring", "err", err)
			continue
		}
		if len(rec.RawSample) < int(unsafe.Sizeof(sentrySentryPerfOpened{})) {
			g.s.log.Warn("perf_event_open record", "err", fmt.Errorf("%w: %d bytes", ErrRecord, len(rec.RawSample)))
			continue
		}
		g.opened(decode[sentrySentryPerfOpened](rec.RawSample))
	}
}

// opened follows the caller of one perf_event_open: attach the hook, let a
// stopped caller go, and look for an attach made before the hook was on.
func (g *ioctlGate) opened(r *sentrySentryPerfOpened) {
	g.mu.Lock()
	hold := g.beforeAttach
	g.mu.Unlock()
	if hold != nil {
		hold()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		// the agent stops: a caller stopped before is let go, unfollowed
		if r.State == uint32(sentrySentryPerfOpenedStateSENTRY_PERF_OPENED_STOPPED) {
			g.signalPid(r.Pid, r.StartNs/nsecPerTick, unix.SIGCONT)
		}
		return
	}
	if g.only != nil && !g.only(r.Pid) {
		if r.State == uint32(sentrySentryPerfOpenedStateSENTRY_PERF_OPENED_STOPPED) {
			g.signalPid(r.Pid, r.StartNs/nsecPerTick, unix.SIGCONT)
		}
		return
	}
	if r.Pid == g.self || g.s.perfHelpers.is(r.Pid, r.StartNs/nsecPerTick) {
		// The agent's own perf events (its tracepoint hooks) carry its own
		// programs, and the kernel side never stops it. Followed, the agent
		// would hold the hook on for as long as it runs. Its perf-open
		// children (identified by pid and start time) may be stopped: the
		// agent takes their fd stopped and kills them.
		g.stats.Own++
		return
	}
	g.stats.Opens++
	stopped := r.State == uint32(sentrySentryPerfOpenedStateSENTRY_PERF_OPENED_STOPPED)
	if stopped {
		g.stats.Stopped++
	}
	h := g.holders[r.Pid]
	if h == nil {
		h = g.followLocked(r.Pid, r.StartNs/nsecPerTick, true)
	}
	if h == nil {
		// gone before it could be followed: its fds went with it, or to a
		// child or a receiver, which a scan finds; or not followed (table
		// full: g.full keeps the hook)
		g.stats.Gone++
		g.scanLocked()
		// With no other holder found, nothing will ever wake the
		// detach (watchHolders waits on followed processes only): the
		// hook goes off again once this report is handled. A second
		// on-demand agent finds most callers gone, the first having
		// continued them.
		defer func() {
			if len(g.holders) == 0 && !g.full {
				g.detachLocked()
			}
		}()
	} else if len(h.fds) < maxPerfHolderFDs {
		h.fds = append(h.fds, r.Fd)
	} else {
		g.stats.FDsUnqueried++
	}
	if stopped && h != nil {
		h.owed = true
	}
	err := g.attachLocked()
	if err != nil {
		g.s.log.Error("ioctl hook: attach failed", "err", err)
	}
	if stopped {
		sig := unix.SIGCONT
		if err != nil && g.s.enforcing() {
			sig = unix.SIGKILL // fail closed: the caller cannot be let go unseen
		}
		if err == nil {
			// another on-demand agent stopped it too and may have
			// continued it first, with this hook still off: what it
			// attached since is found now
			g.queryLocked(r.Pid, r.Fd, time.Now())
		}
		if h != nil {
			g.signalLocked(h, sig)
			h.owed = false
		} else {
			g.signalPid(r.Pid, r.StartNs/nsecPerTick, sig)
		}
		return
	}
	// the hook was off when the call returned (or went off meanwhile):
	// whatever it attached since is found now that the hook is on
	// (a report that found the hook on, written after the agent began to
	// detach it: the hook may have gone before the caller's ioctl)
	if r.State != uint32(sentrySentryPerfOpenedStateSENTRY_PERF_OPENED_HOOKED) || g.offSince != 0 && r.KtimeNs >= g.offSince {
		g.queryLocked(r.Pid, r.Fd, time.Now())
	}
}

// followLocked opens a pidfd on pid and checks it is the process that
// started at startTicks (0: not checked; a scan that just saw it).
func (g *ioctlGate) followLocked(pid uint32, startTicks uint64, check bool) *perfHolder {
	if len(g.holders) >= maxPerfHolders {
		g.stats.HoldersFull++
		g.full = true
		return nil
	}
	fd, err := unix.PidfdOpen(int(pid), unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil
	}
	if check {
		// the pid may have been reused before pidfd_open
		if got, err := procStartTicks(int(pid)); err != nil || got != startTicks {
			unix.Close(fd)
			return nil
		}
	}
	if err := unix.EpollCtl(g.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(pid)}); err != nil {
		unix.Close(fd)
		g.stats.HoldersFull++
		g.full = true
		return nil
	}
	h := &perfHolder{pid: pid, pidfd: fd}
	g.holders[pid] = h
	return h
}

func (g *ioctlGate) signalLocked(h *perfHolder, sig unix.Signal) {
	if err := unix.PidfdSendSignal(h.pidfd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		g.s.log.Warn("ioctl hook: signal a perf_event_open caller", "pid", h.pid, "signal", sig, "err", err)
	}
}

// signalPid signals a process not followed (exited, or the table full),
// only while pid is still the process that started at startTicks: an
// exited one needs nothing, and a reused pid is someone else.
func (g *ioctlGate) signalPid(pid uint32, startTicks uint64, sig unix.Signal) {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if got, err := procStartTicks(int(pid)); err != nil || got != startTicks {
		return
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		g.s.log.Warn("ioctl hook: signal a perf_event_open caller", "pid", pid, "signal", sig, "err", err)
	}
}

// queryLocked asks the kernel which program, if any, the perf event at
// (pid, fd) runs (BPF_TASK_FD_QUERY, what `bpftool perf` shows) and
// reports it as an attach seen after the fact.
func (g *ioctlGate) queryLocked(pid uint32, fd int32, now time.Time) {
	q, err := taskFDQuery(pid, fd)
	if err != nil || q.progID == 0 {
		return
	}
	g.stats.AfterTheFact++
	ev := &AttachEvent{
		Op: OpPerfSetBPF, Time: now, ProgID: q.progID, AfterTheFact: true,
		Caller: &program.Loader{PID: pid},
		Target: RawTarget{AttachType: 41, FD: uint32(fd), Name: q.name, PerfOffset: q.offset, PerfFound: true},
		Result: AttachDone, FD: int(fd), Verdict: VerdictAllow, Action: ActionNone, RuleIndex: -1,
	}
	ev.Target.PerfType = q.perfType()
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		ev.Caller.Exe = exe
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		ev.Caller.Comm = strings.TrimSpace(string(comm))
	}
	g.s.sendAttach(ev) // never blocks
}

// watchHolders waits on the followed processes' pidfds; when the last one
// exits, a scan looks for other holders before the hook is detached.
func (g *ioctlGate) watchHolders() {
	defer g.wg.Done()
	evs := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(g.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			g.s.log.Error("ioctl hook: wait for perf fd holders", "err", err)
			return
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return
		}
		for _, ev := range evs[:n] {
			if ev.Fd < 0 {
				continue
			}
			if h := g.holders[uint32(ev.Fd)]; h != nil {
				g.dropLocked(h)
			}
		}
		if len(g.holders) == 0 || g.full {
			g.maybeDetachLocked()
		}
		g.mu.Unlock()
	}
}

func (g *ioctlGate) dropLocked(h *perfHolder) {
	unix.EpollCtl(g.epfd, unix.EPOLL_CTL_DEL, h.pidfd, nil)
	unix.Close(h.pidfd)
	delete(g.holders, h.pid)
}

// maybeDetachLocked detaches the hook when a scan finds no process holding
// a perf event fd without a program.
func (g *ioctlGate) maybeDetachLocked() {
	g.scanLocked()
	if len(g.holders) == 0 && !g.full {
		g.detachLocked()
	}
}

// scanLocked follows every process (but the agent) that holds a perf event
// fd on which a program can still be set: one with no program yet
// (BPF_TASK_FD_QUERY: ENOENT). It finds fds inherited, passed over unix
// sockets or taken with pidfd_getfd, and those open before the agent.
func (g *ioctlGate) scanLocked() {
	g.stats.Scans++
	full := false
	self := uint32(os.Getpid())
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid64, err := strconv.ParseUint(p.Name(), 10, 32)
		if err != nil || uint32(pid64) == self {
			continue
		}
		pid := uint32(pid64)
		if g.only != nil && !g.only(pid) {
			continue
		}
		fds := perfFDsOf(pid)
		if len(fds) == 0 {
			continue
		}
		var open []int32
		for _, fd := range fds {
			if _, err := taskFDQuery(pid, fd); errors.Is(err, unix.ENOENT) {
				open = append(open, fd)
			}
		}
		if len(open) == 0 {
			continue
		}
		if g.holders[pid] != nil {
			continue
		}
		h := g.followLocked(pid, 0, false)
		if h == nil {
			full = full || len(g.holders) >= maxPerfHolders
			continue
		}
		g.stats.Adopted++
		if len(open) > maxPerfHolderFDs {
			g.stats.FDsUnqueried += uint64(len(open) - maxPerfHolderFDs)
			open = open[:maxPerfHolderFDs]
		}
		h.fds = open
	}
	g.full = full
}

// perfFDsOf lists the fds of pid that are perf events.
func perfFDsOf(pid uint32) []int32 {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int32
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || target != "anon_inode:[perf_event]" {
			continue
		}
		if fd, err := strconv.ParseInt(e.Name(), 10, 32); err == nil {
			out = append(out, int32(fd))
		}
	}
	return out
}

// taskFD is what BPF_TASK_FD_QUERY says about a perf event fd.
type taskFD struct {
	progID uint32
	fdType uint32 // enum bpf_task_fd_type
	name   string
	offset uint64
	addr   uint64
}

// perfType maps the query's fd type to perf_event_attr.type where one
// is fixed (tracepoints); kprobe and uprobe PMUs have dynamic types.
func (q taskFD) perfType() uint32 {
	if q.fdType == 1 { // BPF_FD_TYPE_TRACEPOINT
		return 2
	}
	return 0
}

// taskFDQuery is bpf(BPF_TASK_FD_QUERY) on fd of process pid.
func taskFDQuery(pid uint32, fd int32) (taskFD, error) {
	var buf [256]byte
	attr := struct {
		pid, fd, flags, bufLen uint32
		buf                    uint64
		progID, fdType         uint32
		probeOffset, probeAddr uint64
	}{pid: pid, fd: uint32(fd), bufLen: uint32(len(buf)), buf: uint64(uintptr(unsafe.Pointer(&buf[0])))}
	const bpfTaskFDQuery = 20
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfTaskFDQuery, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return taskFD{}, errno
	}
	return taskFD{progID: attr.progID, fdType: attr.fdType, name: cString(buf[:]), offset: attr.probeOffset, addr: attr.probeAddr}, nil
}

// close stops following: no caller is stopped from now on, a caller the
// kernel side stopped before gets SIGCONT (the reports in the ring are read
// to the end first), and the pidfds close. Called after the sensor detached
// its perf_event_open programs, so no report is still being written.
func (g *ioctlGate) close() {
	g.mu.Lock()
	again := g.closing
	g.mu.Unlock()
	if again {
		return
	}
	g.mu.Lock()
	if err := g.writeControl(0, 0); err != nil {
		g.s.log.Warn("ioctl hook: stop reporting perf_event_open", "err", err)
	}
	g.closing = true
	g.mu.Unlock()
	// readOpens reads what the ring holds, then returns
	if err := g.ring.Flush(); err != nil {
		g.s.log.Warn("ioctl hook: flush the perf_event_open ring", "err", err)
	}
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	unix.Write(g.wake, binary.LittleEndian.AppendUint64(nil, 1))
	g.wg.Wait()
	g.ring.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, h := range g.holders {
		if h.owed {
			g.signalLocked(h, unix.SIGCONT)
		}
		g.dropLocked(h)
	}
	unix.Close(g.epfd)
	unix.Close(g.wake)
}

func (g *ioctlGate) snapshot() IoctlGateStats {
	g.mu.Lock()
	st := g.stats
	st.Holders = len(g.holders)
	g.mu.Unlock()
	var k sentrySentryIoctlGate
	if err := g.state.Lookup(uint32(1), &k); err == nil {
		st.KernelReported, st.KernelLost, st.StopFailed = k.Reported, k.Lost, k.StopFailed
	}
	return st
}

// IoctlGate says how the ioctl programs are attached and, on demand, what
// the gate did.
func (s *Sensor) IoctlGate() IoctlGateStats {
	if s.ioctlGate == nil {
		return IoctlGateStats{Hook: s.cfg.IoctlHook, Attached: s.cfg.IoctlHook == IoctlHookAlways}
	}
	return s.ioctlGate.snapshot()
}
