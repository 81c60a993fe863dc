package cfg

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// DOTOptions tune WriteDOT.
type DOTOptions struct {
	// Format renders one instruction in kernel form, e.g.
	// (*insn.KernelFormatter).Format; nil uses insn.FormatKernel.
	Format func(insn.Instruction) string
	// Marks are shown under the instruction they point to (see Marks).
	Marks []Mark
	// Title labels the whole graph (the program's name); escaped here.
	Title string
}

// WriteDOT writes g as a Graphviz digraph shaped like bpftool's "prog dump
// xlated … visual": one cluster per sub-program holding an ENTRY and an EXIT
// node and one record node per basic block (node fn_F_bb_B, where blocks
// are numbered from 2 within their sub-program as bpftool does), each line
// "N: (op) text" with the slot index. On top of bpftool it colours true and
// false edges, draws call edges between clusters, and lists the marks
// (rule matches, strings, tail calls) under their instruction; blocks with
// a rule match are filled red.
func WriteDOT(w io.Writer, g *Graph, o DOTOptions) error {
	format := o.Format
	if format == nil {
		format = insn.FormatKernel
	}
	bw := bufio.NewWriter(w)
	marks := map[int][]Mark{}
	for _, m := range o.Marks {
		marks[m.Insn] = append(marks[m.Insn], m)
	}
	name := make([]string, len(g.Blocks))
	for _, f := range g.Funcs {
		for k, b := range f.Blocks {
			name[b] = fmt.Sprintf("fn_%d_bb_%d", f.ID, k+2)
		}
	}
	bw.WriteString("digraph \"DOT graph for eBPF program\" {\n")
	if o.Title != "" {
		fmt.Fprintf(bw, "label=\"%s\";\nlabelloc=t;\n", dotString(o.Title))
	}
	for _, f := range g.Funcs {
		fmt.Fprintf(bw, "subgraph \"cluster_%d\" {\n\tstyle=\"dashed\";\n\tcolor=\"black\";\n\tlabel=\"func_%d ()\";\n", f.ID, f.ID)
		fmt.Fprintf(bw, "\tfn_%d_bb_0 [shape=Mdiamond,style=filled,label=\"ENTRY\"];\n", f.ID)
		fmt.Fprintf(bw, "\tfn_%d_bb_1 [shape=Mdiamond,style=filled,label=\"EXIT\"];\n", f.ID)
		for _, id := range f.Blocks {
			b := g.Blocks[id]
			fill := ""
			var label strings.Builder
			label.WriteString("{")
			for i := b.First; i <= b.Last; i++ {
				in := g.Insns[i]
				if i > b.First {
					label.WriteString(" | ")
				}
				label.WriteString(dotRecord(strconv.Itoa(in.Index) + ": " + format(in)))
				label.WriteString("\\l")
				for _, m := range marks[in.Index] {
					text := m.Text
					if m.Kind == MarkRule {
						text = "rule " + m.Rule + ": " + m.Text
						fill = ",fillcolor=\"#f4b6b6\""
					}
					label.WriteString(" | ")
					label.WriteString(dotRecord("; " + text))
					label.WriteString("\\l")
				}
			}
			label.WriteString("}")
			fmt.Fprintf(bw, "\t%s [shape=record,style=filled%s,label=\"%s\"];\n", name[id], fill, label.String())
		}
		if len(f.Blocks) > 0 {
			fmt.Fprintf(bw, "\tfn_%d_bb_0:s -> %s:n [style=\"solid,bold\", color=black, weight=10, constraint=true];\n", f.ID, name[f.Blocks[0]])
		}
		for _, e := range g.Edges {
			if g.Blocks[e.From].Func != f.ID || e.Kind == EdgeCall {
				continue
			}
			to := ""
			if e.To == Exit {
				to = fmt.Sprintf("fn_%d_bb_1", f.ID)
			} else {
				to = name[e.To]
			}
			attr := "style=\"solid,bold\", color=black, weight=10, constraint=true"
			switch e.Kind {
			case EdgeTrue:
				attr = "color=\"#1a7f37\", label=\"T\", constraint=true"
			case EdgeFalse:
				attr = "color=\"#cf222e\", label=\"F\", constraint=true"
			case EdgeJump:
				attr = "color=\"#0550ae\", constraint=true"
			}
			fmt.Fprintf(bw, "\t%s:s -> %s:n [%s];\n", name[e.From], to, attr)
		}
		bw.WriteString("}\n")
	}
	for _, e := range g.Edges {
		if e.Kind == EdgeCall {
			fmt.Fprintf(bw, "%s -> fn_%d_bb_0 [style=dashed, color=\"#8250df\", label=\"call %d\", constraint=false];\n",
				name[e.From], g.Blocks[e.To].Func, e.At)
		}
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// dotString escapes s for a DOT double-quoted string.
func dotString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r >= 0x7f:
			fmt.Fprintf(&b, "\\\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// dotRecord escapes s for one field of a record label, where braces, bars
// and angle brackets are syntax.
func dotRecord(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '"', '\\', '{', '}', '|', '<', '>':
			b.WriteByte('\\')
			b.WriteRune(r)
		case ' ':
			b.WriteRune(r)
		default:
			if r < 0x20 || r >= 0x7f {
				fmt.Fprintf(&b, "\\\\u%04x", r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}
