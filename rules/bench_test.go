package rules

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// bigProgram is n slots of repeated 16-slot blocks: a string stored on the
// stack ("/etc/sha" + "dow\0"), helper calls, a map load, ALU filler.
func bigProgram(n int) *program.Program {
	block := [][]byte{
		genSlot(0x62, 10, 0, -16, int32(binary.LittleEndian.Uint32([]byte("/etc")))), // *(u32 *)(r10 -16) = imm
		genSlot(0x62, 10, 0, -12, int32(binary.LittleEndian.Uint32([]byte("/sha")))),
		genSlot(0x62, 10, 0, -8, int32(binary.LittleEndian.Uint32([]byte("dow\x00")))),
		genSlot(0xbf, 1, 10, 0, 0), // r1 = r10
		genSlot(0x07, 1, 0, 0, -16),
		genSlot(0x85, 0, 0, 0, 14),
		genSlot(0x85, 0, 0, 0, 1),
		genSlot(0x18, 1, 1, 0, 3), genSlot(0, 0, 0, 0, 0),
		genSlot(0x85, 0, 0, 0, 131),
		genSlot(0xb7, 0, 0, 0, 0),
		genSlot(0x85, 0, 0, 0, 132),
		genSlot(0x07, 0, 0, 0, 1),
		genSlot(0x85, 0, 0, 0, 4),
		genSlot(0xb7, 2, 0, 0, 7),
		genSlot(0x85, 0, 0, 0, 113),
	}
	insns := make([]byte, 0, n*8)
	for len(insns)/8+len(block) < n {
		for _, s := range block {
			insns = append(insns, s...)
		}
	}
	for len(insns)/8 < n-1 {
		insns = append(insns, genSlot(0xb7, 0, 0, 0, 0)...)
	}
	insns = append(insns, genSlot(0x95, 0, 0, 0, 0)...)
	return &program.Program{Source: program.SourceRaw, Name: "big_program", Type: 5, Insns: insns, InsnCnt: uint32(n),
		Loader: &program.Loader{Comm: "bench", Exe: "/usr/bin/bench"}}
}

// BenchmarkEvaluateDefaults1M evaluates the embedded defaults against the
// analysis of a 1,000,000-instruction program (the analysis itself is not
// timed: it is the analysis package's benchmark).
func BenchmarkEvaluateDefaults1M(b *testing.B) {
	prog := bigProgram(1_000_000)
	rep := analysis.Analyze(prog, &analysis.Options{Kfuncs: noKfuncs{}})
	set := MustDefaults()
	b.Logf("%d slots, %d helpers, %d strings, %d maps", rep.InsnCount, len(rep.Helpers), len(rep.Strings), len(rep.Maps))
	b.ResetTimer()
	for b.Loop() {
		Evaluate(set, prog, rep)
	}
}

// BenchmarkKernelEvaluate measures rules_evaluate in the kernel per load,
// timed inside the harness with bpf_ktime_get_ns (BPF_PROG_RUN cannot
// repeat syscall programs): kernel-ns/eval for the compiled defaults and for
// tables of 64 and 1,024 rules, and kernel-ns/insn for the facts walk.
func BenchmarkKernelEvaluate(b *testing.B) {
	testutils.RequireRoot(b, "BPF_PROG_RUN of the rule evaluator harness")
	h, err := kernel.NewHarness()
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	prog := bigProgram(kernel.HarnessInsns)
	prog.Name = "det_pam_get_aut"
	full, full1024 := &Set{}, &Set{}
	for i := range max(kernel.MaxRules, 1024) {
		r := MustDefaults().Rules[0] // probe-write-user: never matches here, so every rule runs to its end
		c := *r
		c.ID = fmt.Sprintf("%s-%d", r.ID, i)
		c.Match = Match{Helpers: []HelperMin{helperMin(14, 1), helperMin(1, 1), helperMin(131, 1), helperMin(132, 1)},
			HelpersOnly: true, ProgName: &StringPatterns{Prefix: []string{"det_", "handle_"}}, Loader: &LoaderMatch{UID: []uint32{0, 1000}}}
		if i < 64 {
			full.Rules = append(full.Rules, &c)
		}
		full1024.Rules = append(full1024.Rules, &c)
	}
	for _, tc := range []struct {
		name  string
		table *kernel.Table
	}{
		{"defaults", &Compile(MustDefaults()).Table},
		{"64 rules", &compile(full, true).Table},
		{"1024 rules", &compile(full1024, true).Table},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if err := h.SetTable(tc.table); err != nil {
				b.Fatal(err)
			}
			meta := Facts(&program.Program{Name: prog.Name, Type: prog.Type, Loader: prog.Loader})
			var evalNS, walkNS uint64
			for b.Loop() {
				out, err := h.Run(&meta, prog.Insns)
				if err != nil {
					b.Fatal(err)
				}
				evalNS += out.EvalNS
				walkNS += out.WalkNS
			}
			b.ReportMetric(float64(evalNS)/float64(b.N), "kernel-ns/eval")
			b.ReportMetric(float64(walkNS)/float64(b.N)/float64(kernel.HarnessInsns), "kernel-ns/insn")
		})
	}
}
