package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/startabort"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// loader32 is bpfload built for GOARCH=386: a 32-bit process whose bpf()
// is syscall 357 through __ia32_sys_bpf. In a matrix VM vmrun puts it on
// PATH as bpfload32.
func loader32(t *testing.T) string {
	t.Helper()
	if os.Getenv(kernelEnv) != "" {
		p, err := exec.LookPath("bpfload32")
		if err != nil {
			t.Fatalf("in VM %s: %v (vmrun installs 32-bit helpers as <name>32)", os.Getenv(kernelEnv), err)
		}
		return p
	}
	bin := filepath.Join(t.TempDir(), "bpfload32")
	cmd := exec.Command("go", "build", "-o", bin, "../internal/cmd/bpfload")
	cmd.Env = append(os.Environ(), "GOARCH=386", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build 32-bit loader: %v\n%s", err, out)
	}
	return bin
}

// run32 runs the 32-bit loader with args to the end. A run that died in the
// linux/386 Go runtime's start-up (SIGTRAP before printing a byte: seen once
// on the first 32-bit exec of a TCG VM's boot) never reached bpf(), so it is
// logged with the kernel's trap line and run again, at most
// startabort.Attempts times; any other failure is the test's as it was.
func run32(t *testing.T, bin string, args ...string) (loaderRun, error) {
	t.Helper()
	run, aborts, err := startabort.Retry(startabort.Attempts, func() (loaderRun, error) {
		cmd := exec.Command(bin, args...)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Start(); err != nil {
			return loaderRun{}, err
		}
		err := cmd.Wait()
		if abort := startabort.Check(cmd.Process.Pid, err, out.Len()+stderr.Len()); abort != nil {
			return loaderRun{}, abort
		}
		return loaderResult(t, cmd, err, args, &out, &stderr), nil
	})
	for _, a := range aborts {
		t.Logf("32-bit loader %v run again after a start-up abort: %v", args, a)
	}
	return run, err
}

// A 32-bit loader's bpf() bypasses the syscall tracepoints and the kprobe on
// __x64_sys_bpf. With every hook the sensor still judges it: kprobe and
// kretprobe on __ia32_sys_bpf next to the tracepoint, tp_btf by syscall
// 357 in a compat syscall, the LSM hooks by themselves (results from the
// kretprobe). A blocked 32-bit load is stopped, a benign one is reported
// with its prog id. Where the kernel cannot run 32-bit binaries (this
// host), the test proves that (execve of the 32-bit build fails with
// ENOEXEC while the 64-bit build runs) and skips by that probed feature.
func TestIA32LoadersAreJudged(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	bin := loader32(t)
	if _, err := run32(t, bin, "-gen", "2", "-name", "se2e_ia32probe"); err != nil {
		if !errors.Is(err, syscall.ENOEXEC) {
			t.Fatalf("32-bit loader: %v", err)
		}
		if os.Getenv(kernelEnv) != "" {
			t.Fatalf("kernel %s: 32-bit binaries do not run: %v", os.Getenv(kernelEnv), err)
		}
		// Prove that it is the kernel refusing 32-bit executables, not
		// this loader: the 64-bit build of the same source runs and
		// loads. Then no 32-bit loader can call bpf() on this host.
		run := runLoader(t, "-gen", "2", "-name", "se2e_ia64probe")
		if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
			testutils.SkipOrFail(t, fmt.Sprintf("the 32-bit loader does not execute (%v) and the 64-bit one does not load either (%v): cannot tell why", err, run.results))
		}
		t.Skipf("probed: this kernel refuses 32-bit executables (execve: %v) while the 64-bit build of the same loader runs and loads: no 32-bit loader can call bpf() here", err)
	}
	if !hasIA32() {
		t.Fatal("32-bit binaries run, yet __ia32_sys_bpf is not in kernel BTF")
	}
	plan, err := PlanFor(ProbeKernel())
	if err != nil {
		t.Fatal(err)
	}
	hooks := []Hook{HookTracepoint, HookBTF}
	if plan.Hook.IsLSM() {
		hooks = append(hooks, plan.Hook)
	}
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	for _, h := range hooks {
		t.Run("hook "+string(h), func(t *testing.T) {
			s := startSensor(t, Config{Hook: h, Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
			t.Logf("32-bit coverage: %s", s.Compat())
			blocked, err := run32(t, bin, "-insns", writeInsns(t, twice), "-name", "se2eblk_ia32")
			if err != nil {
				t.Fatal(err)
			}
			benign, err := run32(t, bin, "-insns", writeInsns(t, twice), "-name", "se2e_ia32ok")
			if err != nil {
				t.Fatal(err)
			}
			evs := collect(t, s, map[uint32]bool{uint32(blocked.pid): true, uint32(benign.pid): true}, 2, eventWait)
			if len(evs) != 2 {
				t.Fatalf("got %d events for two 32-bit loads, want 2 (coverage: %s)", len(evs), s.Compat())
			}
			for _, ev := range evs {
				if !ev.Complete() {
					t.Errorf("%s: incomplete event, missing %v", ev.Program.Name, ev.Missing)
				}
				switch ev.Program.Name {
				case "se2eblk_ia32":
					if ev.Verdict != VerdictBlock || ev.RuleID != "e2e-block" {
						t.Errorf("blocked load: verdict %v rule %q", ev.Verdict, ev.RuleID)
					}
					if h.IsLSM() {
						if ev.Action != ActionDenied || blocked.killed || len(blocked.results) != 1 || blocked.results[0].Ret != -1 {
							t.Errorf("blocked load: action %v, killed=%v results=%v; want denied with EPERM", ev.Action, blocked.killed, blocked.results)
						}
					} else if ev.Action != ActionKilled || !blocked.killed || ev.Outcome.Result != ResultKilled {
						t.Errorf("blocked load: action %v outcome %+v killed=%v; want killed", ev.Action, ev.Outcome, blocked.killed)
					}
				case "se2e_ia32ok":
					if ev.Verdict != VerdictAllow || ev.Outcome.Result != ResultLoaded || ev.Program.Kernel == nil || ev.Program.Kernel.ID == 0 {
						t.Errorf("benign load: verdict %v outcome %+v kernel %+v; want allowed and loaded with an id", ev.Verdict, ev.Outcome, ev.Program.Kernel)
					} else if len(benign.results) != 1 || benign.results[0].ID != uint32(ev.Program.Kernel.ID) {
						t.Errorf("benign load: loader saw %v, event prog id %d", benign.results, ev.Program.Kernel.ID)
					}
					if ev.Helpers[fnGetCurrentPidTgd] != 2 {
						t.Errorf("benign load: helpers %v", ev.Helpers)
					}
				default:
					t.Errorf("unexpected event for %q", ev.Program.Name)
				}
			}
		})
	}
}
