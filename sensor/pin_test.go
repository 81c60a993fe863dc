package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// With PinPath the kernel side outlives the agent: after Close, a blocked
// load is still stopped (killed on a syscall hook, EPERM on an LSM hook)
// by the hook the kernel's plan picks, 32-bit companions included, until
// the pins are removed. Every link type the plan uses must be pinnable.
func TestPinnedSensorKeepsEnforcing(t *testing.T) {
	testutils.RequireRoot(t, "pinning the sensor")
	pin := filepath.Join("/sys/fs/bpf", fmt.Sprintf("sentry-test-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(pin) })
	s, err := New(Config{PinPath: pin, Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
	if err != nil {
		t.Fatalf("start pinned sensor: %v", err)
	}
	hook := s.Hook()
	s.Close()
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	stopped := func(name string) bool {
		run := runLoader(t, "-insns", writeInsns(t, twice), "-name", name)
		switch {
		case run.killed:
			return true
		case len(run.results) == 1 && run.results[0].Ret == -1 && hook.IsLSM():
			return true
		case len(run.results) == 1 && run.results[0].Ret >= 0:
			return false
		}
		t.Fatalf("%s: loader killed=%v results=%v", name, run.killed, run.results)
		return false
	}
	if !stopped("se2eblk_pin") {
		t.Fatalf("hook %s: a blocked load loaded after the pinned sensor's agent closed", hook)
	}
	if err := os.RemoveAll(pin); err != nil {
		t.Fatal(err)
	}
	// Unpinned links are released asynchronously (RCU): poll, with a
	// bound generous enough for a loaded machine.
	deadline := time.Now().Add(time.Minute)
	for stopped("se2eblk_pin2") {
		if time.Now().After(deadline) {
			t.Fatalf("hook %s: still enforcing a minute after the pins were removed", hook)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("hook %s: enforced while pinned, released after unpinning", hook)
}

// A load killed by an older pinned sensor that this agent did not take
// over (its own sensor here runs unpinned, with rules that block nothing)
// is reported as killed by someone other than this sensor, with this
// sensor's own verdict (allow), not as a failed load (the verifier's
// EAGAIN on the pending signal, as before). The old sensor runs on the
// syscall tracepoint with the kill enforcer on every kernel (an LSM
// sensor would deny: the outcome would be its EPERM). A load this sensor
// kills itself is still reported as its own kill.
func TestLoadKilledByAnOlderPinnedSensorIsReportedSo(t *testing.T) {
	testutils.RequireRoot(t, "pinning the sensor")
	pin := filepath.Join("/sys/fs/bpf", fmt.Sprintf("sentry-trust2-stale-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(pin) })
	old, err := New(Config{PinPath: pin, Hook: HookTracepoint, Enforcer: EnforcerKill, Mode: ModeEnforce,
		Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
	if err != nil {
		t.Fatalf("start pinned sensor: %v", err)
	}
	old.Close()
	s := startSensor(t, Config{Mode: ModeEnforce})
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	run := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2eblk_stale")
	if !run.killed {
		t.Fatalf("the old pinned sensor did not kill the load it blocks: %+v", run.results)
	}
	ev := collectNamed(t, s, "se2eblk_stale", eventWait)
	if ev == nil {
		t.Fatal("the killed load was not reported")
	}
	if ev.Outcome.Result != ResultKilled || !ev.Outcome.KilledByOther || ev.Verdict != VerdictAllow {
		t.Fatalf("reported as %+v, verdict %s; want killed by another, allow", ev.Outcome, ev.Verdict)
	}
	if err := os.RemoveAll(pin); err != nil {
		t.Fatal(err)
	}
	own := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	if run := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2eblk_own"); !run.killed && !own.Hook().IsLSM() {
		t.Fatalf("hook %s: the sensor's own block did not kill: %+v", own.Hook(), run.results)
	}
	ev = collectNamed(t, own, "se2eblk_own", eventWait)
	if ev.Verdict != VerdictBlock || ev.Outcome.KilledByOther {
		t.Fatalf("the sensor's own block reported as %+v, verdict %s", ev.Outcome, ev.Verdict)
	}
}
