//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// run emits heartbeats on its interval, each saying every hook is attached
// and the tables are intact while nobody interferes.
func TestRunEmitsHeartbeats(t *testing.T) {
	f := startRun(t, "--format", "json", "--heartbeat-interval", "300ms")
	waitForN(t, "heartbeats", &f.stdout, `"event":"heartbeat"`, 2)
	beats := regexp.MustCompile(`"heartbeat":\{"hooks":(\d+),"hooks_attached":(\d+),"tables_intact":(true|false)`).FindAllStringSubmatch(f.stdout.String(), -1)
	if len(beats) < 2 {
		t.Fatalf("%d heartbeat sections in:\n%s", len(beats), f.stdout.String())
	}
	for _, b := range beats {
		if b[1] == "0" || b[1] != b[2] || b[3] != "true" {
			t.Errorf("heartbeat: %s hooks, %s attached, tables intact %s", b[1], b[2], b[3])
		}
	}
}

// A SIGTERM to the agent from another process (a sibling: neither the
// agent's parent, which stops it in the other tests, nor init) is a tamper
// event in the output file. Without the BPF LSM it cannot be refused: the
// report is in the ring before the signal lands and the agent writes it
// during its shutdown. On LSM kernels the kill fails with EPERM, the agent
// lives on (its parent, the test, then stops it) and the event says
// denied.
func TestRunReportsASignalFromAnotherProcess(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.json")
	f := startRun(t, "--format", "json", "--output", "file:"+events)
	b, err := exec.Command(f.loader, "-signal-pid", strconv.Itoa(f.cmd.Process.Pid), "-signal", "15").Output()
	if err != nil {
		t.Fatalf("sender: %v\n%s", err, b)
	}
	refused := strings.Contains(string(b), "operation not permitted")
	if !refused && !strings.Contains(string(b), `"ret":0`) {
		t.Fatalf("sender: %s", b)
	}
	if refused {
		// still running: its parent may stop it
		f.cmd.Process.Signal(syscall.SIGTERM)
	}
	if err := f.cmd.Wait(); err != nil {
		t.Fatalf("run after SIGTERM: %v\n%s", err, f.stderr.String())
	}
	out, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("SIGTERM to the sentry's agent (pid %d)", f.cmd.Process.Pid)
	var found string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `"event":"tamper"`) && strings.Contains(line, want) {
			found = line
		}
	}
	if found == "" {
		t.Fatalf("no tamper event %q in:\n%s", want, out)
	}
	wantAction := "seen, not stoppable by a syscall hook"
	if refused {
		wantAction = "denied"
	}
	if !strings.Contains(found, `"what":"access"`) || !strings.Contains(found, wantAction) {
		t.Errorf("tamper event %s, want what access, %s", found, wantAction)
	}
}

// doctor says what happens to a signal another process sends the agent
// with the hook run will use: refused on the LSM hooks, only reported on
// the syscall hooks (nothing there can stop a signal).
func TestDoctorSaysWhatHappensToSignals(t *testing.T) {
	testutils.RequireRoot(t, "probing the kernel")
	out, errs, code := runRulesCLI(t, "doctor")
	if code != 0 {
		t.Fatalf("doctor: %s %s", out, errs)
	}
	var hook, signals string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "run will use: hook "); ok {
			hook, _, _ = strings.Cut(rest, ",")
		}
		if rest, ok := strings.CutPrefix(line, "signals to the agent: "); ok {
			signals = rest
		}
	}
	want := map[string]string{"lsm-prog-load": "refused with EPERM", "lsm-bpf": "refused with EPERM",
		"tracepoint": "reported, not refused", "tp_btf": "reported, not refused"}[hook]
	if want == "" || !strings.HasPrefix(signals, want) {
		t.Errorf("hook %q: signals line %q, want it to start with %q", hook, signals, want)
	}
}
