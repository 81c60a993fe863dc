package sensor

import (
	"slices"
	"testing"
)

func featureSet(names ...string) *Features {
	f := &Features{}
	for _, n := range names {
		f.Probes = append(f.Probes, Probe{Name: n, OK: true})
	}
	return f
}

// Where the syscall tracepoints work, the plan keeps tp_btf (every
// syscall) off every path and doctor says so; without them tp_btf is the
// hook and the note is not given.
func TestPlanKeepsTpBTFOffWhereTheTracepointsWork(t *testing.T) {
	p, err := PlanFor(featureSet(FeatLoop, FeatSyscallTP, FeatTpBTF, FeatRingBuf, FeatSendSignal))
	if err != nil {
		t.Fatal(err)
	}
	if p.Hook != HookTracepoint || !slices.Contains(p.Notes, TpBTFOffNote) {
		t.Errorf("hook %s, notes %q", p.Hook, p.Notes)
	}
	p, err = PlanFor(featureSet(FeatLoop, FeatTpBTF, FeatRingBuf, FeatSendSignal))
	if err != nil {
		t.Fatal(err)
	}
	if p.Hook != HookBTF || slices.Contains(p.Notes, TpBTFOffNote) {
		t.Errorf("without tracepoints: hook %s, notes %q", p.Hook, p.Notes)
	}
}
