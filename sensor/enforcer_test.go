package sensor

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelcaps"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// Where the kernel permits bpf_probe_write_user, the corrupt enforcer
// rewrites the first instructions of a blocked load in the loader's memory
// before the kernel copies them ("r0 = 0; if r0 == 0 goto <first exit>"):
// the loader is not killed, the program loads, and BPF_PROG_RUN shows it
// returns 0 at once where the same program unjudged returns 7. A program
// whose rewrite would leave a sub-program unreachable is refused by the
// verifier instead (no program). Where lockdown forbids the helper, asking
// for corrupt is refused up front, naming the reason, and auto never picks
// it.
func TestCorruptEnforcerRewritesInstructionZeroOrIsRefused(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	k := kernelExpectation(t)
	label := k.label
	cfg := Config{Hook: HookTracepoint, Enforcer: EnforcerCorrupt, Mode: ModeEnforce, Rules: compiledTestRules(t)}
	if !k.wants(t, kernelcaps.ProbeWriteUser, CorruptAvailable() == nil) {
		s, err := New(cfg)
		if err == nil {
			s.Close()
			t.Fatalf("kernel %s (lockdown %s): --enforcer corrupt started, want refused", label, k.lockdown())
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
	// A socket filter (BPF_PROG_RUN works for it): two helper calls, then
	// return 7. e2e-exact blocks it by name.
	seven := append(append(asmInsn(0x85, 0, 0, fnKtimeGetNs), asmInsn(0x85, 0, 0, fnGetSmpProcID)...),
		append(asmInsn(0xb7, 0, 0, 7), asmInsn(0x95, 0, 0, 0)...)...)
	got, okPID := runKept(t, seven, "se2e_cor_ok")
	if got != 7 {
		t.Fatalf("the unjudged program returned %d, want 7", got)
	}
	got, corPID := runKept(t, seven, "se2eexact")
	if got != 0 {
		t.Errorf("the corrupted program returned %d, want 0 (it must return at once)", got)
	}
	evs := collect(t, s, map[uint32]bool{uint32(okPID): true, uint32(corPID): true}, 2, eventWait)
	var cor *Event
	for _, ev := range evs {
		if ev.Program.Name == "se2eexact" {
			cor = ev
		}
	}
	if cor == nil || cor.Verdict != VerdictBlock || cor.Action != ActionCorrupted || cor.Outcome.Result != ResultLoaded {
		t.Fatalf("event %+v, want block, corrupted, loaded", cor)
	}
	if !bytes.Equal(cor.Program.Insns, seven) {
		t.Errorf("the capture is not the judged program")
	}

	// With a sub-program the rewrite leaves it unreachable: refused.
	withSub := append(append(asmInsn(0x85, 0x10, 0, 2), asmInsn(0xb7, 0, 0, 7)...), append(asmInsn(0x95, 0, 0, 0),
		append(asmInsn(0xb7, 0, 0, 1), asmInsn(0x95, 0, 0, 0)...)...)...)
	run := runLoader(t, "-insns", writeInsns(t, withSub), "-name", "se2eexact", "-type", "1")
	if run.killed || len(run.results) != 1 || run.results[0].Ret >= 0 || run.results[0].ID != 0 {
		t.Errorf("corrupted program with a sub-program: killed=%v results=%v, want the verifier's refusal", run.killed, run.results)
	}
}

// runKept loads a socket filter with bpfload, keeps it loaded while it runs
// it once with BPF_PROG_RUN on a small packet, and returns its result and
// the loader's pid.
func runKept(t *testing.T, insns []byte, name string) (uint32, int) {
	t.Helper()
	cmd := exec.Command(buildLoader(t), "-insns", writeInsns(t, insns), "-name", name, "-type", "1", "-keep")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	var r loadResult
	if err := json.NewDecoder(out).Decode(&r); err != nil {
		t.Fatalf("%s: loader output: %v", name, err)
	}
	if r.Ret < 0 || r.ID == 0 {
		t.Fatalf("%s: load failed: %+v", name, r)
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(r.ID))
	if err != nil {
		t.Fatalf("%s: program %d: %v", name, r.ID, err)
	}
	defer p.Close()
	ret, err := p.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	if err != nil {
		t.Fatalf("%s: BPF_PROG_RUN: %v", name, err)
	}
	return ret, cmd.Process.Pid
}
