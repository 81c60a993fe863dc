//go:build linux && amd64

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/loaderrun"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// lskelRule blocks the light skeleton's payload by name, except when the
// process that runs its loader is the executable named by EXEMPT.
const lskelRule = `
- id: inkernel-lskel-block
  description: the light-skeleton test's payload, by name
  severity: high
  action: block
  match:
    prog_name: {exact: [lskel_payload]}
    not: {loader: {exe_identity: [{inode: %d, dev: '%d:%d'}]}}
`

// startLskel runs a light-skeleton runner and returns it, what it printed
// and how it ended (nil: still running when the test closed its stdin).
func startLskel(t *testing.T, bin string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdin, bufio.NewReader(stdout)
}

// TestRunStopsTheLightSkeletonsPayload: a light skeleton (bpftool gen
// skeleton -L) loads its payload from inside the kernel, out of sight of
// the bpf() syscall hook. run brackets the loader's BPF_PROG_TEST_RUN,
// judges the payload by id and, on a block, kills the caller before the
// run returns to it: the runner never prints "attached", dies by SIGKILL,
// and the payload is gone. The event names the runner and the loader
// program (the id and tag of its own prog_load). A copy of the runner that
// the rule spares runs on: resumed, attached, reported as loaded.
func TestRunStopsTheLightSkeletonsPayload(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	testutils.SkipOnOldKernel(t, "5.14", "syscall programs (BPF_PROG_TYPE_SYSCALL), which a light skeleton's loader is")
	dir := t.TempDir()
	bin := goBuild(t, ".", "ebpf-sentry")
	runner := testprogs.Path("lskel/payload-lskel")
	spared := filepath.Join(dir, "payload-lskel-spared")
	b, err := os.ReadFile(runner)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spared, b, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(spared, &st); err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, fmt.Appendf(nil, lskelRule, st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev)), 0o600)
	events := filepath.Join(dir, "events.json")

	run := exec.Command(bin, "run", "--rules", rulesPath, "--lock-file", filepath.Join(dir, "lock"), "--ring-size", "8",
		"--rules-poll", "0", "--output", "file:"+events)
	var stdout, stderr syncBuffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	waitFor(t, "start", &stderr, "sensor running")
	waitFor(t, "the bracket", &stderr, "in-kernel loads bracketed")

	hook := regexp.MustCompile(`hook=(\S+)`).FindStringSubmatch(stderr.String())[1]
	lsm := strings.HasPrefix(hook, "lsm")

	// Blocked: on a syscall hook, killed while stopped at the end of the
	// loader's run; on an LSM hook, denied at the inner load (the loader
	// program's bpf_sys_bpf gets EPERM and the skeleton gives up).
	blocked, _, out := startLskel(t, runner)
	line, _ := out.ReadString('\n')
	err = blocked.Wait()
	if strings.HasPrefix(line, "attached") {
		t.Errorf("the blocked light skeleton attached its payload: %q", line)
	}
	pid := blocked.Process.Pid
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	loadFailed := errors.As(err, &ee) && ee.ExitCode() == 1
	switch {
	case killed:
		waitFor(t, "the blocked payload", &stdout, `prog="lskel_payload"`)
		ev := viaLoaderLineFor(t, stdout.String(), pid)
		t.Log(ev)
		for _, want := range []string{"outcome=killed", "rules=inkernel-lskel-block:block", "response=kill", fmt.Sprintf("killed pid %d", pid)} {
			if !strings.Contains(ev, want) {
				t.Errorf("via_loader line lacks %q: %s", want, ev)
			}
		}
		// The loader program the event names is the one the syscall hook
		// saw loaded by the same process.
		loaderLoad := regexp.MustCompile(fmt.Sprintf(`pid=%d [^\n]*prog="__loader.prog" type=syscall insns=\d+ id=(\d+) tag=([0-9a-f]{16})`, pid)).FindStringSubmatch(stdout.String())
		if loaderLoad == nil {
			t.Fatalf("no prog_load of the loader program by pid %d:\n%s", pid, stdout.String())
		}
		if !strings.Contains(ev, fmt.Sprintf(`via_loader="__loader.prog"(id=%s tag=%s)`, loaderLoad[1], loaderLoad[2])) {
			t.Errorf("via_loader does not name the loader program %s/%s: %s", loaderLoad[1], loaderLoad[2], ev)
		}
	case lsm && loadFailed:
		waitFor(t, "the denied inner load", &stdout, `prog="lskel_payload"`)
		// Denied by the LSM hook at the inner load, and reported with its
		// own outcome (EPERM, no id), the rule that matched (lsm.s/bpf
		// reads the kernel-resident instructions too), the caller and the
		// loader program the caller ran.
		l := fullLineWith(stdout.String(), `prog="lskel_payload"`)
		t.Log(l)
		for _, want := range []string{fmt.Sprintf("pid=%d ", pid), "failed=EPERM", "kernel=block(inkernel-lskel-block)", "action=denied"} {
			if !strings.Contains(l, want) {
				t.Errorf("the denied inner load's line lacks %q: %s", want, l)
			}
		}
		if via := loaderOf(t, stdout.String(), pid); !strings.Contains(l, via) {
			t.Errorf("the denied inner load's line does not name its loader program (%s): %s", via, l)
		}
	default:
		t.Errorf("the blocked light skeleton ended with %v on hook %s, want SIGKILL (or, on an LSM hook, exit 1: load denied)", err, hook)
	}
	inv, err := inventory.Scan(&inventory.Options{NoOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inv.Programs {
		if p.Name == "lskel_payload" {
			t.Errorf("the blocked payload is still loaded: prog %d", p.ID)
		}
	}

	if t.Failed() {
		t.Logf("run's output:\n%s\nrun's log:\n%s", stdout.String(), stderr.String())
	}

	// Spared by exe identity: resumed, attached, reported loaded.
	ok, stdin, out := startLskel(t, spared)
	line, err = out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "attached") {
		t.Fatalf("the spared light skeleton printed %q (%v), want attached", line, err)
	}
	okPID := ok.Process.Pid
	waitFor(t, "the spared payload", &stdout, fmt.Sprintf(`loader="payload-lskel-s" pid=%d`, okPID))
	if lsm {
		// The LSM hook reports the inner load itself, loaded, with its id
		// and its loader program (the bracket then has nothing unseen).
		// The sensor's lines (the bracket's, if it ran first, have no insns=).
		const sensorLine = `prog="lskel_payload" type=raw_tracepoint insns=`
		waitForN(t, "the spared inner load", &stdout, sensorLine, 2) // the denied one's, then this one's
		var l string
		for _, x := range strings.Split(stdout.String(), "\n") {
			if strings.Contains(x, fmt.Sprintf(" pid=%d ", okPID)) && strings.Contains(x, sensorLine) {
				l = x
			}
		}
		t.Log(l)
		if !regexp.MustCompile(` id=[1-9]\d* tag=[0-9a-f]{16} kernel=allow`).MatchString(l) || strings.Contains(l, "action=") {
			t.Errorf("the spared inner load's line: %s", l)
		}
		if via := loaderOf(t, stdout.String(), okPID); !strings.Contains(l, via) {
			t.Errorf("the spared inner load's line does not name its loader program (%s): %s", via, l)
		}
	} else {
		waitFor(t, "the spared payload's via_loader event", &stdout, fmt.Sprintf(`loader="payload-lskel-s" pid=%d exe=`, okPID))
		if ev := viaLoaderLineFor(t, stdout.String(), okPID); !strings.Contains(ev, "outcome=loaded") || !strings.Contains(ev, " id=") || strings.Contains(ev, "response=") || strings.Contains(ev, ":block") {
			t.Errorf("spared via_loader line: %s", ev)
		}
	}
	stdin.Close()
	if err := ok.Wait(); err != nil {
		t.Errorf("the spared light skeleton ended with %v", err)
	}

	// The JSON events carry via_loader and validate against the schema
	// (the output pipeline's own check, done by the file sink's tests);
	// here: the field's content.
	run.Process.Signal(syscall.SIGTERM)
	run.Wait()
	f, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for _, l := range strings.Split(string(f), "\n") {
		if strings.Contains(l, `"event":"tamper"`) {
			t.Errorf("tamper event (an inner load's outcome taken for the outer run's?): %s", l)
		}
		if !strings.Contains(l, `"via_loader"`) {
			continue
		}
		var e output.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Event != output.KindProgLoad || e.ViaLoader.Name != "__loader.prog" || e.Prog.Name != "lskel_payload" || e.Loader == nil {
			t.Errorf("via_loader event: %s", l)
		}
		found++
	}
	// Syscall hook: the bracket's, killed and spared. LSM hook: the
	// sensor's two inner loads (denied, loaded); the bracket finds nothing
	// unseen, since it judges a run only once the sensor has delivered
	// what its hooks wrote before the run ended (Sensor.Delivered): one
	// event per inner load, never the spared payload twice.
	if found != 2 {
		t.Errorf("%d via_loader events, want 2 (one per inner load)", found)
	}
}

// loaderOf is the via_loader text naming the loader program that pid
// loaded itself, as the syscall hook reported that load.
func loaderOf(t *testing.T, out string, pid int) string {
	t.Helper()
	m := regexp.MustCompile(fmt.Sprintf(`pid=%d [^\n]*prog="__loader.prog" type=syscall insns=\d+ id=(\d+) tag=([0-9a-f]{16})`, pid)).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no prog_load of the loader program by pid %d:\n%s", pid, out)
	}
	return fmt.Sprintf(`via_loader="__loader.prog"(id=%s tag=%s)`, m[1], m[2])
}

// fullLineWith is the whole first line of out containing substr.
func fullLineWith(out, substr string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

func viaLoaderLineFor(t *testing.T, out string, pid int) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "prog_load via_loader=") && strings.Contains(l, fmt.Sprintf(" pid=%d ", pid)) {
			return l
		}
	}
	t.Fatalf("no via_loader line for pid %d in:\n%s", pid, out)
	return ""
}

// The watcher without a kernel: a run whose window holds a program held by
// another process is not blamed on the caller; an error listing the window
// kills a stopped caller (fail closed) instead of resuming it; an allowed
// payload resumes it.
func TestLoaderWatcherResumesKillsAndAttributes(t *testing.T) {
	var events []*output.Event
	k := &residentKeeper{self: 1, root: "/", seen: map[uint32]bool{7: true}, pending: map[uint32]time.Time{},
		emit: func(ev *output.Event) { events = append(events, ev) }}
	k.scan = func(o *inventory.Options) (*inventory.Inventory, error) {
		inv := &inventory.Inventory{}
		for id := range o.Programs {
			p := inventory.Program{ID: id, Name: fmt.Sprint("p", id),
				Prog: &program.Program{Source: program.SourceKernel, Name: fmt.Sprint("p", id), Kernel: &program.Kernel{ID: id}}}
			if id == 9 {
				p.Holders = []inventory.Holder{{PID: 4242}}
			}
			inv.Programs = append(inv.Programs, p)
		}
		return inv, nil
	}
	var sent []string
	w := newLoaderWatcher(true, k, func() *rules.Set { return nil }, nil)
	w.signal = func(pid uint32, sig unix.Signal) error {
		sent = append(sent, fmt.Sprint(pid, unix.SignalName(sig)))
		return nil
	}
	w.stillLoaded = func(uint32) bool { return false }
	w.awaitExit = func(uint32, time.Duration) bool { return true }

	// 5 is the loader itself, 7 was reported by the hook, 9 is another
	// process's: only 8 is the run's.
	w.loadedBetween = func(from, to uint64) ([]uint32, error) { return []uint32{5, 7, 8, 9}, nil }
	w.handle(&loaderrun.Run{PID: 100, ProgID: 5, ProgName: "__loader.prog", Stopped: true})
	if len(events) != 1 || events[0].Prog.Kernel.ID != 8 || events[0].ViaLoader == nil || events[0].ViaLoader.ID != 5 || events[0].Loader.PID != 100 {
		t.Fatalf("events %+v, want one prog_load of 8 via loader 5 by pid 100", events)
	}
	if len(sent) != 1 || sent[0] != "100SIGCONT" {
		t.Errorf("signals %v, want the allowed run's caller resumed", sent)
	}

	sent, events = nil, nil
	w.loadedBetween = func(from, to uint64) ([]uint32, error) { return nil, unix.EPERM }
	w.handle(&loaderrun.Run{PID: 101, ProgID: 5, Stopped: true})
	if len(sent) != 1 || sent[0] != "101SIGKILL" {
		t.Errorf("signals %v, want the unjudged caller killed", sent)
	}
}

// doctor says in-kernel loads are judged at the run's end where the
// bracket can attach, and found only by reconciliation where it cannot.
func TestDoctorStatesTheInKernelLoadGuarantee(t *testing.T) {
	both := &sensor.Features{Probes: []sensor.Probe{{Name: sensor.FeatSyscallTP, OK: true}, {Name: sensor.FeatSendSignal, OK: true}}}
	if s := inKernelLoads(both, sensor.HookTracepoint); !strings.HasPrefix(s, "judged when the loader's BPF_PROG_TEST_RUN ends") || !strings.Contains(s, "Not prevented") {
		t.Errorf("tracepoint: %s", s)
	}
	if s := inKernelLoads(both, sensor.HookLSMProgLoad); !strings.HasPrefix(s, "judged by the LSM hook at the inner load") ||
		!strings.Contains(s, "the inner load's own outcome") || !strings.Contains(s, "Not prevented") {
		t.Errorf("lsm-prog-load: %s", s)
	}
	noTP := &sensor.Features{Probes: []sensor.Probe{{Name: sensor.FeatSendSignal, OK: true}}}
	if s := inKernelLoads(noTP, sensor.HookBTF); !strings.HasPrefix(s, "found late, by reconciliation only") {
		t.Errorf("without syscall tracepoints: %s", s)
	}
}
