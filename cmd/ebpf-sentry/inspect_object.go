package main

import (
	"bufio"
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
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
