package sensor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stallFor is how long bpfload holds the first fault on its instruction
// pages (userfaultfd): long enough for other loads to run meanwhile, also
// under TCG in the kernel matrix.
func stallFor() time.Duration {
	if os.Getenv(kernelEnv) != "" {
		return 4 * time.Second
	}
	return 1500 * time.Millisecond
}

// A loader whose instruction pages are served late by userfaultfd defeats
// the syscall hooks' non-faulting read (the kernel's own copy then faults
// and gets the bytes): the load is judged without its instructions. It is
// never silent — the event counts the unreadable chunk — and with
// BlockUnreadable (run's default) the loader is killed before anything
// loads, whatever its name. Tracepoint hook, both walks.
func TestStalledInstructionPagesAreReportedAndBlocked(t *testing.T) {
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	stall := stallFor().String()
	for _, walk := range []Walk{WalkLoop, WalkBounded} {
		if walk == WalkLoop && withoutBPFLoop[os.Getenv(kernelEnv)] {
			continue
		}
		t.Run("walk "+string(walk)+" without BlockUnreadable the load is judged blind and reported", func(t *testing.T) {
			s := startSensor(t, Config{Hook: HookTracepoint, Walk: walk, Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
			run := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2eblk_stall", "-uffd-stall", stall)
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.ReadErrors == 0 || ev.Complete() {
				t.Fatalf("read errors %d, missing %v: the unreadable chunk must be reported", ev.ReadErrors, ev.Missing)
			}
			// Measured, not wanted: the rule needs two helper calls
			// the sensor could not see, so the program loads.
			if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 || ev.Verdict == VerdictBlock {
				t.Fatalf("killed=%v results=%v verdict %v: expected the blind judgement to let it load (docs/EVASION.md)", run.killed, run.results, ev.Verdict)
			}
		})
		t.Run("walk "+string(walk)+" with BlockUnreadable the loader is killed", func(t *testing.T) {
			s := startSensor(t, Config{Hook: HookTracepoint, Walk: walk, Mode: ModeEnforce, BlockUnreadable: true, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
			run := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2e_stall_ok", "-uffd-stall", stall)
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			if !run.killed || len(run.results) != 0 {
				t.Fatalf("killed=%v results=%v, want the loader killed before it returned", run.killed, run.results)
			}
			if ev.Verdict != VerdictBlock || ev.Action != ActionKilled || ev.RuleID != RuleUnreadable || ev.ReadErrors == 0 {
				t.Fatalf("verdict %v action %v rule %q read errors %d, want block/killed by %s", ev.Verdict, ev.Action, ev.RuleID, ev.ReadErrors, RuleUnreadable)
			}
			if left := progsNamed(t, "se2e_stall_ok"); len(left) != 0 {
				t.Errorf("blocked program loaded: %v", left)
			}
		})
	}
}

// The lsm-bpf hook while a loader holds the judge in a page fault
// (userfaultfd on its instruction pages) and other loads run on the same
// CPU (the matrix VMs have one): the sleepable judge waits for the fault
// and judges the stalled load on its own facts (per-task scratch; with
// per-CPU scratch the loads in between overwrote them and the blocked
// program was judged under another's name). Without bpf_loop (5.10) the
// gate's tracepoint cannot wait: the stalled load is unreadable and
// BlockUnreadable denies it. Either way: EPERM, no prog id, loader alive,
// and the loads in between are judged right. The fault is held until the
// loads in between are done (bpfload -uffd-hold), so they overlap it on
// any machine, however slow.
func TestLSMBpfJudgesAStalledLoadOnItsOwn(t *testing.T) {
	if !requireLSMBpf(t) {
		return
	}
	walk := WalkLoop
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		walk = WalkBounded
	}
	s := startSensor(t, Config{Hook: HookLSMBpf, Mode: ModeEnforce, BlockUnreadable: true, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	hold := t.TempDir()
	start := time.Now()
	stalledPID, wait := startLoader(t, "-insns", writeInsns(t, twice), "-name", "se2eblk_uffd", "-uffd-stall", stallFor().String(), "-uffd-hold", hold)
	released := false
	release := func() {
		if !released {
			released = true
			if err := os.WriteFile(filepath.Join(hold, "release"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer release() // a failing test must not leave the loader held
	for deadline := time.Now().Add(eventWait); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(hold, "fault")); err == nil {
			break // the stalled load is in the fault, and stays there
		}
		if exited(stalledPID) {
			// Without bpf_loop the gate denies the unreadable load at
			// the syscall's entry, before the kernel's own copy could
			// fault: nothing is held, and nothing needs to be.
			if walk == WalkBounded {
				break
			}
			t.Fatalf("the stalled loader ended before its instruction pages faulted (walk %s)", walk)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loader's instruction pages did not fault within %v", eventWait)
		}
	}

	// Loads on the same CPU while the judge of the first one sleeps.
	mid := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2e_benign", "-count", "3")
	if mid.killed || len(mid.results) != 3 {
		t.Fatalf("loads in between: killed=%v results=%v", mid.killed, mid.results)
	}
	for _, r := range mid.results {
		if r.Ret < 0 {
			t.Fatalf("a benign load in between failed: %v", mid.results)
		}
	}
	release()

	run := wait()
	if run.killed || len(run.results) != 1 || run.results[0].Ret != -1 || run.results[0].ID != 0 {
		t.Fatalf("stalled blocked load: killed=%v results=%v, want EPERM (-1), no id, loader alive", run.killed, run.results)
	}
	// One collect for both loaders: it drops other loads' events, and
	// which loader finishes first depends on the hook.
	var ev *Event
	var midEvs []*Event
	for _, e := range collect(t, s, map[uint32]bool{uint32(stalledPID): true, uint32(mid.pid): true}, 4, eventWait) {
		if e.Program.Loader != nil && e.Program.Loader.PID == uint32(stalledPID) {
			ev = e
		} else {
			midEvs = append(midEvs, e)
		}
	}
	for _, e := range midEvs {
		if e.Verdict != VerdictAllow || e.Program.Name != "se2e_benign" || e.Helpers[fnGetCurrentPidTgd] != 2 {
			t.Errorf("load in between: verdict %v name %q helpers %v", e.Verdict, e.Program.Name, e.Helpers)
		}
	}
	if len(midEvs) != 3 {
		t.Errorf("got %d events for the loads in between, want 3", len(midEvs))
	}
	if ev == nil || ev.Action != ActionDenied {
		t.Fatalf("stalled load's event %+v, want one denied", ev)
	}
	if walk == WalkLoop {
		if ev.RuleID != "e2e-block" || ev.Program.Name != "se2eblk_uffd" || !bytes.Equal(ev.Program.Insns, twice) || ev.ReadErrors != 0 {
			t.Fatalf("rule %q name %q read errors %d: want e2e-block on its own name and instructions", ev.RuleID, ev.Program.Name, ev.ReadErrors)
		}
		if ev.Helpers[fnGetCurrentPidTgd] != 2 || len(ev.Helpers) != 1 {
			t.Fatalf("helpers %v, want only its own two calls", ev.Helpers)
		}
	} else if ev.RuleID != RuleUnreadable || ev.ReadErrors == 0 {
		t.Fatalf("rule %q read errors %d: without bpf_loop the stalled pages are unreadable and denied as such", ev.RuleID, ev.ReadErrors)
	}
	t.Logf("walk %s: stalled load denied by %s after %v", walk, ev.RuleID, time.Since(start))
}

// exited reports whether the child pid has ended (a zombie not yet waited
// for, or gone).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}
