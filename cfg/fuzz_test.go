package cfg

import (
	"bytes"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// FuzzBuild: any instruction bytes build a graph whose blocks cover every
// instruction once and whose edges name real blocks, and render as DOT and
// lay out without panicking.
func FuzzBuild(f *testing.F) {
	for _, text := range []string{branchy, "BPF_EXIT_INSN(),", "BPF_JMP_A(-1),", "BPF_CALL_REL(-1),\nBPF_EXIT_INSN(),"} {
		a := insn.Assembler{}
		raw, err := a.Assemble(text)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, false)
	}
	f.Add([]byte{0x18, 0, 0, 0, 0, 0, 0, 0}, true)                                               // truncated ld_imm64
	f.Add([]byte{0x05, 0, 0xff, 0x7f, 0, 0, 0, 0, 0x06, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, false) // ja far, gotol far
	f.Fuzz(func(t *testing.T, raw []byte, translated bool) {
		ins, _ := insn.Decode(raw)
		g := Build(ins, Options{Translated: translated})
		next := 0
		for _, b := range g.Blocks {
			if b.First != next || b.Last < b.First || b.Func < 0 || b.Func >= len(g.Funcs) {
				t.Fatalf("block %+v after %d", b, next)
			}
			next = b.Last + 1
		}
		if next != len(ins) {
			t.Fatalf("blocks cover %d of %d instructions", next, len(ins))
		}
		for _, e := range g.Edges {
			if e.From < 0 || e.From >= len(g.Blocks) || (e.To != Exit && (e.To < 0 || e.To >= len(g.Blocks))) {
				t.Fatalf("edge %+v out of range", e)
			}
		}
		p := &program.Program{Source: program.SourceRaw, Insns: raw}
		if translated {
			p.Source = program.SourceKernel
		}
		rep := analysis.Analyze(p, &analysis.Options{Kfuncs: noKfuncs{}})
		hits := []rules.Hit{{ID: "x", Why: []rules.Reason{{Predicate: "helpers", Insns: rep.TailCalls}}}}
		var buf bytes.Buffer
		if err := WriteDOT(&buf, g, DOTOptions{Marks: Marks(ins, rep, hits)}); err != nil {
			t.Fatal(err)
		}
		_ = Layout(g, func(b Block) (float64, float64) { return 100, float64(b.Last-b.First+1) * 14 })
	})
}

type noKfuncs struct{}

func (noKfuncs) KfuncName(int32, int16) (string, bool) { return "", false }
