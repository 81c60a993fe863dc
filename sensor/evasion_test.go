package sensor

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
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
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, 10*time.Second)
		if len(evs) == 1 {
			errnos[evs[0].Outcome.Errno]++
		}
	}
	t.Logf("%d attempts: %d loaders killed, %d programs pinned, exit errnos %v", attempts, killed, pinned, errnos)
	if killed != attempts || pinned != 0 {
		t.Errorf("%d/%d killed, %d pinned: the race evades enforcement", killed, attempts, pinned)
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
		{"behaviour split across two tail-called programs evades a per-program helper count (part 1)", "se2eblk_tc1",
			helperProg(fnGetCurrentPidTgd), false, "each load is judged alone"},
		{"behaviour split across two tail-called programs evades a per-program helper count (part 2)", "se2eblk_tc2",
			helperProg(fnGetCurrentPidTgd), false, "each load is judged alone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runLoader(t, "-insns", writeInsns(t, tc.insns), "-name", tc.prog)
			if run.killed != tc.blocked {
				t.Fatalf("loader killed=%v, want %v (%s)", run.killed, tc.blocked, tc.why)
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, 10*time.Second)
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
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, 20*time.Second)
		if !run.killed || len(evs) != 1 {
			t.Fatalf("%d insns: killed=%v events=%d", n, run.killed, len(evs))
		}
		o := evs[0].Outcome
		t.Logf("%d insns: outcome %+v (%v)", n, o, syscall.Errno(o.Errno))
		if o.Result != ResultKilled || o.FD != 0 || o.Errno == 0 || evs[0].Program.Kernel != nil {
			t.Errorf("%d insns: the blocked load returned %+v kernel %+v, want an error and no program", n, o, evs[0].Program.Kernel)
		}
	}
}
