package sensor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// barrierAttacher is bpfattach -ioctl -barrier started as a child: it
// writes "opened" after its perf_event_open and "attached" after its
// ioctl, each time waiting for the test's go.
type barrierAttacher struct {
	cmd    *exec.Cmd
	where  *bufio.Reader
	goW    *os.File
	out    bytes.Buffer
	waited bool
}

func startBarrierAttacher(t *testing.T, tp string) *barrierAttacher {
	t.Helper()
	whereR, whereW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &barrierAttacher{cmd: exec.Command(buildAttacher(t), "-builtin", "tracepoint", "-tracepoint", tp, "-ioctl", "-barrier"),
		where: bufio.NewReader(whereR), goW: goW}
	a.cmd.Stdout = &a.out
	a.cmd.ExtraFiles = []*os.File{whereW, goR} // fds 3 and 4
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	whereW.Close()
	goR.Close()
	t.Cleanup(func() {
		goW.Close()
		whereR.Close()
		if !a.waited {
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
	})
	return a
}

// at waits for the attacher to say it reached where.
func (a *barrierAttacher) at(t *testing.T, where string) {
	t.Helper()
	line, err := a.where.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != where {
		t.Fatalf("attacher: %q, %v; want %q", line, err, where)
	}
}

func (a *barrierAttacher) proceed(t *testing.T) {
	t.Helper()
	if _, err := a.goW.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
}

// wait reaps the attacher and decodes its result.
func (a *barrierAttacher) wait(t *testing.T) attachRun {
	t.Helper()
	a.goW.Close()
	err := a.cmd.Wait()
	a.waited = true
	if ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return attachRun{killed: true, PID: a.cmd.Process.Pid}
	}
	var r attachRun
	if jerr := json.Unmarshal(a.out.Bytes(), &r); jerr != nil {
		t.Fatalf("bpfattach: %v (%v): %s", jerr, err, a.out.String())
	}
	return r
}

// attachLog keeps every attach event of the sensor from its start: the
// test waits at barriers while other processes' attaches arrive, and an
// Attaches channel nobody reads drops them (attach_undelivered).
type attachLog struct {
	mu  sync.Mutex
	evs []*AttachEvent
}

func logAttaches(s *Sensor) *attachLog {
	l := &attachLog{}
	go func() {
		for ev := range s.Attaches() {
			l.mu.Lock()
			l.evs = append(l.evs, ev)
			l.mu.Unlock()
		}
	}()
	go func() {
		for range s.Events() {
		}
	}()
	return l
}

// of waits until done holds for the events of pid, or the timeout.
func (l *attachLog) of(pid int, timeout time.Duration, done func([]*AttachEvent) bool) []*AttachEvent {
	deadline := time.Now().Add(timeout)
	for {
		var out []*AttachEvent
		l.mu.Lock()
		for _, ev := range l.evs {
			if int(ev.Caller.PID) == pid {
				out = append(out, ev)
			}
		}
		l.mu.Unlock()
		if done(out) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGate waits until the gate's state satisfies ok (the pidfd of an
// exiting holder is read asynchronously).
func waitGate(t *testing.T, s *Sensor, what string, ok func(IoctlGateStats) bool) IoctlGateStats {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		st := s.IoctlGate()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("ioctl gate: %s never happened: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childOfTest limits the gate to the test's own children (the attachers):
// on a shared host other engineers' sensors open perf events too, and
// would keep the hook attached as long as they run.
func childOfTest(pid uint32) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 1 && f[1] == strconv.Itoa(os.Getpid())
}

// onDemandAttached counts the ioctl programs attached that go on and off
// with the on-demand hook (an lsm/file_ioctl gate that cannot be attached
// twice stays attached while enforcing: not one of them).
func onDemandAttached(s *Sensor) int {
	s.armMu.Lock()
	defer s.armMu.Unlock()
	n := 0
	for _, a := range s.armable {
		if a.p.onDemand && a.l != nil {
			n++
		}
	}
	return n
}

func requireOnDemand(t *testing.T) {
	t.Helper()
	testutils.SkipOnOldKernel(t, "5.8", "the on-demand ioctl hook reports perf_event_open on a BPF ring buffer")
	if err := OnDemandIoctlSupport(); err != nil {
		t.Fatalf("on-demand ioctl hook unsupported on a kernel ≥ 5.8: %v", err)
	}
}

// With the on-demand hook no program is on ioctl while no process holds a
// perf event fd a program could still be set on; a perf_event_open attaches
// the hook, the attach through PERF_EVENT_IOC_SET_BPF is reported as with
// the hook always on (monitor mode: by the exit program; enforce mode: a
// blocked target kills or is denied), and the hook is detached when the
// last holder exits.
func TestIoctlAttachOnDemandIsReportedAndBlocked(t *testing.T) {
	requireOnDemand(t)
	s := startSensor(t, Config{Mode: ModeMonitor, IoctlHook: IoctlHookOnDemand, ioctlGateOnly: childOfTest})
	log := logAttaches(s)
	if s.AttachCoverage() != "all" {
		t.Fatalf("attach monitoring: %s", s.AttachCoverage())
	}
	if st := s.IoctlGate(); st.Hook != IoctlHookOnDemand || st.Attached != (st.Holders > 0) || st.Attached != (len(s.armedLinks()) > 0) {
		t.Fatalf("at start: gate %+v, %d ioctl programs attached", st, len(s.armedLinks()))
	}
	tp := "syscalls/sys_enter_getdents64"
	args := []string{"-builtin", "tracepoint", "-tracepoint", tp, "-ioctl"}
	find := func(r attachRun) func([]*AttachEvent) *AttachEvent {
		return func(evs []*AttachEvent) *AttachEvent {
			for _, ev := range evs {
				if ev.Op == OpPerfSetBPF && ev.Result != AttachUnknown && ev.Target.PerfFound && (r.ProgID == 0 || ev.ProgID == r.ProgID) {
					return ev
				}
			}
			return nil
		}
	}
	detached := func(st IoctlGateStats) bool { return st.Holders == 0 && !st.Attached }
	t.Run("reported in monitor mode, then detached", func(t *testing.T) {
		before := s.IoctlGate()
		// the caller is stopped at its perf_event_open until the hook is
		// on (the window itself: TestIoctlOnDemandWindow); the test waits
		// for the hook before letting the attacher's ioctl run all the same
		a := startBarrierAttacher(t, tp)
		a.at(t, "opened")
		waitGate(t, s, "attach on the attacher's perf_event_open", func(st IoctlGateStats) bool { return st.Attached && st.Opens > before.Opens })
		a.proceed(t)
		a.at(t, "attached")
		a.proceed(t)
		r := a.wait(t)
		evs := log.of(r.PID, eventWait, func(evs []*AttachEvent) bool { return find(r)(evs) != nil })
		ev := find(r)(evs)
		if ev == nil {
			l, _ := s.Losses()
			t.Fatalf("no %s event among %d (attacher %+v, gate %+v) losses %v", OpPerfSetBPF, len(evs), r, s.IoctlGate(), l)
		}
		if r.killed || r.Error != "" || ev.Result != AttachDone || ev.AfterTheFact || ev.Target.PerfConfig != tracepointID(t, tp) {
			t.Errorf("attacher %+v; event result %s after-the-fact %v target %+v", r, ev.Result, ev.AfterTheFact, ev.Target)
		}
		st := waitGate(t, s, "detach after the last holder exited", detached)
		if st.Attaches <= before.Attaches || st.Detaches <= before.Detaches || st.Stopped <= before.Stopped {
			t.Errorf("gate before %+v, after %+v: want the caller stopped, the hook attached and detached", before, st)
		}
		if n := len(s.armedLinks()); n != 0 {
			t.Errorf("detached gate: %d ioctl programs attached", n)
		}
	})
	if err := s.SetAttachBlocks([]AttachBlock{{Kind: KeyTracepointID, Value: tracepointID(t, tp), Rule: 0}}, []string{"no-getdents-attach-ioctl"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMode(ModeEnforce); err != nil {
		t.Fatal(err)
	}
	t.Run("blocked in enforce mode, then detached", func(t *testing.T) {
		r := runAttacher(t, args...)
		evs := log.of(r.PID, eventWait, func(evs []*AttachEvent) bool { return find(attachRun{})(evs) != nil })
		ev := find(attachRun{})(evs)
		if ev == nil {
			t.Fatalf("no %s event among %d (attacher %+v, gate %+v)", OpPerfSetBPF, len(evs), r, s.IoctlGate())
		}
		wantBlocked(t, s, r, ev)
		st := waitGate(t, s, "detach after the blocked attacher exited", detached)
		if st.Stopped == 0 {
			t.Errorf("gate %+v: the attacher's perf_event_open did not stop it while the hook was off", st)
		}
	})
	if err := s.SetMode(ModeMonitor); err != nil {
		t.Fatal(err)
	}
}

func wantBlocked(t *testing.T, s *Sensor, r attachRun, ev *AttachEvent) {
	t.Helper()
	if ev.Verdict != VerdictBlock || ev.RuleID != "no-getdents-attach-ioctl" {
		t.Errorf("verdict %s rule %q, want block by no-getdents-attach-ioctl", ev.Verdict, ev.RuleID)
	}
	switch s.Enforcer() {
	case EnforcerDeny:
		if r.killed || ev.Action != ActionDenied || ev.Result != AttachFailed || ev.Errno != int(syscall.EPERM) {
			t.Errorf("deny: attacher %+v, event action %s result %s errno %d; want EPERM, denied", r, ev.Action, ev.Result, ev.Errno)
		}
	default:
		if !r.killed || ev.Action != ActionKilled || ev.Result != AttachKilled {
			t.Errorf("kill: attacher %+v, event action %s result %s; want killed", r, ev.Action, ev.Result)
		}
	}
}

// The window between a perf_event_open and the hook's attach, made
// deterministic: the gate is held before it attaches the hook (the report
// is read, the attach not yet done) and the attacher waits at a barrier
// the test owns between its perf_event_open and its ioctl.
//
// In both modes the attacher is stopped at its perf_event_open's exit (the
// test sees it stopped with waitid(WSTOPPED) while the gate is held) and
// continued only once the hook is on: monitor mode then reports its attach
// at the call, enforce mode stops its blocked ioctl. Where the stop fails
// (here: stops turned off), the attacher's ioctl runs inside the window,
// unseen by any ioctl program; once the hook is attached the gate queries
// the attacher's perf fd (BPF_TASK_FD_QUERY) and reports the attach after
// the fact.
func TestIoctlOnDemandWindow(t *testing.T) {
	requireOnDemand(t)
	s := startSensor(t, Config{Mode: ModeMonitor, IoctlHook: IoctlHookOnDemand, ioctlGateOnly: childOfTest})
	log := logAttaches(s)
	tp := "syscalls/sys_enter_getdents64"
	hold := func() (release func()) {
		held := make(chan struct{})
		s.ioctlGate.mu.Lock()
		s.ioctlGate.beforeAttach = func() { <-held }
		s.ioctlGate.mu.Unlock()
		return func() {
			s.ioctlGate.mu.Lock()
			s.ioctlGate.beforeAttach = nil
			s.ioctlGate.mu.Unlock()
			close(held)
		}
	}
	// stoppedUntilTheHook starts an attacher with the gate held, waits for
	// it to be stopped at its perf_event_open's exit, checks that no ioctl
	// program is attached, then lets the gate attach the hook (which
	// continues the attacher).
	stoppedUntilTheHook := func(t *testing.T) *barrierAttacher {
		t.Helper()
		release := hold()
		a := startBarrierAttacher(t, tp)
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, a.cmd.Process.Pid, &info, unix.WSTOPPED|unix.WNOWAIT, nil); err != nil {
			release()
			t.Fatalf("waitid: %v", err)
		}
		stopped := onDemandAttached(s) == 0
		release()
		if !stopped {
			t.Fatal("the hook was attached while the gate was held")
		}
		a.at(t, "opened") // continued by the gate once the hook is on
		return a
	}
	setStops := func(on bool) {
		g := s.ioctlGate
		g.mu.Lock()
		defer g.mu.Unlock()
		g.stop = 0
		if on {
			g.stop = 1
		}
		armed := uint32(0)
		if g.stats.Attached {
			armed = 1
		}
		if err := g.writeControl(1, armed); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("monitor: the caller is stopped until the hook is on, its attach seen at the call", func(t *testing.T) {
		waitGate(t, s, "a detached hook to start from", func(st IoctlGateStats) bool { return !st.Attached })
		a := stoppedUntilTheHook(t)
		pid := a.cmd.Process.Pid
		a.proceed(t) // the ioctl, with the hook on
		a.at(t, "attached")
		a.proceed(t)
		r := a.wait(t)
		if r.Error != "" || r.killed {
			t.Fatalf("attacher: %+v", r)
		}
		evs := log.of(pid, eventWait, func(evs []*AttachEvent) bool {
			for _, ev := range evs {
				if ev.Op == OpPerfSetBPF && ev.Result != AttachUnknown {
					return true
				}
			}
			return false
		})
		var ev *AttachEvent
		for _, e := range evs {
			if e.Op == OpPerfSetBPF && e.Result != AttachUnknown {
				ev = e
			}
		}
		if ev == nil {
			t.Fatalf("no %s event among %d (attacher %+v, gate %+v)", OpPerfSetBPF, len(evs), r, s.IoctlGate())
		}
		if ev.AfterTheFact || ev.ProgID != r.ProgID || ev.Result != AttachDone || ev.Target.PerfConfig != tracepointID(t, tp) {
			t.Errorf("event: after the fact %v, prog %d (want %d), result %s, target %+v; want seen at the call, done", ev.AfterTheFact, ev.ProgID, r.ProgID, ev.Result, ev.Target)
		}
	})
	t.Run("monitor, the stop failed: an attach inside the window is reported after the fact", func(t *testing.T) {
		waitGate(t, s, "a detached hook to start from", func(st IoctlGateStats) bool { return !st.Attached })
		setStops(false)
		defer setStops(true)
		release := hold()
		a := startBarrierAttacher(t, tp)
		a.at(t, "opened")
		if len(s.armedLinks()) != 0 {
			release()
			t.Fatal("the hook is attached while the gate is held")
		}
		a.proceed(t) // the ioctl, with no program on ioctl
		a.at(t, "attached")
		release() // the hook attaches; the attacher still holds its perf fd
		pid := a.cmd.Process.Pid
		evs := log.of(pid, eventWait, func(evs []*AttachEvent) bool {
			for _, ev := range evs {
				if ev.AfterTheFact {
					return true
				}
			}
			return false
		})
		a.proceed(t)
		r := a.wait(t)
		if r.Error != "" || r.killed {
			t.Fatalf("attacher: %+v", r)
		}
		var ev *AttachEvent
		for _, e := range evs {
			if e.AfterTheFact {
				ev = e
			} else if e.Op == OpPerfSetBPF {
				t.Errorf("an ioctl program saw the attach made before it was attached: %+v", e)
			}
		}
		if ev == nil {
			t.Fatalf("no after-the-fact event among %d (gate %+v)", len(evs), s.IoctlGate())
		}
		if ev.Op != OpPerfSetBPF || ev.ProgID != r.ProgID || ev.Result != AttachDone || ev.Target.PerfType != 2 || ev.Target.Name != "sys_enter_getdents64" {
			t.Errorf("after-the-fact event: op %s prog %d (want %d) result %s target %+v", ev.Op, ev.ProgID, r.ProgID, ev.Result, ev.Target)
		}
	})
	if err := s.SetAttachBlocks([]AttachBlock{{Kind: KeyTracepointID, Value: tracepointID(t, tp), Rule: 0}}, []string{"no-getdents-attach-ioctl"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMode(ModeEnforce); err != nil {
		t.Fatal(err)
	}
	defer s.SetMode(ModeMonitor)
	t.Run("enforce: the caller is stopped until the hook is on", func(t *testing.T) {
		waitGate(t, s, "a detached hook to start from", func(st IoctlGateStats) bool { return !st.Attached })
		a := stoppedUntilTheHook(t)
		pid := a.cmd.Process.Pid
		a.proceed(t) // the blocked ioctl
		r := a.wait(t)
		evs := log.of(pid, eventWait, func(evs []*AttachEvent) bool {
			for _, ev := range evs {
				if ev.Op == OpPerfSetBPF && ev.Result != AttachUnknown {
					return true
				}
			}
			return false
		})
		var ev *AttachEvent
		for _, e := range evs {
			if e.Op == OpPerfSetBPF && e.Result != AttachUnknown {
				ev = e
			}
		}
		if ev == nil {
			t.Fatalf("no %s event among %d (attacher %+v, gate %+v)", OpPerfSetBPF, len(evs), r, s.IoctlGate())
		}
		if ev.AfterTheFact {
			t.Errorf("enforce mode: the attach was seen after the fact, not at the call")
		}
		wantBlocked(t, s, r, ev)
	})
}

// A caller the gate stopped is continued when the agent stops, in either
// mode: the report is handled while the agent stops (held until then),
// which lets the caller go without attaching the hook.
func TestIoctlOnDemandCloseContinuesStoppedCaller(t *testing.T) {
	requireOnDemand(t)
	for _, tc := range []struct {
		name string
		mode Mode
	}{{"monitor", ModeMonitor}, {"enforce", ModeEnforce}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSensor(t, Config{Mode: tc.mode, IoctlHook: IoctlHookOnDemand, ioctlGateOnly: childOfTest})
			waitGate(t, s, "a detached hook to start from", func(st IoctlGateStats) bool { return !st.Attached })
			held := make(chan struct{})
			s.ioctlGate.mu.Lock()
			s.ioctlGate.beforeAttach = func() { <-held }
			s.ioctlGate.mu.Unlock()
			a := startBarrierAttacher(t, "syscalls/sys_enter_getdents64")
			pid := a.cmd.Process.Pid
			var info unix.Siginfo
			if err := unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED|unix.WNOWAIT, nil); err != nil {
				close(held)
				t.Fatalf("waitid: %v", err)
			}
			closed := make(chan struct{})
			go func() { s.Close(); close(closed) }()
			for closing := false; !closing; {
				s.ioctlGate.mu.Lock()
				closing = s.ioctlGate.closing
				s.ioctlGate.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
			close(held) // the report held finds the agent stopping
			<-closed
			a.at(t, "opened") // continued
			a.proceed(t)
			a.proceed(t)
			if r := a.wait(t); r.killed || r.Error != "" {
				t.Errorf("attacher after the agent stopped: %+v", r)
			}
		})
	}
}

// The agent's own perf events (the tracepoint hooks it attaches after the
// gate starts, before the kernel side knows the agent's tgid) are reported
// but never followed: followed, the agent would keep the ioctl hook
// attached for as long as it runs, and on-demand would mean always. The
// gate here follows only the agent's own process, so any holder is the
// agent.
func TestIoctlOnDemandIgnoresTheAgentsOwnPerfEvents(t *testing.T) {
	requireOnDemand(t)
	self := uint32(os.Getpid())
	s := startSensor(t, Config{Mode: ModeMonitor, IoctlHook: IoctlHookOnDemand, ioctlGateOnly: func(pid uint32) bool { return pid == self }})
	st := waitGate(t, s, "every perf_event_open report handled", func(st IoctlGateStats) bool {
		return st.KernelReported > 0 && st.Own+st.Opens >= st.KernelReported
	})
	if st.Own == 0 || st.Holders != 0 || st.Attached || st.Stopped != 0 {
		t.Errorf("gate %+v: want the agent's own perf_event_open results counted as its own, none followed, the hook off", st)
	}
	if n := len(s.armedLinks()); n != 0 {
		t.Errorf("%d ioctl programs attached after the agent's own perf_event_open results", n)
	}
}

// A caller that is gone when its report is handled (killed, or continued
// by another on-demand agent and exited) leaves nothing to follow: the
// hook must not stay attached. Before, it stayed on until some other
// followed process exited, which with two agents is the second one after
// nearly every short-lived perf_event_open caller. The report is held
// until the caller, stopped by the gate, has been killed and reaped.
func TestIoctlOnDemandGoneCallerLeavesTheHookOff(t *testing.T) {
	requireOnDemand(t)
	id := tracepointID(t, "syscalls/sys_enter_getdents64")
	var named atomic.Uint32
	s := startSensor(t, Config{Mode: ModeMonitor, IoctlHook: IoctlHookOnDemand, ioctlGateOnly: func(pid uint32) bool { return pid == named.Load() }})
	waitGate(t, s, "a detached hook to start from", func(st IoctlGateStats) bool { return !st.Attached })
	held := make(chan struct{})
	s.ioctlGate.mu.Lock()
	s.ioctlGate.beforeAttach = func() { <-held }
	s.ioctlGate.mu.Unlock()
	release := sync.OnceFunc(func() { close(held) })
	t.Cleanup(release)
	caller := exec.Command("/proc/self/exe")
	caller.Env = append(os.Environ(), perfOpenerEnv+"="+strconv.FormatUint(id, 10))
	caller.Stderr = os.Stderr
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, caller.Process.Pid, &info, unix.WSTOPPED|unix.WNOWAIT, nil); err != nil {
		caller.Process.Kill()
		caller.Wait()
		t.Fatalf("waitid: %v", err)
	}
	named.Store(uint32(caller.Process.Pid))
	caller.Process.Kill()
	caller.Wait() // reaped: gone
	before := s.IoctlGate()
	release()
	// Gone is counted in the same locked step that attaches (or not) and
	// lets the caller go: once it is, the step is over
	st := waitGate(t, s, "the gone caller's report handled", func(st IoctlGateStats) bool { return st.Gone > before.Gone })
	if st.Attached || st.Holders != 0 {
		t.Errorf("gate %+v after a report of a gone caller: want the hook off, nobody followed", st)
	}
	if n := onDemandAttached(s); n != 0 {
		t.Errorf("%d ioctl programs attached after a report of a gone caller", n)
	}
}
