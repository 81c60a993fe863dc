package sensor

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// These tests measure the evasions of docs/EVASION.md; they assert what the
// document claims, so a change in behaviour breaks them.

// A loader whose second thread keeps trying to pin the fd the load will
// return, so that the program would outlive the SIGKILL.
func TestEvasionSecondThreadRacesToPinTheFD(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	if err := ensureBPFFS(); err != nil {
		t.Fatal(err)
	}
	prefix := "/sys/fs/bpf/se2e_race_"
	insns := writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd))
	const attempts = 20
	killed, pinned, errnos := 0, 0, map[int]int{}
	for range attempts {
		run := runLoader(t, "-insns", insns, "-name", "se2eblk_race", "-race", prefix)
		path := fmt.Sprintf("%s%d", prefix, run.pid)
		if _, err := os.Stat(path); err == nil {
			pinned++
			os.Remove(path)
		}
		if run.killed {
			killed++
		}
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if len(evs) == 1 {
			errnos[evs[0].Outcome.Errno]++
		}
	}
	t.Logf("%d attempts: %d loaders killed, %d programs pinned, exit errnos %v", attempts, killed, pinned, errnos)
	if killed != attempts || pinned != 0 {
		t.Errorf("%d/%d killed, %d pinned: the race evades enforcement", killed, attempts, pinned)
	}
	// docs/EVASION.md: every load ends with EAGAIN (the verifier saw the
	// pending SIGKILL), so no program and no fd ever existed.
	if errnos[int(syscall.EAGAIN)] != attempts {
		t.Errorf("exit errnos %v, want EAGAIN for all %d loads", errnos, attempts)
	}
	if left := progsNamed(t, "se2eblk_race"); len(left) != 0 {
		t.Errorf("blocked programs still loaded: %v", left)
	}
}

// subprogHelpers moves the helper calls into a bpf-to-bpf callee:
// main: call sub; r0 = 0; exit. sub: the helpers; r0 = 0; exit.
func subprogHelpers(helpers ...int32) []byte {
	b := asmInsn(0x85, 0x10, 0, 2) // call pc+2 (src_reg 1: BPF_PSEUDO_CALL)
	b = append(b, asmInsn(0xb7, 0, 0, 0)...)
	b = append(b, asmInsn(0x95, 0, 0, 0)...)
	return append(b, helperProg(helpers...)...)
}

func TestEvasionCases(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	cases := []struct {
		name    string
		prog    string
		insns   []byte
		blocked bool
		why     string
	}{
		{"helper calls moved into a sub-program are still counted and blocked", "se2eblk_sub",
			subprogHelpers(fnGetCurrentPidTgd, fnGetCurrentPidTgd), true, "the kernel walks every slot, sub-programs included"},
		{"a renamed program evades a name-based rule", "renamed_prog",
			helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd), false, "rules that need a name match are only as strong as the name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runLoader(t, "-insns", writeInsns(t, tc.insns), "-name", tc.prog)
			if run.killed != tc.blocked {
				t.Fatalf("loader killed=%v, want %v (%s)", run.killed, tc.blocked, tc.why)
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("%d events", len(evs))
			}
			ev := evs[0]
			if (ev.Verdict == VerdictBlock) != tc.blocked {
				t.Errorf("verdict %v, want blocked=%v", ev.Verdict, tc.blocked)
			}
			if !tc.blocked && (len(run.results) != 1 || run.results[0].Ret < 0) {
				t.Errorf("load failed: %v", run.results)
			}
			t.Logf("verdict %v action %v outcome %+v helpers %v sub-calls %d", ev.Verdict, ev.Action, ev.Outcome, ev.Helpers, ev.CallsSub)
		})
	}
}

const fnTailCall = 12

// tailCaller calls bpf_get_current_pid_tgid, then tail-calls index 0 of the
// prog array whose fd the loader patches into the ld_imm64 (bpfload
// -prog-array): r6 = r1; call; r1 = r6; r2 = map; r3 = 0; tail_call; r0 = 0; exit.
func tailCaller() []byte {
	b := asmInsn(0xbf, 0x16, 0, 0)
	b = append(b, asmInsn(0x85, 0, 0, fnGetCurrentPidTgd)...)
	b = append(b, asmInsn(0xbf, 0x61, 0, 0)...)
	b = append(b, asmInsn(0x18, 0x12, 0, 0)...) // src_reg 1: BPF_PSEUDO_MAP_FD
	b = append(b, asmInsn(0, 0, 0, 0)...)
	b = append(b, asmInsn(0xb7, 0x03, 0, 0)...)
	b = append(b, asmInsn(0x85, 0, 0, fnTailCall)...)
	return append(b, helperProg()...)
}

// The rule wants two bpf_get_current_pid_tgid calls; a loader puts one in a
// program that tail-calls a second program holding the other. Judged per
// program (the e2e rules), neither load is blocked and the chain runs both
// calls: the evasion docs/EVASION.md lists. With the same profile as a rule
// of scope group, the second loader's load completes the profile summed over
// the group the shared prog_array forms, and is blocked.
func TestEvasionTailCallSplitsAHelperProfile(t *testing.T) {
	for _, group := range []bool{false, true} {
		name := "per-program rule: evaded"
		if group {
			name = "scope group rule: the completing load is blocked"
		}
		t.Run(name, func(t *testing.T) { testTailCallSplit(t, group) })
	}
}

const groupTestRule = `
- id: e2e-group
  description: two pid_tgid calls summed over a loader group
  severity: high
  action: block
  scope: group
  match:
    prog_name: {prefix: [se2eblk_]}
    helpers: {bpf_get_current_pid_tgid: 2}
`

func testTailCallSplit(t *testing.T, group bool) {
	kr := compiledTestRules(t)
	if group {
		set, err := rules.Parse("e2e.yaml", []byte(testRules+groupTestRule))
		if err != nil {
			t.Fatal(err)
		}
		kr = rules.Compile(set).Kernel()
	}
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: kr})
	if err := ensureBPFFS(); err != nil {
		t.Fatal(err)
	}
	array, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer array.Close()
	pin := fmt.Sprintf("/sys/fs/bpf/se2e_tailarray_%d_%v", os.Getpid(), group)
	if err := array.Pin(pin); err != nil {
		t.Fatal(err)
	}
	defer array.Unpin()

	callee := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd)), "-name", "se2eblk_tc2", "-prog-array", pin, "-tail-slot", "0")
	defer array.Delete(uint32(0))
	if callee.killed || len(callee.results) != 1 || callee.results[0].Ret < 0 {
		t.Fatalf("callee loader: killed=%v results %v; the first half alone must load", callee.killed, callee.results)
	}
	var target uint32
	if err := array.Lookup(uint32(0), &target); err != nil {
		t.Fatalf("prog array slot 0: %v", err)
	}
	if target != callee.results[0].ID {
		t.Fatalf("prog array slot 0 holds prog %d, want the callee %d", target, callee.results[0].ID)
	}
	caller := runLoader(t, "-insns", writeInsns(t, tailCaller()), "-name", "se2eblk_tc1", "-prog-array", pin)
	if caller.killed != group {
		t.Fatalf("caller loader killed=%v (results %v), want %v", caller.killed, caller.results, group)
	}
	if !group && (len(caller.results) != 1 || caller.results[0].Ret < 0) {
		t.Fatalf("caller: results %v; judged per program, the second half loads", caller.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(callee.pid): true, uint32(caller.pid): true}, 2, eventWait)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	total := uint32(0)
	for _, ev := range evs {
		want, rule := VerdictAllow, ""
		if group && ev.Program.Name == "se2eblk_tc1" {
			want, rule = VerdictBlock, "e2e-group"
		}
		if ev.Verdict != want || ev.RuleID != rule {
			t.Errorf("%s: verdict %v by %q, want %v by %q", ev.Program.Name, ev.Verdict, ev.RuleID, want, rule)
		}
		total += ev.Helpers[fnGetCurrentPidTgd]
		if ev.Program.Name == "se2eblk_tc1" && ev.Helpers[fnTailCall] != 1 {
			t.Errorf("caller helpers %v, want one bpf_tail_call", ev.Helpers)
		}
	}
	if total != 2 {
		t.Errorf("the two halves call bpf_get_current_pid_tgid %d times, want the rule's 2", total)
	}
}

// The SIGKILL is queued at sys_enter; the verifier checks for pending
// signals and gives up, so the blocked program is never created at all.
func TestKilledLoadNeverReturnsAnFD(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	for _, n := range []int{2, 100_000} {
		insns := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
		if n > 2 {
			pad := genInsns(n)
			insns = append(helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)[:16], pad...)
		}
		run := runLoader(t, "-insns", writeInsns(t, insns), "-name", "se2eblk_nofd")
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if !run.killed || len(evs) != 1 {
			t.Fatalf("%d insns: killed=%v events=%d", n, run.killed, len(evs))
		}
		o := evs[0].Outcome
		t.Logf("%d insns: outcome %+v (%v)", n, o, syscall.Errno(o.Errno))
		if o.Result != ResultKilled || o.FD != 0 || o.Errno == 0 || evs[0].Program.Kernel != nil {
			t.Errorf("%d insns: the blocked load returned %+v kernel %+v, want an error and no program", n, o, evs[0].Program.Kernel)
		}
		if n == 2 && o.Errno != int(syscall.EAGAIN) {
			t.Errorf("2 insns: errno %v, want EAGAIN (the verifier's signal check)", syscall.Errno(o.Errno))
		}
	}
}
