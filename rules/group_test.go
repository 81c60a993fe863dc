package rules

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

func TestScopeIsParsedAndCompiled(t *testing.T) {
	set, err := Parse("g.yaml", []byte(`
- id: g
  severity: high
  action: alert
  scope: group
  match:
    helpers: {bpf_get_current_pid_tgid: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	if set.Rules[0].Scope != ScopeGroup {
		t.Fatalf("scope %v", set.Rules[0].Scope)
	}
	c := Compile(set)
	if len(c.Slots) != 1 || c.Table.GroupN != 1 || c.Table.Rules[0].Flags&kernel.FlagGroup == 0 {
		t.Errorf("an alert rule of scope group goes into the kernel table as a group rule: slots %v, group_n %d, flags %#x",
			c.Slots, c.Table.GroupN, c.Table.Rules[0].Flags)
	}
	for _, tc := range []struct{ name, scope, want string }{
		{"an unknown scope is refused", "scope: process", `g.yaml:4:10: rule "g": scope: unknown scope "process"; valid: program, group`},
		{"a group rule the kernel cannot evaluate is refused", "scope: group\n  match:\n    strings: {contains: [x]}",
			"a rule of scope group is evaluated in the kernel only, and this one cannot be: strings evaluated in user space only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "- id: g\n  severity: high\n  action: alert\n  " + tc.scope + "\n"
			if !strings.Contains(tc.scope, "match") {
				src += "  match:\n    helpers: {bpf_get_current_pid_tgid: 2}\n"
			}
			_, err := Parse("g.yaml", []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func groupInsns(t *testing.T, insns asm.Instructions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The halves of the split pamspy profile (as sensor/group_test.go loads
// them), as the kernel's walk sees them: only the helper calls matter.
func pamHalves(t *testing.T) (callee, caller []byte) {
	calls := func(fns ...asm.BuiltinFunc) []byte {
		var insns asm.Instructions
		for _, fn := range fns {
			insns = append(insns, fn.Call())
		}
		return groupInsns(t, append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return()))
	}
	callee = calls(asm.FnMapLookupElem, asm.FnMapDeleteElem, asm.FnRingbufReserve, asm.FnRingbufSubmit)
	caller = calls(asm.FnGetCurrentPidTgid, asm.FnProbeRead, asm.FnProbeRead, asm.FnProbeRead, asm.FnProbeRead,
		asm.FnProbeRead, asm.FnGetCurrentComm, asm.FnTailCall)
	return callee, caller
}

// A rule of scope group judges only a group view (Facts.Scope), where the
// helper counts are the group's sum: here the two halves' instructions one
// after the other, which count the same. The kernel evaluator and the Go
// one (EvaluateGroup) agree on seed-pamspy-group, and neither lets it
// match a program view.
func TestGroupRulesJudgeOnlyTheGroupView(t *testing.T) {
	testutils.RequireRoot(t, "BPF_PROG_RUN of the rule evaluator harness")
	h, err := kernel.NewHarness()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	set := MustDefaults()
	c := Compile(set)
	slot := -1
	for i, id := range c.Slots {
		if id == "seed-pamspy-group" {
			slot = i
		}
	}
	if slot < 0 {
		t.Fatalf("seed-pamspy-group not in the kernel table: %v", c.Slots)
	}
	if err := h.SetTable(&c.Table); err != nil {
		t.Fatal(err)
	}
	callee, caller := pamHalves(t)
	both := append(append([]byte{}, callee...), caller...)
	for _, tc := range []struct {
		name  string
		insns []byte
		group bool
		want  bool
	}{
		{"both halves in a program view: no match", both, false, false},
		{"both halves in a group view: match", both, true, true},
		{"one half in a group view: no match", caller, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := &program.Program{Name: "split", Type: 5, Insns: tc.insns}
			meta := Facts(prog)
			if tc.group {
				meta.Scope = kernel.ScopeGroup
			}
			out, err := h.Run(&meta, tc.insns)
			if err != nil {
				t.Fatal(err)
			}
			kMatch := out.Result.Matched[slot/64]&(1<<(slot%64)) != 0
			rep := analysis.Analyze(prog, nil)
			v := Evaluate(set, prog, rep)
			if tc.group {
				v = EvaluateGroup(set, prog, rep)
			}
			goMatch := false
			for _, hit := range v.Hits {
				goMatch = goMatch || hit.ID == "seed-pamspy-group"
			}
			if kMatch != tc.want || goMatch != tc.want {
				t.Errorf("kernel match %v, Go match %v, want %v", kMatch, goMatch, tc.want)
			}
		})
	}
}
