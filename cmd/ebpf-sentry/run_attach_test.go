//go:build linux && amd64

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// attachRun is `ebpf-sentry run --format json` with its own lock file.
type attachRun struct {
	cmd     *exec.Cmd
	stdout  syncBuffer
	stderr  syncBuffer
	done    chan struct{} // closed when the sensor has exited, with waitErr set
	waitErr error
}

func startAttachRun(t *testing.T, args ...string) *attachRun {
	t.Helper()
	testutils.RequireRoot(t, "running the sensor")
	bin := goBuild(t, ".", "ebpf-sentry")
	r := &attachRun{}
	all := append([]string{"run", "--format", "json", "--lock-file", filepath.Join(t.TempDir(), "lock"), "--ring-size", "8"}, args...)
	r.cmd = exec.Command(bin, all...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { r.waitErr = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	// Until the line or the sensor's exit: its start takes long on a
	// loaded host, and no window shorter than the test's is safe.
	deadline := waitDeadline(t)
	for !strings.Contains(r.stderr.String(), "sensor running") {
		select {
		case <-r.done:
			t.Fatalf("the sensor exited before it was running (%v):\n%s", r.waitErr, r.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sensor was not running by the test's deadline:\n%s", r.stderr.String())
		}
	}
	return r
}

// attaches returns the prog_attach/prog_detach events of caller pid,
// waiting until want(events) holds or 2 minutes passed (a generous bound:
// it only costs time when the events never come).
func (r *attachRun) attaches(t *testing.T, pids map[uint32]bool, want func([]output.Event) bool) []output.Event {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		evs := r.scan(pids)
		if want(evs) || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scan returns the prog_attach/prog_detach events of callers pids written so far.
func (r *attachRun) scan(pids map[uint32]bool) []output.Event {
	var evs []output.Event
	sc := bufio.NewScanner(strings.NewReader(r.stdout.String()))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev output.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Attach == nil || ev.Loader == nil || !pids[ev.Loader.PID] {
			continue
		}
		evs = append(evs, ev)
	}
	return evs
}

func ruleIDs(ev output.Event) []string {
	var out []string
	if ev.Verdict != nil {
		for _, r := range ev.Verdict.Rules {
			out = append(out, r.ID)
		}
	}
	return out
}

// bpfattach runs the attach test client; it returns its pid, its JSON
// line, and whether SIGKILL ended it.
func bpfattach(t *testing.T, args ...string) (pid uint32, res map[string]any, killed bool) {
	t.Helper()
	cmd := exec.Command(goBuild(t, "../../internal/cmd/bpfattach", "bpfattach"), args...)
	out, err := cmd.Output()
	pid = uint32(cmd.Process.Pid)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return pid, nil, true
		}
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("bpfattach %v: %v (%v) %s", args, jerr, err, out)
	}
	return pid, res, false
}

func findAttach(evs []output.Event, kind, name string) *output.Event {
	for i := range evs {
		a := evs[i].Attach
		if a.Target.Kind == kind && a.Target.Name == name && a.Result == "attached" {
			return &evs[i]
		}
	}
	return nil
}

// Programs with nothing alarming in their instructions, attached where a
// file hider, an anti-forensics hook and a credential sniffer sit: the
// attach names the target and the default rules fire live.
func TestRunReportsAttachesWithTheirTargetsAndTheDefaultRulesJudgeThem(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor")
	obj := testutils.Testdata("attach_targets.bpf.o")
	pam := "/lib/x86_64-linux-gnu/libpam.so.0"
	cases := []struct {
		name       string
		args       []string
		kind, tgt  string
		rule, prog string
	}{
		{"a tracepoint on getdents64 through a perf link", []string{"-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_getdents64"},
			"tracepoint", "syscalls/sys_enter_getdents64", "getdents-hook", "count_dirents"},
		{"the same through ioctl(PERF_EVENT_IOC_SET_BPF)", []string{"-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_getdents64", "-ioctl"},
			"tracepoint", "syscalls/sys_enter_getdents64", "getdents-hook", "count_dirents"},
		{"a tracepoint on bpf()", []string{"-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_bpf"},
			"tracepoint", "syscalls/sys_enter_bpf", "bpf-hook", "count_dirents"},
		{"a raw tracepoint", []string{"-prog", "count_raw", "-raw-tp", "sys_enter"},
			"raw_tracepoint", "sys_enter", "", "count_raw"},
		{"a uprobe on libpam", []string{"-prog", "count_pam", "-uprobe", pam + ":pam_get_authtok"},
			"uprobe", pam + ":pam_get_authtok", "credential-files", "count_pam"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pid, res, killed := bpfattach(t, append([]string{"-obj", obj}, c.args...)...)
			if killed || res["error"] != nil {
				t.Fatalf("bpfattach: killed=%v %v", killed, res)
			}
			evs := r.attaches(t, map[uint32]bool{pid: true}, func(evs []output.Event) bool { return findAttach(evs, c.kind, c.tgt) != nil })
			ev := findAttach(evs, c.kind, c.tgt)
			if ev == nil {
				t.Fatalf("no prog_attach to %s %q among %d events of pid %d:\n%s", c.kind, c.tgt, len(evs), pid, r.stdout.String())
			}
			if ev.Event != output.KindProgAttach || ev.Attach.ProgID != uint32(res["prog_id"].(float64)) {
				t.Errorf("event %s for prog %d, want prog_attach of %v", ev.Event, ev.Attach.ProgID, res["prog_id"])
			}
			if ev.Prog == nil || ev.Prog.Name != c.prog || ev.Attach.ProgFacts != "load" {
				t.Errorf("the attach does not carry the load's facts: prog %+v, facts %q", ev.Prog, ev.Attach.ProgFacts)
			}
			ids := ruleIDs(*ev)
			if c.rule != "" && !strings.Contains(strings.Join(ids, ","), c.rule) {
				t.Errorf("rules %v, want %s", ids, c.rule)
			}
			if c.rule == "" && len(ids) > 0 {
				t.Errorf("rules %v on a benign attach", ids)
			}
		})
	}
}

// Failing attaches are reported with the kernel's errno, and the sensor
// keeps running.
func TestRunReportsFailedAttachesWithTheirErrno(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor")
	obj := testutils.Testdata("attach_targets.bpf.o")
	cases := []struct {
		name  string
		args  []string
		op    string
		errno syscall.Errno
	}{
		{"a raw tracepoint that does not exist", []string{"-prog", "count_raw", "-raw-tp", "no_such_tracepoint_attach"}, "raw_tracepoint_open", syscall.ENOENT},
		{"a program closed before its ioctl", []string{"-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_getdents64", "-ioctl", "-close-prog-first"}, "perf_event_set_bpf", syscall.EBADF},
		{"a bogus perf attr: the ioctl lands on a file that is no perf event", []string{"-prog", "count_dirents", "-tracepoint", "x/y", "-ioctl", "-tracepoint-id", "999999999"}, "perf_event_set_bpf", syscall.ENOTTY},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pid, res, killed := bpfattach(t, append([]string{"-obj", obj}, c.args...)...)
			if killed || res["errno"] == nil || syscall.Errno(res["errno"].(float64)) != c.errno {
				t.Fatalf("bpfattach: killed=%v %v, want errno %v", killed, res, c.errno)
			}
			evs := r.attaches(t, map[uint32]bool{pid: true}, func(evs []output.Event) bool {
				for _, ev := range evs {
					if ev.Attach.Op == c.op {
						return true
					}
				}
				return false
			})
			var got *output.Attach
			for _, ev := range evs {
				if ev.Attach.Op == c.op {
					got = ev.Attach
				}
			}
			if got == nil {
				t.Fatalf("no %s event of pid %d:\n%s", c.op, pid, r.stdout.String())
			}
			if got.Result != "failed" || syscall.Errno(got.Errno) != c.errno {
				t.Errorf("result %s errno %d, want failed %d (%v)", got.Result, got.Errno, c.errno, c.errno)
			}
		})
	}
	if r.cmd.ProcessState != nil {
		t.Fatalf("the sensor exited: %s", r.stderr.String())
	}
}

// A block rule on the target alone is enforced in the kernel at the
// attach: the caller is killed at entry, and the event says the program
// stays loaded and unused.
func TestRunBlocksAnAttachByItsTarget(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(`
- id: attach-block-getdents
  description: nothing attaches to getdents64 (attach test)
  severity: high
  action: block
  match:
    attach_to: ["syscalls/sys_enter_getdents64"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startAttachRun(t, "--rules", rulesPath)
	obj := testutils.Testdata("attach_targets.bpf.o")
	for _, ioctl := range []bool{false, true} {
		args := []string{"-obj", obj, "-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_getdents64"}
		if ioctl {
			args = append(args, "-ioctl")
		}
		pid, res, killed := bpfattach(t, args...)
		if !killed {
			t.Fatalf("ioctl=%v: the attacher was not killed: %v", ioctl, res)
		}
		evs := r.attaches(t, map[uint32]bool{pid: true}, func(evs []output.Event) bool {
			for _, ev := range evs {
				if ev.Attach.Target.Name == "syscalls/sys_enter_getdents64" && ev.Attach.Result == "killed" {
					return true
				}
			}
			return false
		})
		var got *output.Event
		for i, ev := range evs {
			if ev.Attach.Target.Name == "syscalls/sys_enter_getdents64" && ev.Attach.Result == "killed" {
				got = &evs[i]
			}
		}
		if got == nil {
			t.Fatalf("ioctl=%v: no killed attach of pid %d:\n%s", ioctl, pid, r.stdout.String())
		}
		if got.Verdict == nil || got.Verdict.Action != "block" || got.Verdict.EnforcedBy != "signal" ||
			!strings.Contains(strings.Join(ruleIDs(*got), ","), "attach-block-getdents") {
			t.Errorf("ioctl=%v: verdict %+v", ioctl, got.Verdict)
		}
		if !strings.Contains(got.Attach.Note, "stays loaded and unused") {
			t.Errorf("ioctl=%v: note %q", ioctl, got.Attach.Note)
		}
	}
}

// XDP and tc programs attached through netlink (iproute2's ip and tc on a
// veth in a private network namespace) never pass the bpf() hooks: the
// reconciliation's netlink dump reports them after the fact, once, marked
// as found by the dump, judged by the rules on the interface (a block rule
// can only alert: nothing is stopped).
func TestRunReportsXDPAndTCAttachedThroughNetlink(t *testing.T) {
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("iproute2's %s: %v", tool, err)
		}
	}
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(`
- id: attach-block-nl1
  description: nothing attaches to nl1 (attach test)
  severity: high
  action: block
  match:
    attach_to: ["nl1"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startAttachRun(t, "--mode", "monitor", "--reconcile", "1s", "--rules", rulesPath)
	ns := "sentry-attach2-run-" + strconv.Itoa(os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	obj := testutils.Testdata("netcount.bpf.o")
	run("ip", "-n", ns, "link", "add", "nl1", "type", "veth", "peer", "name", "nl1p")
	run("ip", "-n", ns, "link", "set", "dev", "nl1", "xdpgeneric", "obj", obj, "sec", "xdp")
	run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "nl1", "clsact")
	run("ip", "netns", "exec", ns, "tc", "filter", "add", "dev", "nl1", "egress", "bpf", "da", "obj", obj, "sec", "tc")
	find := func(evs []output.Event, hook string) []output.Event {
		var out []output.Event
		for _, ev := range evs {
			if ev.Attach.Op == "netlink_dump" && ev.Attach.Target.Interface == "nl1" && ev.Attach.AttachType == hook {
				out = append(out, ev)
			}
		}
		return out
	}
	evs := r.attaches(t, map[uint32]bool{0: true}, func(evs []output.Event) bool {
		return len(find(evs, "xdp")) > 0 && len(find(evs, "tc_egress")) > 0
	})
	for _, hook := range []string{"xdp", "tc_egress"} {
		got := find(evs, hook)
		if len(got) == 0 {
			t.Fatalf("no netlink_dump of nl1 %s:\n%s", hook, r.stdout.String())
		}
		ev := got[0]
		// the facts: ip's load as the hook saw it (or the kernel's copy)
		if ev.Attach.ProgID == 0 || ev.Attach.ProgFacts == "unknown" || ev.Prog == nil || ev.Attach.Result != "attached" {
			t.Errorf("%s: prog %d facts %q result %q, want the program's facts, attached", hook, ev.Attach.ProgID, ev.Attach.ProgFacts, ev.Attach.Result)
		}
		if !strings.Contains(ev.Attach.Note, "netlink dump") {
			t.Errorf("%s: note %q", hook, ev.Attach.Note)
		}
		if ev.Verdict == nil || ev.Verdict.Action != "alert" || !strings.Contains(strings.Join(ruleIDs(ev), ","), "attach-block-nl1") {
			t.Errorf("%s: verdict %+v, want an alert by attach-block-nl1", hook, ev.Verdict)
		}
	}
	// later passes do not report them again
	time.Sleep(2500 * time.Millisecond)
	evs = r.attaches(t, map[uint32]bool{0: true}, func([]output.Event) bool { return true })
	if n := len(find(evs, "xdp")); n != 1 {
		t.Errorf("the xdp attachment reported %d times, want once", n)
	}
}
