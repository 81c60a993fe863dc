package sensor

import (
	"errors"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/vmtest/capabilities"
)

// Where the kernel permits bpf_probe_write_user, the corrupt enforcer
// rewrites instruction 0 of a blocked load to BPF_EXIT in the loader's
// memory before the kernel copies it: the loader is not killed, the
// verifier then refuses the rewritten program (R0 is never set) and no
// program exists. Where lockdown forbids the helper, asking for corrupt
// is refused up front, naming the reason, and auto never picks it.
func TestCorruptEnforcerRewritesInstructionZeroOrIsRefused(t *testing.T) {
	label, want, ok := kernelExpectation(t)
	if !ok {
		t.Skipf("kernel %s has no expectation list saying whether bpf_probe_write_user is permitted", label)
	}
	cfg := Config{Hook: HookTracepoint, Enforcer: EnforcerCorrupt, Mode: ModeEnforce, Rules: compiledTestRules(t)}
	if !want.Expects(capabilities.ProbeWriteUser) {
		testutils.RequireRoot(t, "starting the sensor")
		s, err := New(cfg)
		if err == nil {
			s.Close()
			t.Fatalf("kernel %s (lockdown %s): --enforcer corrupt started, want refused", label, want.Lockdown)
		}
		if !errors.Is(err, ErrEnforcerRefused) {
			t.Fatalf("kernel %s: corrupt refused with %v, want ErrEnforcerRefused", label, err)
		}
		plan, perr := PlanFor(ProbeKernel())
		if perr != nil || plan.Enforcer == EnforcerCorrupt {
			t.Errorf("kernel %s: auto plan %+v (%v) must not be corrupt", label, plan, perr)
		}
		return
	}
	s := startSensor(t, cfg)
	run := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)), "-name", "se2eblk_cor")
	if run.killed || len(run.results) != 1 {
		t.Fatalf("loader killed=%v results=%v: corrupt must not kill", run.killed, run.results)
	}
	if r := run.results[0]; r.Ret >= 0 || r.ID != 0 {
		t.Errorf("corrupted load returned %d id %d, want the verifier's refusal and no program", r.Ret, r.ID)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, 20*time.Second)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	if ev := evs[0]; ev.Verdict != VerdictBlock || ev.Action != ActionCorrupted || ev.Outcome.Result != ResultFailed {
		t.Errorf("verdict %v action %v outcome %+v, want block, corrupted, failed", ev.Verdict, ev.Action, ev.Outcome)
	}
	if left := progsNamed(t, "se2eblk_cor"); len(left) != 0 {
		t.Errorf("corrupted program exists: %v", left)
	}
}
