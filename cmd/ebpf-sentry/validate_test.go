//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// Flags with no meaning are refused with the flag's name, before anything
// is loaded, instead of silently meaning a default.
func TestRunRefusesMeaninglessFlags(t *testing.T) {
	bin := goBuild(t, ".", "ebpf-sentry")
	lock := filepath.Join(t.TempDir(), "lock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rules", ""}, "--rules '': want a rule file or directory"},
		{[]string{"--output-queue", "-1"}, "--output-queue -1: want at least 1"},
		{[]string{"--output-queue", "0"}, "--output-queue 0: want at least 1"},
		{[]string{"--file-keep", "-3"}, "--file-keep -3"},
		{[]string{"--webhook-batch", "0"}, "--webhook-batch 0"},
		{[]string{"--loss-interval", "-1s"}, "--loss-interval: want a non-negative duration"},
		{[]string{"--rules-poll", "-1s"}, "--rules-poll -1s"},
		{[]string{"--integrity-interval", "0s"}, "--integrity-interval 0s: want a positive interval"},
		{[]string{"--heartbeat-interval", "-5s"}, "--heartbeat-interval -5s: want a positive interval"},
		{[]string{"--memory-budget", "-1"}, "--memory-budget -1: want a positive number of MiB"},
		{[]string{"--loader-rate", "0"}, "--loader-rate 0: want a positive number of instructions per second, or -1 for no limit"},
		{[]string{"--on-error", "maybe"}, `--on-error "maybe": want block or allow`},
		{[]string{"--procs", "-2"}, "--procs -2: want a number of CPUs, or 0 for half of them"},
	} {
		out, err := exec.Command(bin, append([]string{"run", "--lock-file", lock}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("run %v: err %v, output %q; want an error saying %q", tc.args, err, out, tc.want)
		}
	}
}

// A rule set with more kernel-enforceable rules than the table holds is an
// error at start, not block rules quietly turned into alerts.
func TestRunRefusesARuleSetThatDoesNotFitTheKernelTable(t *testing.T) {
	bin := goBuild(t, ".", "ebpf-sentry")
	dir := t.TempDir()
	n := kernel.MaxRules + 1
	for file, from := 0, 0; from < n; file, from = file+1, from+1000 {
		var b strings.Builder
		for i := from; i < min(n, from+1000); i++ {
			fmt.Fprintf(&b, "- {id: r%d, severity: low, action: block, match: {helpers_any: [1]}}\n", i)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.yaml", file)), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, "run", "--rules", dir, "--lock-file", filepath.Join(t.TempDir(), "lock")).CombinedOutput()
	want := fmt.Sprintf("does not fit the kernel table: it holds %d rules, 1 more are enforceable in the kernel (r%d)", kernel.MaxRules, kernel.MaxRules)
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("run with %d block rules: err %v, output %q; want %q", n, err, out, want)
	}
}

// A block verdict that loaded in enforce mode is a tamper event; the same
// in monitor mode, a kill, or the agent's own spared load is not.
func TestBlockedYetLoadedIsTampering(t *testing.T) {
	loaded := sensor.Outcome{Result: sensor.ResultLoaded}
	for _, tc := range []struct {
		name   string
		mode   string
		ev     sensor.Event
		tamper bool
	}{
		{"blocked and loaded in enforce mode", "enforce", sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionMonitor, Outcome: loaded, RuleID: "r"}, true},
		{"blocked, kill failed, loaded", "enforce", sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionKillFailed, Outcome: loaded}, true},
		{"blocked and loaded in monitor mode", "monitor", sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionMonitor, Outcome: loaded}, false},
		{"the agent's own load", "enforce", sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionSelf, Outcome: loaded}, false},
		{"blocked and killed", "enforce", sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionKilled, Outcome: sensor.Outcome{Result: sensor.ResultKilled}}, false},
		{"allowed and loaded", "enforce", sensor.Event{Verdict: sensor.VerdictAllow, Outcome: loaded}, false},
	} {
		ev := enforcementBypassed(tc.mode, &tc.ev)
		if (ev != nil) != tc.tamper {
			t.Errorf("%s: tamper event %+v, want one: %v", tc.name, ev, tc.tamper)
		}
		if ev != nil && (ev.Event != output.KindTamper || ev.Tamper.What != output.TamperEnforcement) {
			t.Errorf("%s: %+v", tc.name, ev)
		}
	}
}

// The kernel's loss counters are read every --loss-interval, as the
// pipeline's are; a disabled pipeline timer (negative) or none given keeps
// the 10 s default for the kernel's.
func TestKernelLossCountersFollowLossInterval(t *testing.T) {
	for _, c := range []struct{ flag, want time.Duration }{
		{250 * time.Millisecond, 250 * time.Millisecond},
		{time.Hour, time.Hour},
		{0, 10 * time.Second},
		{-1, 10 * time.Second},
	} {
		o := output.DefaultOptions()
		o.LossInterval = c.flag
		if got := kernelLossInterval(o); got != c.want {
			t.Errorf("--loss-interval %v: kernel counters read every %v, want %v", c.flag, got, c.want)
		}
	}
}
