package sensor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the test binary re-executed as one of the processes of
// TestIoctlOnDemandTwoAgentsDoNotStopEachOther (TestMain runs them).
const (
	agentHelperEnv  = "EBPF_SENTRY_TEST_ONDEMAND_AGENT" // value: the test's pid
	perfOpenerEnv   = "EBPF_SENTRY_TEST_PERF_OPENER"    // value: a tracepoint id to open
	agentHelperWait = 20 * time.Second                  // the bounded wait that fails on a mutual stop
)

// runTestHelper runs the process env asks for, if any, and exits.
func runTestHelper() {
	if id := os.Getenv(perfOpenerEnv); id != "" {
		os.Exit(perfOpenerMain(id))
	}
	if tp := os.Getenv(agentHelperEnv); tp != "" {
		os.Exit(onDemandAgentMain(tp))
	}
}

// perfOpenerMain is a plain perf_event_open caller: it opens a tracepoint
// perf event and exits.
func perfOpenerMain(id string) int {
	cfg, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: cfg, Sample_type: unix.PERF_SAMPLE_RAW, Sample: 1, Wakeup: 1}
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "perf_event_open:", err)
		return 1
	}
	unix.Close(fd)
	return 0
}

// ppidOf is pid's parent, 0 if it is gone.
func ppidOf(pid uint32) uint32 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.ParseUint(f[1], 10, 32)
	return uint32(p)
}

// onDemandAgentMain runs an on-demand sensor (monitor mode) as an agent of
// its own, driven by lines on stdin:
//
//	go       from now on follow the test's processes and their children
//	         (before: continue and ignore everyone: the other agent's
//	         start-up is not followed, as with two agents started at once)
//	         and hold the first report at the gate, before the hook's attach
//	follow P follow pid P too, even once it has exited and been reaped
//	         (the other agent may continue it first); answers "followed"
//	release  let the held report go on
//	stats    answers "stats" and the gate's counts and its ring's
//	         unread bytes (for the log of a failed run)
//	EOF      close the sensor and exit
//
// It writes "ready" once started, "following" after go, and "armed" once
// its hook has been attached (the count of attaches, not whether it is on
// now: it goes off again when the caller exits, which may be sooner than
// any poll, as seen in the 5.10 VMs under TCG).
func onDemandAgentMain(testPid string) int {
	tpid, err := strconv.ParseUint(testPid, 10, 32)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var mu sync.Mutex
	following := false
	named := map[uint32]bool{} // followed whether or not still alive
	self := uint32(os.Getpid())
	only := func(pid uint32) bool {
		mu.Lock()
		defer mu.Unlock()
		if !following || pid == self {
			return false
		}
		if named[pid] {
			return true
		}
		p := ppidOf(pid)
		return p == uint32(tpid) || p != 0 && ppidOf(p) == uint32(tpid)
	}
	s, err := New(Config{Mode: ModeMonitor, IoctlHook: IoctlHookOnDemand, ioctlGateOnly: only, RingBufferSize: 4 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start sensor:", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	say := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		out.WriteString(line + "\n")
		out.Flush()
	}
	say("ready")
	done := make(chan struct{})
	go func() {
		// "armed" once the hook was on: a count polled, not a delay
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if s.IoctlGate().Attaches > 0 {
				say("armed")
				return
			}
		}
	}()
	held := make(chan struct{})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "go":
			var once sync.Once
			s.ioctlGate.mu.Lock()
			s.ioctlGate.beforeAttach = func() { once.Do(func() { <-held }) }
			s.ioctlGate.mu.Unlock()
			mu.Lock()
			following = true
			mu.Unlock()
			say("following")
		case "release":
			close(held)
		case "stats":
			unread := -1
			if s.ioctlGate != nil {
				unread = s.ioctlGate.ring.AvailableBytes()
			}
			say(fmt.Sprintf("stats gate %+v, ring unread %d bytes", s.IoctlGate(), unread))
		default:
			if pid, ok := strings.CutPrefix(in.Text(), "follow "); ok {
				n, _ := strconv.ParseUint(pid, 10, 32)
				mu.Lock()
				named[uint32(n)] = true
				mu.Unlock()
				say("followed")
			}
		}
	}
	close(done)
	select {
	case <-held:
	default:
		close(held) // a test that failed before its release
	}
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close sensor:", err)
		return 1
	}
	return 0
}

// agentProc is one onDemandAgentMain process.
type agentProc struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  bool
}

func startAgentProc(t *testing.T, name string) *agentProc {
	t.Helper()
	a := &agentProc{name: name, cmd: exec.Command("/proc/self/exe"), lines: make(chan string, 8)}
	a.cmd.Env = append(os.Environ(), agentHelperEnv+"="+strconv.Itoa(os.Getpid()))
	a.cmd.Stderr = os.Stderr
	var err error
	if a.in, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	outR, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	return a
}

// send writes one control line.
func (a *agentProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(a.in, line+"\n"); err != nil {
		t.Fatalf("agent %s: %v", a.name, err)
	}
}

// await waits for the agent to write want.
func (a *agentProc) await(t *testing.T, want string, within time.Duration) {
	t.Helper()
	select {
	case l, ok := <-a.lines:
		if !ok || l != want {
			t.Fatalf("agent %s wrote %q (open %v), want %q", a.name, l, ok, want)
		}
	case <-time.After(within):
		t.Fatalf("agent %s did not write %q within %v (state %c)", a.name, want, within, procState(a.cmd.Process.Pid))
	}
}

// stop continues the agent (it may be stopped), closes its stdin and waits
// for it; one that does not exit within agentHelperWait is killed.
func (a *agentProc) stop(t *testing.T) {
	if a.done {
		return
	}
	a.done = true
	a.cmd.Process.Signal(syscall.SIGCONT)
	a.in.Close()
	exited := make(chan error, 1)
	go func() {
		for range a.lines { // read to EOF before Wait closes the pipe
		}
		exited <- a.cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent %s: %v", a.name, err)
		}
	case <-time.After(agentHelperWait):
		t.Errorf("agent %s did not stop: killed", a.name)
		a.cmd.Process.Kill()
		<-exited
	}
}

// Two on-demand agents on one host must not stop each other for good.
// Both agents (two processes, each an on-demand sensor in monitor mode,
// hook off) see a third process's perf_event_open and stop it; each must
// then attach its hook, which opens perf events, while the other's hook
// is still off. The interleaving is made deterministic: both agents hold
// the report at their gate (before the attach); agent B is let go first
// and the test waits until B is either stopped or has its hook on; then
// agent A is let go. Where an agent opens its perf events from its own
// process, B is stopped by A's gate, then A by B's, and neither continues
// the other nor the third process: the bounded wait for the third process
// fails, and the cleanup continues all three. Each agent must have
// attached its hook and be running, and the third process must have
// exited.
func TestIoctlOnDemandTwoAgentsDoNotStopEachOther(t *testing.T) {
	requireOnDemand(t)
	id := tracepointID(t, "syscalls/sys_enter_getdents64")
	a := startAgentProc(t, "A")
	var agents []*agentProc
	var opener *exec.Cmd
	openerDone := make(chan error, 1)
	t.Cleanup(func() {
		// continue everything this test started, then stop it
		for _, ag := range agents {
			ag.cmd.Process.Signal(syscall.SIGCONT)
		}
		if opener != nil {
			opener.Process.Signal(syscall.SIGCONT)
		}
		for _, ag := range agents {
			ag.stop(t)
		}
		if opener != nil {
			select {
			case <-openerDone:
			case <-time.After(agentHelperWait):
				opener.Process.Kill()
				<-openerDone
			}
		}
	})
	agents = append(agents, a)
	a.await(t, "ready", eventWait)
	b := startAgentProc(t, "B")
	agents = append(agents, b)
	b.await(t, "ready", eventWait)
	a.send(t, "go")
	b.send(t, "go")
	a.await(t, "following", eventWait)
	b.await(t, "following", eventWait)
	for _, ag := range agents {
		ag.send(t, "stats")
		select {
		case l := <-ag.lines:
			t.Logf("agent %s before the caller: %s", ag.name, l)
		case <-time.After(eventWait):
			t.Fatalf("agent %s: no stats within %v", ag.name, eventWait)
		}
	}

	opener = exec.Command("/proc/self/exe")
	opener.Env = append(os.Environ(), perfOpenerEnv+"="+strconv.FormatUint(id, 10))
	opener.Stderr = os.Stderr
	if err := opener.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { openerDone <- opener.Wait() }()
	// stopped by both gates (each holds its report)
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, opener.Process.Pid, &info, unix.WSTOPPED|unix.WNOWAIT, nil); err != nil {
		t.Fatalf("waitid: %v", err)
	}
	for _, ag := range agents {
		ag.send(t, "follow "+strconv.Itoa(opener.Process.Pid))
		ag.await(t, "followed", eventWait)
	}

	b.send(t, "release")
	// B either is stopped (by A's gate) or has its hook on
	deadline := time.Now().Add(eventWait)
	bArmed := false
	for !bArmed && procState(b.cmd.Process.Pid) != 'T' {
		select {
		case l := <-b.lines:
			if l != "armed" {
				t.Fatalf("agent B wrote %q", l)
			}
			bArmed = true
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			logAgentsState(t, agents, opener.Process.Pid)
			// its goroutines, for the log (it dies of the SIGQUIT)
			b.cmd.Process.Signal(syscall.SIGQUIT)
			t.Fatal("agent B neither stopped nor attached its hook")
		}
	}
	if !bArmed {
		t.Logf("agent B is stopped (by A's gate) before its hook is on")
	} else {
		// B's hook went on while A's gate, held with its hook off,
		// stopped every perf_event_open on the host but A's own: B got
		// past A's stop of its perf_event_open
		select {
		case l := <-a.lines:
			t.Fatalf("agent A wrote %q while held", l)
		default:
		}
		if st := procState(a.cmd.Process.Pid); st == 'T' {
			t.Fatal("agent A is stopped while held")
		}
	}
	a.send(t, "release")

	select {
	case err := <-openerDone:
		openerDone <- err // for the cleanup
		if err != nil {
			t.Fatalf("perf_event_open caller: %v", err)
		}
	case <-time.After(agentHelperWait):
		logAgentsState(t, agents, opener.Process.Pid)
		t.Fatalf("the perf_event_open caller was not continued within %v: agent A %c, agent B %c, caller %c (T: stopped; the agents stopped each other)",
			agentHelperWait, procState(a.cmd.Process.Pid), procState(b.cmd.Process.Pid), procState(opener.Process.Pid))
	}
	a.await(t, "armed", agentHelperWait)
	if !bArmed {
		b.await(t, "armed", agentHelperWait)
	}
	for _, ag := range agents {
		if st := procState(ag.cmd.Process.Pid); st == 'T' {
			t.Errorf("agent %s is stopped", ag.name)
		}
	}
}

// logAgentsState logs, for a failed run, each agent's gate counts (on its
// stderr), its state, the programs on its perf event fds, and the caller's
// state.
func logAgentsState(t *testing.T, agents []*agentProc, caller int) {
	t.Helper()
	t.Logf("caller %d: state %c", caller, procState(caller))
	for _, ag := range agents {
		pid := ag.cmd.Process.Pid
		var progs []string
		for _, fd := range perfFDsOf(uint32(pid)) {
			q, err := taskFDQuery(uint32(pid), fd)
			progs = append(progs, fmt.Sprintf("fd %d: prog %d %q (%v)", fd, q.progID, q.name, err))
		}
		t.Logf("agent %s (pid %d): state %c; perf fds: %s", ag.name, pid, procState(pid), strings.Join(progs, "; "))
		if _, err := io.WriteString(ag.in, "stats\n"); err != nil {
			continue
		}
	read:
		for {
			select {
			case l, ok := <-ag.lines:
				if !ok {
					break read
				}
				t.Logf("agent %s wrote %q", ag.name, l)
				if strings.HasPrefix(l, "stats") {
					break read
				}
			case <-time.After(10 * time.Second):
				t.Logf("agent %s: no stats within 10s", ag.name)
				break read
			}
		}
	}
}
