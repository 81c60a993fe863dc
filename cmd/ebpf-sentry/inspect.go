package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// inspectJudge adds a verdict to every inspected program (the rules
// command's --rules and --explain: addInspectRuleFlags). text is printed
// after the program's analysis in text format; doc is embedded as "verdict"
// in json format. An error aborts inspect with exit code 1.
type inspectJudge func(p *program.Program, r *analysis.Report) (text string, doc any, err error)

// inspectOptions are one inspect command's flags and what its run derives
// from them; each file adding a flag to inspect keeps its field here.
type inspectOptions struct {
	prog      string
	format    string
	raw       string
	xlated    bool
	event     string // --event: saved prog_load events instead of an object
	recursive bool   // --recursive (inspect_embedded.go)
	insns     bool   // --insns: the json format includes the instructions (inspect_write.go)
	analysis  analysis.Options
	rules     inspectRules // --rules and --explain (rules.go, rules_explain.go)
	judges    []inspectJudge
}

// newInspectCmd builds inspect with its own options: the flags of this file,
// the graph formats (inspect_graph.go), --recursive, --insns and the rule
// judges.
func newInspectCmd() *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect FILE.o | BINARY | --raw FILE | - | --recursive DIR",
		Short: "Analyse the eBPF programs of an ELF object or a raw instruction dump",
		Long: `Analyse every program of an ELF object (or of a raw dump of 8-byte instructions,
e.g. written by "bpftool prog dump xlated id N file F"; "-" reads stdin): section,
type, metadata, helpers with counts, kfuncs, maps, sub-program and tail calls,
strings, fingerprint and disassembly. Any other file (an executable of any
architecture) is searched for embedded BPF objects and light skeletons, each
analysed; --recursive DIR does so for every file under DIR.

Formats: text (summary + kernel-form disassembly), kernel (disassembly only, as
the verifier log prints it), macro (filter.h builder macros), json (one document;
the instructions only with --insns). Every format streams: memory does not grow
with the size of the output.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.prog, "prog", "", "only the program with this name (or this 0-based index)")
	f.StringVar(&o.format, "format", "text", "output format: text|kernel|macro|json")
	f.StringVar(&o.raw, "raw", "", "read a raw instruction dump from FILE (- for stdin) instead of an ELF object")
	f.StringVar(&o.event, "event", "", "read saved prog_load events (JSON lines, as run writes them by default, or with --event-insns raw or both) from FILE (- for stdin): each event's program is analysed, judged and shown again")
	f.BoolVar(&o.xlated, "xlated", false, "the raw dump is the kernel's translated form (bpftool prog dump xlated): name calls through /proc/kallsyms")
	addInspectGraphFormats(cmd)
	f.BoolVar(&o.recursive, "recursive", false,
		"FILE is a folder: find every BPF object in every file under it (executables included) and show each program's verdict")
	f.BoolVar(&o.insns, "insns", false, "json format: include every instruction (raw fields, macro and kernel forms)")
	addInspectRuleFlags(cmd, o)
	return cmd
}

// programsFromEvents rebuilds the programs of the prog_load events in data
// (JSON lines). Other kinds of event are skipped and counted; an event that cannot be read, or a prog_load without its raw
// instructions, is an error naming its line.
func programsFromEvents(name string, data []byte) ([]*program.Program, int, error) {
	var progs []*program.Program
	skipped := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var ev output.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, 0, fmt.Errorf("line %d: not a JSON event: %w", i+1, err)
		}
		if ev.Event != output.KindProgLoad {
			skipped++
			continue
		}
		p, err := output.ProgramFromEvent(&ev)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d (event %s): %w", i+1, output.Escape(ev.ID), err)
		}
		p.Origin = fmt.Sprintf("%s:%d (event %s)", name, i+1, output.Escape(ev.ID))
		progs = append(progs, p)
	}
	if len(progs) == 0 {
		return nil, 0, fmt.Errorf("no prog_load event (%d other events)", skipped)
	}
	return progs, skipped, nil
}

func inspectFail(what string, err error) error {
	return &exitError{code: 2, err: fmt.Errorf("inspect %s: %w", what, err)}
}

func (o *inspectOptions) run(cmd *cobra.Command, args []string) error {
	if o.recursive {
		return o.runRecursive(cmd, args)
	}
	switch o.format {
	case "text", "kernel", "macro", "json":
	default:
		if inspectRenderers[o.format] != nil {
			break
		}
		return &exitError{code: 2, err: fmt.Errorf("inspect: --format %q: want text, kernel, macro or json", o.format)}
	}
	var (
		progs   []*program.Program
		trailer error // reported after the output: the dump was analysed anyway
	)
	switch {
	case o.event != "" && (o.raw != "" || len(args) > 0):
		return &exitError{code: 2, err: errors.New("inspect: give one of FILE, --raw FILE or --event FILE")}
	case o.event != "":
		name, data, err := readInput(cmd, o.event)
		if err != nil {
			return inspectFail(name, err)
		}
		var skipped int
		if progs, skipped, err = programsFromEvents(name, data); err != nil {
			return inspectFail(name, err)
		}
		if skipped > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "inspect: %s: %d events of other kinds skipped\n", name, skipped)
		}
	case o.raw != "" && len(args) > 0:
		return &exitError{code: 2, err: errors.New("inspect: give either FILE or --raw FILE, not both")}
	case o.xlated && o.raw == "":
		return &exitError{code: 2, err: errors.New("inspect: --xlated applies to --raw dumps only")}
	case o.raw != "":
		name, data, err := readInput(cmd, o.raw)
		if err != nil {
			return inspectFail(name, err)
		}
		p, err := program.FromRaw(name, data)
		if p == nil {
			return &exitError{code: 2, err: fmt.Errorf("inspect %w", err)}
		}
		trailer = err
		if o.xlated {
			p.Source = program.SourceKernel
			ks, err := readKallsyms()
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("inspect --xlated: %w", err)}
			}
			o.analysis.Kallsyms = ks
		}
		progs = []*program.Program{p}
	case len(args) == 1:
		name, data, err := readInput(cmd, args[0])
		if err != nil {
			return inspectFail(name, err)
		}
		progs, trailer, err = readObjects(name, data)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("inspect %w", err)}
		}
		if len(progs) == 0 {
			return inspectFail(name, errors.New("the object holds no programs"))
		}
	default:
		return &exitError{code: 2, err: errors.New("inspect: need FILE.o, --raw FILE or - (stdin)")}
	}

	if o.prog != "" {
		sel, err := selectProgram(progs, o.prog)
		if err != nil {
			return inspectFail(progs[0].Origin, err)
		}
		progs = []*program.Program{sel}
	}

	w := bufio.NewWriterSize(cmd.OutOrStdout(), 64*1024)
	if err := o.write(w, progs); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("inspect: %w", err)}
	}
	if err := w.Flush(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("inspect: write output: %w", err)}
	}
	if trailer != nil {
		return &exitError{code: 2, err: fmt.Errorf("inspect %w", trailer)}
	}
	return nil
}

// readKallsyms reads /proc/kallsyms, which must show addresses (root, or
// kptr_restrict off) for translated calls to be named.
func readKallsyms() (*insn.Kallsyms, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ks, err := insn.ReadKallsyms(f)
	if err != nil {
		return nil, fmt.Errorf("/proc/kallsyms: %w", err)
	}
	if _, ok := ks.CallBase(); !ok {
		return nil, errors.New("/proc/kallsyms shows no address for __bpf_call_base (run as root, or lower kernel.kptr_restrict)")
	}
	return ks, nil
}

// readInput reads path, or stdin for "-"; it returns the name to show.
func readInput(cmd *cobra.Command, path string) (string, []byte, error) {
	if path == "-" {
		b, err := io.ReadAll(cmd.InOrStdin())
		return "stdin", b, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
	}
	return path, b, err
}

func selectProgram(progs []*program.Program, sel string) (*program.Program, error) {
	names := make([]string, len(progs))
	for i, p := range progs {
		if p.Name == sel {
			return p, nil
		}
		names[i] = p.Name
	}
	if n, err := strconv.Atoi(sel); err == nil {
		if n >= 0 && n < len(progs) {
			return progs[n], nil
		}
		return nil, fmt.Errorf("program index %d does not exist (%d programs: 0..%d)", n, len(progs), len(progs)-1)
	}
	return nil, fmt.Errorf("no program named %q (programs: %s)", sel, strings.Join(names, ", "))
}

func attachTypeName(t uint32) string {
	if t == 0 {
		return "" // BPF_CGROUP_INET_INGRESS, and what every type without one sends
	}
	n, _ := program.AttachTypes.Name(t)
	return n
}

// kernelFormatter names helpers, kfuncs, sub-programs and maps from the
// analysis and the program's relocations.
func kernelFormatter(p *program.Program, r *analysis.Report) *insn.KernelFormatter {
	kfuncs := map[int]string{}
	for _, k := range r.Kfuncs {
		for _, at := range k.At {
			kfuncs[at] = k.Name
		}
	}
	return &insn.KernelFormatter{
		HelperName: analysis.DefaultHelperName,
		CallName: func(in insn.Instruction) string {
			switch in.Src {
			case insn.PseudoKfuncCall:
				return kfuncs[in.Index]
			case insn.PseudoCall:
				if ref, ok := p.Refs[in.Index]; ok && ref.Name != "" {
					return fmt.Sprintf("%+d#%s", in.Imm, externText(ref))
				}
			}
			return ""
		},
		Imm64Text: func(in insn.Instruction, imm uint64) string {
			ref, ok := p.Refs[in.Index]
			if !ok {
				return ""
			}
			switch ref.Kind {
			case program.RefMap:
				return "map[name:" + ref.Name + "]"
			case program.RefData:
				return fmt.Sprintf("map[name:%s][0]+%d", ref.Name, ref.Offset)
			case program.RefFunc, program.RefKsym, program.RefKconfig, program.RefExtern:
				return externText(ref)
			}
			return ""
		},
	}
}

func writeText(w *bufio.Writer, p *program.Program, r *analysis.Report) {
	line := func(k, format string, a ...any) {
		fmt.Fprintf(w, "  %-12s "+format+"\n", append([]any{k + ":"}, a...)...)
	}
	name := output.Escape(p.Name)
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(w, "program %s\n", name)
	line("origin", "%s (%s)", output.Escape(p.Origin), p.Source)
	if p.Section != "" {
		line("section", "%s", output.Escape(p.Section))
	}
	if p.Source != program.SourceRaw {
		line("type", "%s (%d)", analysis.ProgTypeName(p.Type), p.Type)
		if p.ExpectedAttachType != 0 {
			line("attach type", "%s (%d)", attachTypeName(p.ExpectedAttachType), p.ExpectedAttachType)
		}
		if p.AttachTo != "" {
			line("attach to", "%s", output.Escape(p.AttachTo))
		}
		lic := "none"
		if p.License != "" {
			lic = strconv.Quote(p.License)
		}
		gpl := "not GPL-compatible"
		if r.GPL {
			gpl = "GPL-compatible"
		}
		line("license", "%s (%s)", lic, gpl)
	}
	if p.StructOps != nil {
		line("struct_ops", "%s", structOpsText(p.StructOps))
	}
	if p.ObjectLoaderError != "" {
		line("read", "directly (the object loader refused the object: %s)", output.Escape(p.ObjectLoaderError))
	}
	for _, u := range p.Unresolved {
		line("unresolved", "%s", output.Escape(u.String()))
	}
	line("insns", "%d", r.InsnCount)
	line("sha256", "%s", r.SHA256)
	for _, pr := range r.Problems {
		line("problem", "%s", pr)
	}
	if r.ProblemsDropped > 0 {
		line("problem", "… and %d more (not listed)", r.ProblemsDropped)
	}
	if len(r.Helpers) > 0 {
		w.WriteString("  helpers:\n")
		for _, h := range r.Helpers {
			fmt.Fprintf(w, "    %-32s #%-4d x%-3d at %s\n", h.Name, h.ID, h.Count, ints(h.At))
		}
	}
	if len(r.Kfuncs) > 0 {
		w.WriteString("  kfuncs:\n")
		for _, k := range r.Kfuncs {
			fmt.Fprintf(w, "    %-32s btf_id %-6d x%-3d at %s\n", k.Name, k.BTFID, k.Count, ints(k.At))
		}
	}
	if len(r.Maps) > 0 {
		w.WriteString("  maps:\n")
		for _, m := range r.Maps {
			id := m.Name
			switch {
			case id != "":
			case m.ByIndex:
				id = fmt.Sprintf("fd_array[%d]", m.Index)
			default:
				id = fmt.Sprintf("fd %d", m.FD)
			}
			typ := m.Type
			if typ == "" {
				typ = "?"
			}
			fmt.Fprintf(w, "    %-24s %-16s at %s\n", id, typ, ints(m.At))
			if len(m.TailCalls) > 0 {
				fmt.Fprintf(w, "      tail calls: %s\n", tailCallsText(m.TailCalls))
			}
		}
	}
	writeExterns(w, r)
	if len(r.SubprogCalls) > 0 {
		w.WriteString("  subprog calls:\n")
		for _, c := range r.SubprogCalls {
			fmt.Fprintf(w, "    %d -> %d %s\n", c.At, c.Target, c.Name)
		}
	}
	if len(r.TailCallSites) > 0 {
		w.WriteString("  tail calls:\n")
		for _, t := range r.TailCallSites {
			via := "map unknown"
			switch {
			case t.Known && t.Map != "":
				via = fmt.Sprintf("map %s (insn %d)", t.Map, t.MapAt)
			case t.Known:
				via = fmt.Sprintf("map fd %d (insn %d)", t.MapFD, t.MapAt)
			}
			fmt.Fprintf(w, "    %d via %s\n", t.At, via)
		}
	}
	if len(r.Strings) > 0 {
		w.WriteString("  strings:\n")
		for _, s := range r.Strings {
			fmt.Fprintf(w, "    %5d %-8s \"%s\"\n", s.Insn, s.Kind, strings.ReplaceAll(s.Text, `"`, `\x22`))
		}
	}
}

func ints(v []int) string {
	var b strings.Builder
	for i, n := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == 16 {
			fmt.Fprintf(&b, "… (%d more)", len(v)-i)
			break
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// tailCallsText lists a prog_array's occupied slots: "[1] → tg_stage2" from
// an object, "[0] → prog 42" from the kernel. Names from objects are
// untrusted and escaped.
func tailCallsText(tcs []program.TailCall) string {
	parts := make([]string, len(tcs))
	for i, tc := range tcs {
		parts[i] = output.Escape(tc.String())
	}
	return strings.Join(parts, ", ")
}
