//go:build linux && amd64

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, buf *syncBuffer, substr string) {
	t.Helper()
	waitForN(t, what, buf, substr, 1)
}

func waitForN(t *testing.T, what string, buf *syncBuffer, substr string, n int) {
	t.Helper()
	wait := 60 * time.Second
	if os.Getenv("EBPF_SENTRY_KERNEL") != "" {
		wait = 5 * time.Minute // a sensor starts in minutes under TCG
	}
	deadline := time.Now().Add(wait)
	for strings.Count(buf.String(), substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %s (%q) in:\n%s", what, substr, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// load runs the test loader; it reports whether SIGKILL ended it.
func load(t *testing.T, loader, name string) bool {
	t.Helper()
	err := exec.Command(loader, "-gen", "4", "-name", name).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("loader %s: %v", name, err)
	}
	return false
}

const blockRule = `
- id: cli-block
  description: the run test's loader, by name
  severity: high
  action: block
  match:
    prog_name: {prefix: [sclirunblk]}
`

const alertRule = `
- id: cli-alert
  description: blocks nothing
  severity: low
  action: alert
  match:
    prog_name: {prefix: [sclirunblk]}
`

// runFixture is an `ebpf-sentry run` started on the block rule, with its
// own lock file, and the test loader.
type runFixture struct {
	bin, loader, rulesPath, lock string
	cmd                          *exec.Cmd
	stdout, stderr               syncBuffer
}

// startRun builds the binaries, writes the block rule and starts `run` with
// extra flags; it returns once the sensor says it is running.
func startRun(t *testing.T, extra ...string) *runFixture {
	t.Helper()
	testutils.RequireRoot(t, "running the sensor")
	dir := t.TempDir()
	f := &runFixture{
		bin:       goBuild(t, ".", "ebpf-sentry"),
		loader:    goBuild(t, "../../internal/cmd/bpfload", "bpfload"),
		rulesPath: filepath.Join(dir, "rules.yaml"),
		lock:      filepath.Join(dir, "lock"),
	}
	if err := os.WriteFile(f.rulesPath, []byte(blockRule), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--rules", f.rulesPath, "--lock-file", f.lock, "--ring-size", "8"}, extra...)
	f.cmd = exec.Command(f.bin, args...)
	f.cmd.Stdout, f.cmd.Stderr = &f.stdout, &f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.cmd.Process.Kill(); f.cmd.Wait() })
	waitFor(t, "start", &f.stderr, "sensor running")
	return f
}

func TestRunEnforcesReloadsRefusesASecondInstanceAndDetaches(t *testing.T) {
	f := startRun(t, "--rules-poll", "0")
	bin, loader, rulesPath, lock, run := f.bin, f.loader, f.rulesPath, f.lock, f.cmd
	stdout, stderr := &f.stdout, &f.stderr

	second := exec.Command(bin, "run", "--rules", rulesPath, "--lock-file", lock)
	out, err := second.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitRunning || !strings.Contains(string(out), "another ebpf-sentry run is active") {
		t.Errorf("second instance: %v\n%s", err, out)
	}

	if load(t, loader, "sclirun_ok") {
		t.Error("a load no rule blocks was killed")
	}
	if !load(t, loader, "sclirunblk_1") {
		t.Error("a load the rules block was not killed")
	}
	waitFor(t, "text line of the blocked load", stdout, `prog="sclirunblk_1"`)
	line := stdout.String()[strings.Index(stdout.String(), `prog="sclirunblk_1"`):]
	line = line[:strings.IndexByte(line, '\n')]
	if !strings.Contains(line, "kernel=block(cli-block)") || !strings.Contains(line, "action=killed") || !strings.Contains(line, "outcome=killed") {
		t.Errorf("text line: %s", line)
	}
	waitFor(t, "text line of the benign load", stdout, `prog="sclirun_ok"`)

	// SIGHUP with a rule file that blocks nothing: the same load survives.
	if err := os.WriteFile(rulesPath, []byte(alertRule), 0o600); err != nil {
		t.Fatal(err)
	}
	run.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload", stderr, "rules reloaded")
	if load(t, loader, "sclirunblk_2") {
		t.Error("killed after the rules were reloaded without the block rule")
	}

	// Back to blocking, then SIGTERM: nothing may stay attached.
	os.WriteFile(rulesPath, []byte(blockRule), 0o600)
	run.Process.Signal(syscall.SIGHUP)
	waitForN(t, "second reload", stderr, "rules reloaded", 2)
	run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Fatalf("run after SIGTERM: %v\n%s", err, stderr.String())
	}
	if load(t, loader, "sclirunblk_3") {
		t.Error("a blocked load was killed after run exited: something stayed attached")
	}
}

func TestRunReloadsChangedRuleFilesAndKeepsTheOldRulesWhenTheNewOnesAreBroken(t *testing.T) {
	f := startRun(t, "--rules-poll", "100ms")
	loader, rulesPath, run, stderr := f.loader, f.rulesPath, f.cmd, &f.stderr

	// A broken file: refused with its position, the block rule stays in force.
	if err := os.WriteFile(rulesPath, []byte("- id: broken\n  action: obliterate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rejection of the broken file", stderr, "keeping the current ones")
	if !strings.Contains(stderr.String(), "rules.yaml:2:") {
		t.Errorf("the rejection does not name the file and line:\n%s", stderr.String())
	}
	if !load(t, loader, "sclirunblk_p1") {
		t.Error("after a broken rule file the old block rule no longer held")
	}

	// A valid file that blocks nothing: picked up without SIGHUP.
	if err := os.WriteFile(rulesPath, []byte(alertRule), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload on change", stderr, "rules reloaded")
	if !strings.Contains(stderr.String(), "rule files changed") {
		t.Errorf("the reload does not say the files changed:\n%s", stderr.String())
	}
	if load(t, loader, "sclirunblk_p2") {
		t.Error("killed after the changed rule file dropped the block rule")
	}
	run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Fatalf("run after SIGTERM: %v\n%s", err, stderr.String())
	}
}

func TestRunRefusesTheCorruptEnforcerUnderLockdown(t *testing.T) {
	testutils.RequireRoot(t, "probing bpf_probe_write_user")
	b, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil || !strings.Contains(string(b), "[integrity]") && !strings.Contains(string(b), "[confidentiality]") {
		t.Skip("needs a kernel in lockdown (this test documents the refusal)")
	}
	bin := goBuild(t, ".", "ebpf-sentry")
	out, err := exec.Command(bin, "run", "--enforcer", "corrupt", "--lock-file", filepath.Join(t.TempDir(), "lock")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitEnvironment || !strings.Contains(string(out), "lockdown") {
		t.Errorf("run --enforcer corrupt: %v\n%s", err, out)
	}
}

func TestRunAndDoctorRefuseANonRootUser(t *testing.T) {
	testutils.RequireRoot(t, "dropping to an unprivileged user")
	bin := goBuild(t, ".", "ebpf-sentry")
	for _, args := range [][]string{{"run", "--lock-file", filepath.Join(t.TempDir(), "lock")}, {"doctor"}} {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitEnvironment || !strings.Contains(string(out), "needs root") {
			t.Errorf("%v as nobody: %v\n%s", args, err, out)
		}
	}
}

// doctor's plan must be what run actually does: the hook in run's start-up
// log, and corrupt refused exactly when doctor says bpf_probe_write_user is.
func TestDoctorPlanMatchesWhatRunUses(t *testing.T) {
	testutils.RequireRoot(t, "probing the kernel")
	dir := t.TempDir()
	bin := goBuild(t, ".", "ebpf-sentry")
	out, err := exec.Command(bin, "doctor", "--json").Output()
	if err != nil {
		t.Fatalf("doctor: %v", err)
	}
	var doc struct {
		Probes []struct {
			Name string
			OK   bool
		}
		Plan struct{ Hook, Enforcer string }
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	pwu := false
	for _, p := range doc.Probes {
		if p.Name == "bpf_probe_write_user" {
			pwu = p.OK
		}
	}
	var stderr syncBuffer
	run := exec.Command(bin, "run", "--mode", "monitor", "--lock-file", filepath.Join(dir, "lock"))
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "start", &stderr, "sensor running")
	run.Process.Signal(syscall.SIGTERM)
	run.Wait()
	if want := "hook=" + doc.Plan.Hook + " enforcer=" + doc.Plan.Enforcer; !strings.Contains(stderr.String(), want) {
		t.Errorf("doctor plans %q, run logged:\n%s", want, stderr.String())
	}
	// 32-bit coverage is doctor's to say, once; the sensor's start-up
	// says it only at debug level.
	if strings.Contains(stderr.String(), "32-bit bpf() calls will not be seen") {
		t.Errorf("run warned about 32-bit calls at its default level:\n%s", stderr.String())
	}
	text, err := exec.Command(bin, "doctor").Output()
	if err != nil {
		t.Fatalf("doctor: %v", err)
	}
	if n := strings.Count(string(text), "32-bit loaders:"); n != 1 {
		t.Errorf("doctor says how 32-bit loaders are covered %d times, want once:\n%s", n, text)
	}
	// the ioctl hook doctor states first is the one run's default
	// took here
	_, line, _ := strings.Cut(string(text), "ioctl attaches (PERF_EVENT_IOC_SET_BPF): ")
	said, _, _ := strings.Cut(line, ":")
	if said == "" || !strings.Contains(line, "(the default, "+string(sensor.DefaultIoctlHook)+", here)") || !strings.Contains(stderr.String(), "ioctl_hook="+said+" ") {
		t.Errorf("doctor states the ioctl hook %q, run logged:\n%s\ndoctor:\n%s", said, stderr.String(), text)
	}
	err = exec.Command(bin, "run", "--enforcer", "corrupt", "--mode", "monitor", "--lock-file", filepath.Join(dir, "lock2")).Run()
	var ee *exec.ExitError
	refused := errors.As(err, &ee) && ee.ExitCode() == exitEnvironment
	if refused == pwu {
		t.Errorf("doctor says bpf_probe_write_user=%v, run --enforcer corrupt refused=%v", pwu, refused)
	}
}

// --pin keeps enforcing after the agent exits, until the pins are removed.
func TestRunPinKeepsEnforcingAfterExit(t *testing.T) {
	testutils.RequireRoot(t, "pinning the sensor")
	if _, err := os.Stat(runPinPath); err == nil {
		t.Skipf("%s exists: another pinned sensor is in use on this host", runPinPath)
	}
	dir := t.TempDir()
	bin := goBuild(t, ".", "ebpf-sentry")
	loader := goBuild(t, "../../internal/cmd/bpfload", "bpfload")
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(blockRule), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	run := exec.Command(bin, "run", "--pin", "--rules", rulesPath, "--lock-file", filepath.Join(dir, "lock"), "--ring-size", "1")
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runPinPath) })
	waitFor(t, "start", &stderr, "sensor running")
	run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Fatalf("run --pin: %v\n%s", err, stderr.String())
	}
	if !load(t, loader, "sclirunblk_pin") {
		t.Error("a blocked load survived after run --pin exited")
	}
	if err := os.RemoveAll(runPinPath); err != nil {
		t.Fatal(err)
	}
	// Unpinned links are released asynchronously (RCU): poll, with a
	// bound generous enough for a loaded machine.
	deadline := time.Now().Add(time.Minute)
	for load(t, loader, "sclirunblk_pin2") {
		if time.Now().After(deadline) {
			t.Fatal("still enforcing a minute after the pins were removed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
