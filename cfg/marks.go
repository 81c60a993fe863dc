package cfg

import (
	"fmt"
	"sort"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// MarkKind says what a Mark points out.
type MarkKind uint8

const (
	MarkRule     MarkKind = iota // the instruction made a rule's predicate hold
	MarkString                   // a string is built (or referenced) here
	MarkTailCall                 // a bpf_tail_call site
)

func (k MarkKind) String() string {
	switch k {
	case MarkRule:
		return "rule"
	case MarkString:
		return "string"
	case MarkTailCall:
		return "tail_call"
	}
	return fmt.Sprintf("MarkKind(%d)", uint8(k))
}

// Mark is a note on one instruction. Text is escaped by its producer
// (analysis strings) or built here from names; renderers escape it again
// for their own format.
type Mark struct {
	Insn int // slot index
	Kind MarkKind
	Rule string // MarkRule: the rule id
	Text string // what to show: the predicate, the string, the prog_array
}

// Marks collects the marks of a program from its analysis and the rule hits
// of its verdict (either may be nil), sorted by instruction.
func Marks(ins []insn.Instruction, r *analysis.Report, hits []rules.Hit) []Mark {
	var out []Mark
	for _, h := range hits {
		for _, why := range h.Why {
			for _, at := range why.Insns {
				out = append(out, Mark{Insn: at, Kind: MarkRule, Rule: h.ID, Text: why.Predicate + ": " + why.Detail})
			}
		}
	}
	if r != nil {
		for _, s := range r.Strings {
			out = append(out, Mark{Insn: s.Insn, Kind: MarkString, Text: fmt.Sprintf("%s string \"%s\"", s.Kind, s.Text)})
		}
		for _, t := range r.TailCallSites {
			out = append(out, Mark{Insn: t.At, Kind: MarkTailCall, Text: tailCallText(ins, t)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Insn < out[j].Insn })
	return out
}

// tailCallText names the prog_array of a tail call and, when r3 is set from
// a constant just before the call in straight-line code, the index.
func tailCallText(ins []insn.Instruction, t analysis.TailCall) string {
	via := "prog_array unknown"
	switch {
	case t.Known && t.Map != "":
		via = "prog_array " + t.Map
	case t.Known:
		via = fmt.Sprintf("prog_array fd %d", t.MapFD)
	}
	if idx, ok := constR3(ins, t.At); ok {
		via += fmt.Sprintf("[%d]", idx)
	}
	return "tail call via " + via
}

// constR3 looks back from the call at slot at for "r3 = K" with nothing in
// between that writes r3 or changes control flow.
func constR3(ins []insn.Instruction, at int) (int32, bool) {
	i := sort.Search(len(ins), func(i int) bool { return ins[i].Index >= at })
	for j := i - 1; j >= 0 && j >= i-16; j-- {
		in := ins[j]
		k := in.Kind()
		if k.IsJump() || k.IsCall() || k == insn.KindExit {
			return 0, false
		}
		cls := insn.Class(in.Code)
		writesDst := cls == insn.ClassALU || cls == insn.ClassALU64 || cls == insn.ClassLDX || k == insn.KindLdImm64
		if in.Dst == 3 && writesDst {
			if k == insn.KindMov && in.Code&insn.SrcX == 0 {
				return in.Imm, true
			}
			return 0, false
		}
	}
	return 0, false
}
