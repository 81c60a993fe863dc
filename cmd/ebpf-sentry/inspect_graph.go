package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/cfg"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/report"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// inspectRenderer renders one program in a format of its own (dot, svg,
// html). progs is every program being inspected; verdicts are the judges'
// documents (rules.Verdict from --rules).
type inspectRenderer func(w *bufio.Writer, progs []*program.Program, p *program.Program, r *analysis.Report,
	kf *insn.KernelFormatter, ins []insn.Instruction, verdicts []any) error

var inspectRenderers = map[string]inspectRenderer{
	"dot":  renderDOT,
	"svg":  renderSVG,
	"html": renderHTML,
}

// addInspectGraphFormats documents the graph formats on inspect's --format.
func addInspectGraphFormats(cmd *cobra.Command) {
	if f := cmd.Flags().Lookup("format"); f != nil {
		f.Usage = "output format: text|kernel|macro|json|dot|svg|html"
	}
	cmd.Long += `
dot: the control-flow graph (Graphviz), with the blocks and edges of
"bpftool prog dump xlated … visual" plus true/false edge colours, call edges
and the instructions that made a rule match (--rules); svg: the same graph
rendered by Graphviz's dot, which must be installed for this format only;
html: one self-contained report file (see docs/REPORT.md). These formats show
one program: choose it with --prog when the object holds several.`
}

// hitsOf collects the rule hits of the judges' verdicts.
func hitsOf(verdicts []any) []rules.Hit {
	var hits []rules.Hit
	for _, v := range verdicts {
		if v, ok := v.(rules.Verdict); ok {
			hits = append(hits, v.Hits...)
		}
	}
	return hits
}

// onlyOne refuses a graph format (the renderers) for input with several
// programs; o.write calls it before every renderer.
func onlyOne(format string, progs []*program.Program) error {
	if len(progs) <= 1 {
		return nil
	}
	names := make([]string, len(progs))
	for i, p := range progs {
		names[i] = p.Name
	}
	return fmt.Errorf("--format %s shows one program and the input holds %d: choose one with --prog (programs: %s)",
		format, len(progs), strings.Join(names, ", "))
}

func programGraph(p *program.Program, r *analysis.Report, kf *insn.KernelFormatter, ins []insn.Instruction, verdicts []any) (*cfg.Graph, cfg.DOTOptions) {
	g := cfg.Build(ins, cfg.Options{Translated: analysis.Translated(p)})
	return g, cfg.DOTOptions{Format: kf.Format, Marks: cfg.Marks(ins, r, hitsOf(verdicts)), Title: output.Escape(p.Name)}
}

func renderDOT(w *bufio.Writer, progs []*program.Program, p *program.Program, r *analysis.Report,
	kf *insn.KernelFormatter, ins []insn.Instruction, verdicts []any) error {
	g, o := programGraph(p, r, kf, ins, verdicts)
	return cfg.WriteDOT(w, g, o)
}

// errNoDot says how to get Graphviz when --format svg cannot find it.
var errNoDot = errors.New("--format svg renders with Graphviz's dot, which is not installed (Debian: apt-get install graphviz); --format dot writes the graph without it")

// dotTimeout bounds one Graphviz run: its layout is superlinear, and a huge
// program should fail with a clear message rather than hang.
var dotTimeout = 2 * time.Minute

func renderSVG(w *bufio.Writer, progs []*program.Program, p *program.Program, r *analysis.Report,
	kf *insn.KernelFormatter, ins []insn.Instruction, verdicts []any) error {
	g, o := programGraph(p, r, kf, ins, verdicts)
	var src bytes.Buffer
	if err := cfg.WriteDOT(&src, g, o); err != nil {
		return err
	}
	return runDot(w, &src)
}

// runDot renders DOT source to SVG with Graphviz.
func runDot(w io.Writer, src io.Reader) error {
	dot, err := exec.LookPath(dotCommand)
	if err != nil {
		return errNoDot
	}
	ctx, cancel := context.WithTimeout(context.Background(), dotTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, dot, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = src, w, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("graphviz dot: no layout within %s (the graph is too large: use --format html)", dotTimeout)
		}
		return fmt.Errorf("graphviz dot: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// dotCommand is the Graphviz program --format svg runs (a variable so the
// test of its absence can point it elsewhere).
var dotCommand = "dot"

func renderHTML(w *bufio.Writer, progs []*program.Program, p *program.Program, r *analysis.Report,
	kf *insn.KernelFormatter, ins []insn.Instruction, verdicts []any) error {
	var vs []rules.Verdict
	for _, v := range verdicts {
		if v, ok := v.(rules.Verdict); ok {
			vs = append(vs, v)
		}
	}
	return report.Write(w, report.Input{
		Program: p, Analysis: r, Verdicts: vs, Insns: ins, Format: kf.Format,
		ProgTypeName: analysis.ProgTypeName(p.Type), AttachTypeName: attachTypeName(p.ExpectedAttachType),
	})
}
