package main

import (
	"bufio"
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// structOpsText is "ops (type).member", e.g. "sentry_ops (sched_ext_ops).enqueue".
func structOpsText(s *program.StructOps) string {
	if s.Type == "" {
		return s.Ops + "." + s.Member
	}
	return fmt.Sprintf("%s (%s).%s", s.Ops, s.Type, s.Member)
}

// writeExterns lists the externs of the text format.
func writeExterns(w *bufio.Writer, r *analysis.Report) {
	if len(r.Externs) == 0 {
		return
	}
	w.WriteString("  externs:\n")
	for _, e := range r.Externs {
		fmt.Fprintf(w, "    %-32s %-8s at %s\n", e.Name, e.Kind, ints(e.At))
	}
}

// externText names what a reference resolves to, prefixed by its kind for
// what the loader fills in (kconfig:NAME, ksym:NAME, extern:NAME), so a
// patched-in value never reads like a literal 0.
func externText(ref program.Ref) string {
	switch ref.Kind {
	case program.RefKconfig, program.RefKsym, program.RefExtern:
		return string(ref.Kind) + ":" + ref.Name
	}
	return ref.Name
}

// externComment gives the macro form a comment on each instruction that
// refers to an extern (the macro itself keeps the object's bytes).
func externComment(p *program.Program) func(insn.Instruction) string {
	return func(in insn.Instruction) string {
		ref, ok := p.Refs[in.Index]
		if !ok {
			return ""
		}
		switch ref.Kind {
		case program.RefKconfig, program.RefKsym, program.RefExtern:
			return externText(ref)
		}
		return ""
	}
}
