package sensor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// runBpftool runs bpftool and says whether SIGKILL ended it.
func runBpftool(t *testing.T, bpftool string, args ...string) (out string, killed bool, err error) {
	t.Helper()
	b, err := exec.Command(bpftool, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return string(b), true, err
		}
	}
	return string(b), false, err
}

// nextAttempt waits for the sensor's report of an access attempt.
func nextAttempt(t *testing.T, s *Sensor, within time.Duration) (AccessAttempt, bool) {
	t.Helper()
	select {
	case a := <-s.AccessAttempts():
		return a, true
	case <-time.After(within):
		return AccessAttempt{}, false
	}
}

// In enforce mode another process cannot write the sentry's maps:
// `bpftool map update` on the staged config map is killed when it writes
// (syscall hooks; LSM hooks: refused), the config the judges read stays as
// the agent wrote it, and the attempt is reported with who and what. Read
// access stays open: `bpftool map show` works (it asks for its fd with no
// flags), and so do the agent's own writes.
func TestOtherProcessCannotWriteTheSentrysMaps(t *testing.T) {
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		testutils.SkipOrFail(t, "no bpftool to tamper with: "+err.Error())
	}
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	info, err := s.coll.Maps[sentryMapConfigStaged].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()

	out, killed, err := runBpftool(t, bpftool, "map", "show", "id", fmt.Sprint(id))
	if err != nil || killed || !strings.Contains(out, "name config_staged") {
		t.Fatalf("bpftool map show of the sentry's config (read-only): killed=%v %v\n%s", killed, err, out)
	}

	value := strings.Fields(strings.Repeat("0 ", int(info.ValueSize)))
	args := append([]string{"map", "update", "id", fmt.Sprint(id), "key", "0", "0", "0", "0", "value"}, value...)
	out, killed, err = runBpftool(t, bpftool, args...)
	wantAction := ActionKilled
	if s.Hook().IsLSM() {
		wantAction = ActionDenied
		if err == nil || killed {
			t.Fatalf("hook %s: bpftool map update on the sentry's config was not refused: killed=%v %v\n%s", s.Hook(), killed, err, out)
		}
	} else if !killed {
		t.Fatalf("bpftool map update on the sentry's config was not killed: %v\n%s", err, out)
	}
	a, ok := nextAttempt(t, s, 10*time.Second)
	if !ok {
		t.Fatal("no access attempt reported")
	}
	if a.Command != "BPF_MAP_UPDATE_ELEM" || a.Object != "map" || a.ObjectID != uint32(id) || a.Action != wantAction || a.UID != 0 || a.PID == 0 {
		t.Fatalf("attempt %+v, want BPF_MAP_UPDATE_ELEM on map %d, %s", a, id, wantAction)
	}
	t.Logf("reported: %s", a)
	if got, err := s.CheckIntegrity(); err != nil || len(got) != 0 {
		t.Fatalf("config after the refused update: %+v %v", got, err)
	}
	// The agent's own writes are not attempts.
	if err := s.SetMode(ModeEnforce); err != nil {
		t.Fatal(err)
	}
	if a, ok := nextAttempt(t, s, 200*time.Millisecond); ok {
		t.Fatalf("the agent's own config write reported: %+v", a)
	}
}

// A write-only fd on one of the sentry's maps, asked for by id from another
// process, is stopped (killed before the call runs, on the syscall hooks)
// and reported; a read-only one is given.
func TestWriteOnlyFdOnTheSentrysMapIsStopped(t *testing.T) {
	testutils.RequireRoot(t, "the sensor")
	if os.Getenv(kernelEnv) != "" {
		t.Skip("needs a C compiler, which matrix VMs do not have")
	}
	helper := buildSetTid(t)
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	info, err := s.coll.Maps[sentryMapRules].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	const rdonly, wronly = 1 << 3, 1 << 4
	if out, err := exec.Command(helper, "getfd", fmt.Sprint(id), fmt.Sprint(rdonly)).CombinedOutput(); err != nil {
		t.Fatalf("read-only fd on the sentry's rules map: %v\n%s", err, out)
	}
	if a, ok := nextAttempt(t, s, 200*time.Millisecond); ok {
		t.Fatalf("a read-only fd reported: %+v", a)
	}
	cmd := exec.Command(helper, "getfd", fmt.Sprint(id), fmt.Sprint(wronly))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 || !strings.Contains(ee.String(), "killed") {
		t.Fatalf("write-only fd on the sentry's rules map: %v\n%s", err, out)
	}
	a, ok := nextAttempt(t, s, 10*time.Second)
	if !ok || a.Command != "BPF_MAP_GET_FD_BY_ID" || a.ObjectID != uint32(id) || a.Action != ActionKilled || a.PID != uint32(cmd.Process.Pid) {
		t.Fatalf("attempt %+v (reported %v), want BPF_MAP_GET_FD_BY_ID on map %d by %d, killed", a, ok, id, cmd.Process.Pid)
	}
}

// The same attack without bpftool (the matrix VMs have none): the test
// loader gets an fd on the staged config by id and writes it. Syscall
// hooks: killed; LSM hooks: the write is refused (EPERM) and the loader
// lives. Either way the config the judges read is untouched and the attempt
// is reported.
func TestMapWriteByAnotherProcessIsStopped(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	info, err := s.coll.Maps[sentryMapConfigStaged].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	pid, wait := startLoader(t, "-map-write-id", fmt.Sprint(id), "-value-size", fmt.Sprint(info.ValueSize))
	run := wait()
	wantAction := ActionKilled
	if s.Hook().IsLSM() {
		wantAction = ActionDenied
		if run.killed || len(run.results) != 1 || run.results[0].Ret != -1 {
			t.Fatalf("hook %s: the write was not refused: killed=%v %+v", s.Hook(), run.killed, run.results)
		}
	} else if !run.killed {
		t.Fatalf("the writer of the sentry's config was not killed: %+v", run.results)
	}
	a, ok := nextAttempt(t, s, 10*time.Second)
	if !ok || a.Command != "BPF_MAP_UPDATE_ELEM" || a.ObjectID != uint32(id) || a.Action != wantAction || a.PID != uint32(pid) {
		t.Fatalf("attempt %+v (reported %v), want BPF_MAP_UPDATE_ELEM on map %d by %d, %s", a, ok, id, pid, wantAction)
	}
	if got, err := s.CheckIntegrity(); err != nil || len(got) != 0 {
		t.Fatalf("config after the refused write: %+v %v", got, err)
	}
}

// Another process can neither attach to the sentry's programs nor stop
// the agent with a signal. One sensor serves both halves (a sensor start
// costs most of a minute in the matrix VMs).
//
// Attaching: an fentry or freplace load whose attach_prog_fd is one of
// its programs, or a BPF_LINK_CREATE whose target_fd is, is killed at the
// syscall's entry (syscall hooks: before the kernel's own checks, which
// here refuse fentry anyway) or refused with EPERM (LSM hooks, lsm/bpf),
// and reported with the program's id. The fd itself was asked for by id,
// as read access allows.
//
// Signals: from another process (not the agent's parent, not init),
// SIGTERM is refused with EPERM on LSM hooks when the signal guard is on
// (enforce mode), and reported as denied; the syscall hooks cannot stop
// it and report it before it lands (the test process, the agent here,
// catches it). Either way the report names the signal, the agent and the
// sender.
func TestSentrysProgramsAndAgentAreGuarded(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t), GuardSignals: true})
	t.Run("attach", func(t *testing.T) { attachingToTheSentrysProgramsIsStopped(t, s) })
	t.Run("signal", func(t *testing.T) { signalsToTheAgentAreGuarded(t, s) })
	t.Run("not a link", func(t *testing.T) { aProgramFdIsNotTakenForTheSentrysLink(t, s) })
}

// BPF_LINK_DETACH on a program's fd, the program loaded with one of the
// sentry's link ids as its expected_attach_type (a socket filter takes
// any; it sits where a struct bpf_link keeps its id): the guard checks the
// file is a link (its f_op, as the attach hook does) before reading an id
// from it, so the caller gets the kernel's EINVAL, is not stopped, and no
// attempt is reported; BPF_LINK_DETACH on that link itself, made after
// it, is stopped and reported.
func aProgramFdIsNotTakenForTheSentrysLink(t *testing.T, s *Sensor) {
	var linkID uint32
	for _, l := range s.links {
		if info, err := l.Info(); err == nil && info.ID != 0 {
			linkID = uint32(info.ID)
			break
		}
	}
	if linkID == 0 {
		// every program of the sensor's is attached through a perf
		// event, as the tracepoint hook's are before 5.15: no BPF link
		// of the sensor's exists to pose as or to guard
		testutils.SkipOnOldKernel(t, "5.15", "a BPF link of the tracepoint hook's (perf-event links)")
		t.Fatal("no link id of the sensor's")
	}
	fake, wait := startLoader(t, "-fake-link-id", fmt.Sprint(linkID))
	run := wait()
	if run.killed || len(run.results) != 1 || run.results[0].Ret != -1 || !strings.Contains(run.results[0].Error, "invalid argument") {
		t.Fatalf("BPF_LINK_DETACH on a program fd posing as link %d: killed=%v %+v; want the kernel's EINVAL", linkID, run.killed, run.results)
	}
	// the real link after it: still stopped, and reported (attempts are
	// reported in order, so the fake's would have come first)
	real, wait := startLoader(t, "-detach-link-id", fmt.Sprint(linkID))
	run = wait()
	wantAction := ActionKilled
	if s.Hook().IsLSM() {
		wantAction = ActionDenied
		if run.killed || len(run.results) != 1 || !strings.Contains(run.results[0].Error, "operation not permitted") {
			t.Fatalf("hook %s: BPF_LINK_DETACH of the sentry's link %d not refused: killed=%v %+v", s.Hook(), linkID, run.killed, run.results)
		}
	} else if !run.killed {
		t.Fatalf("BPF_LINK_DETACH of the sentry's link %d: not killed: %+v", linkID, run.results)
	}
	for {
		a, ok := nextAttempt(t, s, 10*time.Second)
		if !ok {
			t.Fatalf("no attempt of the real link's detacher %d reported", real)
		}
		if a.PID == uint32(fake) {
			t.Fatalf("a program fd was taken for the sentry's link %d: %+v", linkID, a)
		}
		if a.PID == uint32(real) {
			if a.Command != "BPF_LINK_DETACH" || a.Object != "link" || a.ObjectID != linkID || a.Action != wantAction {
				t.Fatalf("attempt %+v, want BPF_LINK_DETACH on link %d, %s", a, linkID, wantAction)
			}
			t.Logf("hook %s: %s", s.Hook(), a)
			break
		}
	}
}

func attachingToTheSentrysProgramsIsStopped(t *testing.T, s *Sensor) {
	var id uint32
	for _, p := range s.coll.Programs {
		if info, err := p.Info(); err == nil {
			if pid, ok := info.ID(); ok {
				id = uint32(pid)
				break
			}
		}
	}
	if id == 0 {
		t.Fatal("no program id of the sensor's")
	}
	for _, tc := range []struct{ how, cmd string }{
		{"fentry", "BPF_PROG_LOAD"}, {"freplace", "BPF_PROG_LOAD"}, {"link", "BPF_LINK_CREATE"},
	} {
		t.Run(tc.how, func(t *testing.T) {
			pid, wait := startLoader(t, "-attach-to-prog-id", fmt.Sprint(id), "-attach-how", tc.how)
			run := wait()
			wantAction := ActionKilled
			if s.Hook().IsLSM() {
				wantAction = ActionDenied
				if run.killed || len(run.results) != 1 || run.results[0].Ret != -1 || !strings.Contains(run.results[0].Error, "operation not permitted") {
					t.Fatalf("hook %s: the attach was not refused: killed=%v %+v", s.Hook(), run.killed, run.results)
				}
			} else if !run.killed {
				t.Fatalf("the %s attacher of the sentry's program was not killed: %+v", tc.how, run.results)
			}
			for {
				a, ok := nextAttempt(t, s, 10*time.Second)
				if !ok {
					t.Fatalf("no %s attempt on program %d by %d reported", tc.cmd, id, pid)
				}
				if a.PID != uint32(pid) {
					continue // another process's (the shared host)
				}
				if a.Command != tc.cmd || a.Object != "prog" || a.ObjectID != id || a.Action != wantAction {
					t.Fatalf("attempt %+v, want %s on prog %d, %s", a, tc.cmd, id, wantAction)
				}
				t.Logf("hook %s: %s", s.Hook(), a)
				break
			}
		})
	}
}

func signalsToTheAgentAreGuarded(t *testing.T, s *Sensor) {
	if !s.Hook().IsLSM() && !testutils.KernelVersion(t).AtLeast(testutils.Version{Major: 5, Minor: 15}) {
		// No LSM to refuse, and no tracepoint link to report with: the
		// sensor must say so, not claim a report it cannot make.
		if !strings.HasPrefix(s.Signals(), "not seen: tracepoint links need 5.15") {
			t.Fatalf("hook %s on %s: signals to the agent are %q", s.Hook(), testutils.KernelVersion(t), s.Signals())
		}
		return
	}
	if !s.Hook().IsLSM() && !strings.HasPrefix(s.Signals(), "reported") {
		t.Fatalf("hook %s: signals to the agent are %s", s.Hook(), s.Signals())
	}
	got := make(chan os.Signal, 1)
	signal.Notify(got, syscall.SIGTERM)
	defer signal.Stop(got)
	pid, wait := startLoader(t, "-signal-pid", fmt.Sprint(os.Getpid()), "-signal", fmt.Sprint(int(syscall.SIGTERM)))
	run := wait()
	if run.killed || len(run.results) != 1 {
		t.Fatalf("sender: killed=%v %+v", run.killed, run.results)
	}
	wantAction := ActionNone
	if s.Hook().IsLSM() {
		wantAction = ActionDenied
		if run.results[0].Ret != -1 || !strings.Contains(run.results[0].Error, "operation not permitted") {
			t.Fatalf("hook %s: SIGTERM to the agent was not refused: %+v", s.Hook(), run.results)
		}
	} else {
		if run.results[0].Ret != 0 {
			t.Fatalf("kill failed: %+v", run.results)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the kill succeeded, yet no SIGTERM arrived")
		}
	}
	for {
		a, ok := nextAttempt(t, s, 10*time.Second)
		if !ok {
			t.Fatalf("no signal from %d reported", pid)
		}
		if a.PID != uint32(pid) {
			continue
		}
		if !a.Signal() || a.Command != "SIGTERM" || a.ObjectID != uint32(os.Getpid()) || a.Action != wantAction {
			t.Fatalf("attempt %+v (%s), want SIGTERM to %d, %s", a, a, os.Getpid(), wantAction)
		}
		t.Logf("hook %s: %s", s.Hook(), a)
		break
	}
	if s.Hook().IsLSM() {
		// refused: it must never have arrived
		select {
		case <-got:
			t.Fatal("SIGTERM refused, yet delivered")
		default:
		}
	}
}
