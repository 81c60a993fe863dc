package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelcaps"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The seed's kprobe hook and the tracepoint hook, attached at the same
// time, report the same loads identically: instructions, name, helper
// histogram, verdict and rule, outcome and prog id. Where the kernel has no
// kprobes (this host), asking for the hook fails with ErrNoHook.
func TestKprobeHookSeesWhatTheTracepointSees(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	k := kernelExpectation(t)
	label := k.label
	small := 1 << 20 // two sensors in a 512 MiB VM
	if !k.wants(t, kernelcaps.KprobeBpf, ProbeKernel().Has(FeatKprobes)) {
		s, err := New(Config{Hook: HookKprobe, RingBufferSize: small})
		if err == nil {
			s.Close()
			t.Fatalf("kernel %s has no kprobes, yet the kprobe hook started", label)
		}
		if !errors.Is(err, ErrNoHook) {
			t.Fatalf("kernel %s: kprobe hook failed with %v, want ErrNoHook", label, err)
		}
		return
	}
	kp := startSensor(t, Config{Hook: HookKprobe, Mode: ModeMonitor, Rules: compiledTestRules(t), RingBufferSize: small})
	tp := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeMonitor, Rules: compiledTestRules(t), RingBufferSize: small})
	if kp.Hook() != HookKprobe || kp.KprobeTarget() == "" {
		t.Fatalf("kprobe sensor: hook %s target %q", kp.Hook(), kp.KprobeTarget())
	}
	t.Logf("kernel %s: kprobe attached to %s", label, kp.KprobeTarget())
	loads := []struct {
		name  string
		insns []byte
	}{
		{"se2eblk_kp", helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)},
		{"se2e_kpok", helperProg(fnKtimeGetNs, fnGetSmpProcID)},
		{"se2e_kp600", genInsns(600)},
		{"se2e_kprej", append(genInsns(10)[:9*8], asmInsn(0xb7, 0, 0, 1)...)}, // no exit: the verifier refuses it
	}
	for _, l := range loads {
		run := runLoader(t, "-insns", writeInsns(t, l.insns), "-name", l.name)
		pids := map[uint32]bool{uint32(run.pid): true}
		a := collect(t, kp, pids, 1, eventWait)
		b := collect(t, tp, pids, 1, eventWait)
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("%s: kprobe saw %d events, tracepoint %d; want 1 each", l.name, len(a), len(b))
		}
		if d := sameEvent(a[0], b[0]); d != "" {
			t.Errorf("%s: kprobe and tracepoint events differ: %s", l.name, d)
		}
		if !bytes.Equal(a[0].Program.Insns, l.insns) {
			t.Errorf("%s: captured instructions differ from the submitted ones", l.name)
		}
	}
}

// sameEvent names the first difference between two captures of one load.
func sameEvent(a, b *Event) string {
	switch {
	case !a.Complete() || !b.Complete():
		return fmt.Sprintf("incomplete: %v / %v", a.Missing, b.Missing)
	case !bytes.Equal(a.Program.Insns, b.Program.Insns):
		return "instructions"
	case a.Program.Name != b.Program.Name || a.Program.Type != b.Program.Type:
		return fmt.Sprintf("name/type %q/%d vs %q/%d", a.Program.Name, a.Program.Type, b.Program.Name, b.Program.Type)
	case fmt.Sprint(a.Helpers) != fmt.Sprint(b.Helpers) || a.InsnHash != b.InsnHash:
		return fmt.Sprintf("helpers %v vs %v", a.Helpers, b.Helpers)
	case a.Verdict != b.Verdict || a.RuleID != b.RuleID || a.Action != b.Action:
		return fmt.Sprintf("verdict %v %q %v vs %v %q %v", a.Verdict, a.RuleID, a.Action, b.Verdict, b.RuleID, b.Action)
	case a.Outcome != b.Outcome:
		return fmt.Sprintf("outcome %+v vs %+v", a.Outcome, b.Outcome)
	case (a.Program.Kernel == nil) != (b.Program.Kernel == nil) || a.Program.Kernel != nil && a.Program.Kernel.ID != b.Program.Kernel.ID:
		return fmt.Sprintf("kernel %+v vs %+v", a.Program.Kernel, b.Program.Kernel)
	}
	return ""
}
