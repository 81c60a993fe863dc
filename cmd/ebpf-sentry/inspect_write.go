package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// inspectMemoryLimit is inspect's soft heap limit (the GC works harder near
// it; a larger live heap still works). The goal is 256 MB for a
// 1,000,000-instruction program in any format (docs/PERFORMANCE.md).
const inspectMemoryLimit = 160 << 20

// inspectProgram is one element of the json format's "programs" array; the
// instructions are streamed after it (inspectOptions.writeJSON), not held in it.
type inspectProgram struct {
	*program.Program
	ProgTypeName   string           `json:"prog_type"`
	AttachTypeName string           `json:"expected_attach_type_name,omitempty"`
	Report         *analysis.Report `json:"analysis,omitempty"`
	Verdicts       []any            `json:"verdict,omitempty"`
}

// writeInspect writes every program in the chosen format, one program at a
// time: each is decoded once, analysed, written and dropped before the next,
// so memory is bounded by the largest program, not by the whole output
// (the json format too: its document is written piece by piece).
func (o *inspectOptions) write(w *bufio.Writer, progs []*program.Program) error {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		// Collect sooner rather than let garbage double the heap: a large
		// program's live data then stays under the memory goal.
		debug.SetMemoryLimit(inspectMemoryLimit)
	}
	json := o.format == "json"
	if json {
		w.WriteString("{\n  \"programs\": [")
	}
	for i, p := range progs {
		ins, probs, nprobs := insn.DecodeCapped(p.Insns, analysis.MaxProblems)
		r := analysis.AnalyzeDecoded(p, ins, probs, &o.analysis)
		r.ProblemsDropped += nprobs - len(probs)
		kf := kernelFormatter(p, r)
		if analysis.Translated(p) {
			kf = insn.BpftoolXlated(o.analysis.Kallsyms, nil, analysis.TableHelperName, insn.DialectKernel)
		}
		var texts []string
		var docs []any
		for _, j := range o.judges {
			t, d, err := j(p, r)
			if err != nil {
				return fmt.Errorf("%s: program %s: %w", p.Origin, p.Name, err)
			}
			if t != "" {
				texts = append(texts, t)
			}
			if d != nil {
				docs = append(docs, d)
			}
		}
		if render := inspectRenderers[o.format]; render != nil {
			if err := onlyOne(o.format, progs); err != nil {
				return err
			}
			if err := render(w, progs, p, r, kf, ins, docs); err != nil {
				return err
			}
			continue
		}
		var err error
		switch o.format {
		case "kernel":
			if len(progs) > 1 {
				if i > 0 {
					w.WriteByte('\n')
				}
				fmt.Fprintf(w, "%s:\n", output.Escape(p.Name))
			}
			err = kf.WriteListing(w, ins, insn.ListingBpftool)
		case "macro":
			if len(progs) > 1 {
				if i > 0 {
					w.WriteByte('\n')
				}
				// Escaped, and never able to end the comment early.
				fmt.Fprintf(w, "/* %s */\n", strings.ReplaceAll(output.Escape(p.Name), "*/", "*\\/"))
			}
			err = writeMacros(w, ins, externComment(p))
		case "json":
			if i > 0 {
				w.WriteByte(',')
			}
			err = o.writeJSON(w, inspectProgram{
				Program:        p,
				ProgTypeName:   analysis.ProgTypeName(p.Type),
				AttachTypeName: attachTypeName(p.ExpectedAttachType),
				Report:         r,
				Verdicts:       docs,
			}, kf, ins)
		default:
			if i > 0 {
				w.WriteByte('\n')
			}
			writeText(w, p, r)
			for _, t := range texts {
				w.WriteString(strings.TrimRight(t, "\n"))
				w.WriteByte('\n')
			}
			w.WriteString("disassembly:\n")
			err = kf.WriteListing(w, ins, insn.ListingBpftool)
		}
		if err != nil {
			return err
		}
	}
	if json {
		w.WriteString("\n  ]\n}\n")
	}
	return nil
}

// writeJSON writes one program object of the "programs" array,
// indented as a json.Encoder with a two-space indent would. The analysis's
// lists that grow with the program (maps, strings, sub-program calls) and,
// with --insns, the instructions are written element by element, so no
// buffer holds a whole large program's document.
func (o *inspectOptions) writeJSON(w *bufio.Writer, doc inspectProgram, kf *insn.KernelFormatter, ins []insn.Instruction) error {
	r := *doc.Report
	big := r
	r.Maps, r.Strings, r.SubprogCalls = nil, nil, nil
	doc.Report = nil
	prog := *doc.Program
	progMaps := prog.Maps
	prog.Maps = nil
	doc.Program = &prog
	head, err := json.MarshalIndent(doc, "    ", "  ")
	if err != nil {
		return fmt.Errorf("program %s: %w", doc.Name, err)
	}
	an, err := json.MarshalIndent(&r, "      ", "  ")
	if err != nil {
		return fmt.Errorf("program %s: analysis: %w", doc.Name, err)
	}
	w.WriteString("\n    ")
	w.Write(openJSONObject(head))
	if err := writeJSONArray(w, "      ", "maps", progMaps); err != nil {
		return err
	}
	w.WriteString(",\n      \"analysis\": ")
	w.Write(openJSONObject(an))
	if err := writeJSONArray(w, "        ", "maps", big.Maps); err != nil {
		return err
	}
	if err := writeJSONArray(w, "        ", "strings", big.Strings); err != nil {
		return err
	}
	if err := writeJSONArray(w, "        ", "subprog_calls", big.SubprogCalls); err != nil {
		return err
	}
	w.WriteString("\n      }")
	if o.insns {
		w.WriteString(",\n      \"instructions\": [")
		f := insn.JSONFormatter{Kernel: kf, Macro: &insn.MacroFormatter{}}
		// Sized for the program: many small programs must not each cost 64 KiB.
		buf := make([]byte, 0, min(64<<10, 512*len(ins)))
		for i, in := range ins {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, "\n        "...)
			buf = f.AppendJSON(buf, in)
			if len(buf) > 60<<10 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		w.Write(buf)
		w.WriteString("\n      ]")
	}
	_, err = w.WriteString("\n    }")
	return err
}

// openJSONObject strips the closing brace (and the newline and indent
// before it) of an indented object, so that fields can be appended.
func openJSONObject(b []byte) []byte {
	return bytes.TrimRight(bytes.TrimSuffix(b, []byte("}")), " \n")
}

// writeJSONArray appends ,"name": [elements] to an open object whose fields
// are indented by indent, one element at a time; nothing for an empty list,
// as omitempty would.
func writeJSONArray[T any](w *bufio.Writer, indent, name string, list []T) error {
	if len(list) == 0 {
		return nil
	}
	fmt.Fprintf(w, ",\n%s%q: [", indent, name)
	for i := range list {
		b, err := json.MarshalIndent(&list[i], indent+"  ", "  ")
		if err != nil {
			return fmt.Errorf("%s[%d]: %w", name, i, err)
		}
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString("\n" + indent + "  ")
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := w.WriteString("\n" + indent + "]")
	return err
}
