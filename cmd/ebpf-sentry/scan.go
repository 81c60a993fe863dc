//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/report"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// scanOptions are the scan command's flags.
type scanOptions struct {
	format string
	rules  string
	root   string
	prog   string
}

func newScanCmd() *cobra.Command {
	o := &scanOptions{}
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "List every BPF program loaded in the kernel, with its maps, links and owners, analysed and judged",
		Long: `List every program loaded in the kernel now (by BPF_PROG_GET_NEXT_ID), with the
analysis and formats of inspect: translated instructions with helper and kfunc
names, type, tag, load time, BTF id, maps, the links that attach it and to what,
the processes holding fds to it (/proc/*/fdinfo) and its bpffs pins.
--rules judges each program as inspect --rules does. A program that cannot be
read (unloaded during the scan, permission denied) is listed with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "text", "output format: text|json|html (html: the report of the one program --prog names)")
	f.StringVar(&o.prog, "prog", "", "with --format html: the loaded program, by id or by name")
	f.StringVar(&o.rules, "rules", "", "judge each program with the rules in FILE or DIR ("+defaultsArg+": the embedded defaults)")
	f.StringVar(&o.root, "root", "/", "read /proc and the mount table under this directory")
	return cmd
}

// scanProgram is one program of the json format: the inventory record with
// the inspect document of its instructions when they could be read.
type scanProgram struct {
	inventory.Program
	TypeName string       `json:"type_name"`
	Inspect  *scanInspect `json:"program,omitempty"`
}

type scanLink struct {
	inventory.Link
	AttachTypeName string `json:"attach_type_name,omitempty"`
}

type scanMap struct {
	inventory.Map
	TypeName string `json:"type_name"`
}

type scanDoc struct {
	Programs []scanProgram      `json:"programs"`
	Maps     []scanMap          `json:"maps"`
	Links    []scanLink         `json:"links"`
	Hidden   []inventory.Hidden `json:"hidden"`
	Problems []string           `json:"problems,omitempty"`
}

func (o *scanOptions) run(cmd *cobra.Command, args []string) error {
	switch o.format {
	case "text", "json":
	case "html":
		if o.prog == "" {
			return &exitError{code: 2, err: errors.New("scan --format html: name the program with --prog ID or --prog NAME")}
		}
	default:
		return &exitError{code: 2, err: fmt.Errorf("scan: --format %q: want text, json or html", o.format)}
	}
	var set *rules.Set
	if o.rules != "" {
		var err error
		if set, err = loadRuleArg(o.rules); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("scan --rules: %w", err)}
		}
	}
	inv, err := inventory.Scan(&inventory.Options{Root: o.root})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("scan: %w", err)}
	}
	hidden := crossView(inv)
	aopts := &analysis.Options{}
	if ks, err := readCalledKallsyms(inv); err != nil {
		inv.Problems = append(inv.Problems, "helper and kfunc calls unnamed: "+err.Error())
	} else {
		aopts.Kallsyms = ks
	}
	w := bufio.NewWriterSize(cmd.OutOrStdout(), 64*1024)
	switch o.format {
	case "html":
		p, perr := scannedProgram(inv, o.prog)
		if perr != nil {
			return &exitError{code: 2, err: fmt.Errorf("scan --prog %s: %w", output.Escape(o.prog), perr)}
		}
		r, v, kf := judgeScanned(p, set, aopts)
		ins, _ := p.Prog.Decode()
		in := report.Input{Program: p.Prog, Analysis: r, Insns: ins, Format: kf.Format,
			ProgTypeName: analysis.ProgTypeName(p.Prog.Type), AttachTypeName: attachTypeName(p.Prog.ExpectedAttachType)}
		if v != nil {
			in.Verdicts = []rules.Verdict{*v}
		}
		err = report.Write(w, in)
	case "json":
		err = writeScanJSON(w, inv, hidden, set, aopts)
	default:
		err = writeScanText(w, inv, hidden, set, aopts)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("scan: write output: %w", err)}
	}
	return nil
}

// scannedProgram finds the one readable program sel names: an id, or a
// name (the full BTF name where the kernel cut it).
func scannedProgram(inv *inventory.Inventory, sel string) (*inventory.Program, error) {
	var found []*inventory.Program
	id, isID := strconv.ParseUint(sel, 10, 32)
	for i := range inv.Programs {
		p := &inv.Programs[i]
		if (isID == nil && uint64(p.ID) == id) || (p.Prog != nil && p.Prog.Name == sel) {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0:
		return nil, errors.New("no such program is loaded")
	case len(found) > 1:
		return nil, fmt.Errorf("%d loaded programs have this name: give an id", len(found))
	case found[0].Prog == nil || found[0].Unreadable != "":
		return nil, fmt.Errorf("program %d cannot be read: %s", found[0].ID, found[0].Unreadable)
	}
	return found[0], nil
}

// writeInventory writes what is loaded now in scan's text form, judged by
// set (nil: no verdicts): the console's inventory page.
func writeInventory(out io.Writer, set *rules.Set) error {
	inv, err := inventory.Scan(&inventory.Options{})
	if err != nil {
		return err
	}
	hidden := crossView(inv)
	aopts := &analysis.Options{}
	if ks, err := readCalledKallsyms(inv); err != nil {
		inv.Problems = append(inv.Problems, "helper and kfunc calls unnamed: "+err.Error())
	} else {
		aopts.Kallsyms = ks
	}
	w := bufio.NewWriterSize(out, 64*1024)
	if err := writeScanText(w, inv, hidden, set, aopts); err != nil {
		return err
	}
	return w.Flush()
}

// judgeScanned runs the inspect pipeline on one readable program.
func judgeScanned(p *inventory.Program, set *rules.Set, aopts *analysis.Options) (*analysis.Report, *rules.Verdict, *insn.KernelFormatter) {
	r := analysis.Analyze(p.Prog, aopts)
	r.GPL = p.GPL // bpf_prog_info says it; the license string is not kept
	var v *rules.Verdict
	if set != nil {
		vv := rules.Evaluate(set, p.Prog, r)
		v = &vv
	}
	kf := insn.BpftoolXlated(aopts.Kallsyms, nil, knownHelperName, insn.DialectKernel)
	return r, v, kf
}

// scanInspect is inspect's json document of a program, with its
// instructions: a scan's programs are small enough to hold whole.
type scanInspect struct {
	inspectProgram
	Instructions []insn.JSONInstruction `json:"instructions"`
}

func writeScanJSON(w *bufio.Writer, inv *inventory.Inventory, hidden []inventory.Hidden, set *rules.Set, aopts *analysis.Options) error {
	doc := scanDoc{Programs: []scanProgram{}, Maps: []scanMap{}, Links: []scanLink{}, Hidden: hidden, Problems: inv.Problems}
	if doc.Hidden == nil {
		doc.Hidden = []inventory.Hidden{}
	}
	for i := range inv.Programs {
		p := &inv.Programs[i]
		sp := scanProgram{Program: *p, TypeName: analysis.ProgTypeName(p.Type)}
		if p.Prog != nil && p.Unreadable == "" {
			r, v, kf := judgeScanned(p, set, aopts)
			ins, _ := p.Prog.Decode()
			ip := &scanInspect{inspectProgram: inspectProgram{Program: p.Prog, ProgTypeName: sp.TypeName,
				AttachTypeName: attachTypeName(p.Prog.ExpectedAttachType), Report: r},
				Instructions: make([]insn.JSONInstruction, len(ins))}
			jf := insn.JSONFormatter{Kernel: kf}
			for k, in := range ins {
				ip.Instructions[k] = jf.Instruction(in)
			}
			if v != nil {
				ip.Verdicts = []any{v}
			}
			sp.Inspect = ip
		}
		doc.Programs = append(doc.Programs, sp)
	}
	for _, m := range inv.Maps {
		doc.Maps = append(doc.Maps, scanMap{m, analysis.MapTypeName(m.Type)})
	}
	for _, l := range inv.Links {
		doc.Links = append(doc.Links, scanLink{l, attachTypeName(l.AttachType)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func writeScanText(w *bufio.Writer, inv *inventory.Inventory, hidden []inventory.Hidden, set *rules.Set, aopts *analysis.Options) error {
	fmt.Fprintf(w, "%d programs, %d maps, %d links, %d hidden\n", len(inv.Programs), len(inv.Maps), len(inv.Links), len(hidden))
	for _, pr := range inv.Problems {
		fmt.Fprintf(w, "problem: %s\n", pr)
	}
	for _, h := range hidden {
		fmt.Fprintf(w, "HIDDEN: %s\n", hiddenText(h))
	}
	line := func(k, format string, a ...any) {
		fmt.Fprintf(w, "  %-12s "+format+"\n", append([]any{k + ":"}, a...)...)
	}
	for i := range inv.Programs {
		p := &inv.Programs[i]
		w.WriteByte('\n')
		if p.Prog == nil {
			fmt.Fprintf(w, "prog id %d: %s\n", p.ID, p.Unreadable)
			writeOwners(w, line, p)
			continue
		}
		fmt.Fprintf(w, "prog id %d tag %s\n", p.ID, p.Tag)
		r, v, kf := judgeScanned(p, set, aopts)
		writeText(w, p.Prog, r)
		if !p.LoadTime.IsZero() {
			line("loaded at", "%s", p.LoadTime.UTC().Format(time.RFC3339))
		}
		line("uid", "%d", p.CreatedByUID)
		if p.BTFID != 0 {
			line("btf id", "%d", p.BTFID)
		}
		if p.AttachBTFID != 0 {
			line("attach btf", "obj %d id %d", p.AttachBTFObjID, p.AttachBTFID)
		}
		if len(p.Prog.Maps) > 0 {
			ids := make([]string, len(p.Prog.Maps))
			for j, m := range p.Prog.Maps {
				ids[j] = fmt.Sprintf("%d (%s %s)", m.ID, m.Name, analysis.MapTypeName(m.Type))
			}
			line("map ids", "%s", strings.Join(ids, ", "))
		}
		writeOwners(w, line, p)
		if v != nil {
			w.WriteString(strings.TrimRight(rules.FormatVerdict(*v), "\n"))
			w.WriteByte('\n')
		}
		if p.Unreadable != "" {
			line("unreadable", "%s", p.Unreadable)
			continue
		}
		w.WriteString("disassembly:\n")
		ins, _ := p.Prog.Decode()
		if err := kf.WriteListing(w, ins, insn.ListingBpftool); err != nil {
			return err
		}
	}
	if len(inv.Maps) > 0 {
		w.WriteString("\nmaps:\n")
		for _, m := range inv.Maps {
			if m.Unreadable != "" {
				fmt.Fprintf(w, "  %d: %s\n", m.ID, m.Unreadable)
				continue
			}
			fmt.Fprintf(w, "  %d: %s name %s key %dB value %dB max_entries %d%s\n", m.ID, analysis.MapTypeName(m.Type),
				m.Name, m.KeySize, m.ValueSize, m.MaxEntries, ownersSuffix(m.Holders, m.Pins))
			if len(m.TailCalls) > 0 {
				fmt.Fprintf(w, "     tail calls: %s\n", tailCallsText(m.TailCalls))
			}
		}
	}
	if len(inv.Links) > 0 {
		w.WriteString("\nlinks:\n")
		for _, l := range inv.Links {
			if l.Unreadable != "" {
				fmt.Fprintf(w, "  %d: %s\n", l.ID, l.Unreadable)
				continue
			}
			fmt.Fprintf(w, "  %d: %s prog %d %s%s\n", l.ID, l.Type, l.ProgID, l.Target, ownersSuffix(l.Holders, l.Pins))
		}
	}
	return nil
}

func writeOwners(w *bufio.Writer, line func(string, string, ...any), p *inventory.Program) {
	if len(p.Links) > 0 {
		line("links", "%s", joinIDs(p.Links))
	}
	for _, h := range p.Holders {
		line("held by", "%s", holderText(h))
	}
	for _, pin := range p.Pins {
		line("pinned", "%s", pin)
	}
}

func holderText(h inventory.Holder) string {
	return fmt.Sprintf("pid %d fd %d comm %q exe %q (dev %d ino %d)", h.PID, h.FD, h.Comm, h.Exe, h.ExeDev, h.ExeIno)
}

func ownersSuffix(hs []inventory.Holder, pins []string) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "; held by pid %d fd %d (%q)", h.PID, h.FD, h.Comm)
	}
	for _, p := range pins {
		fmt.Fprintf(&b, "; pinned %s", p)
	}
	return b.String()
}

func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

// knownHelperName names helper ids the table knows and leaves the rest ("")
// to kallsyms, as bpftool does: in translated programs most call immediates
// are kernel address offsets, not helper ids.
func knownHelperName(id int32) string {
	n, _ := helper.Default().Name(id)
	return n
}

// readCalledKallsyms reads from /proc/kallsyms the names of the kernel
// functions the scanned programs call, and only those.
func readCalledKallsyms(inv *inventory.Inventory) (*insn.Kallsyms, error) {
	progs := make([]*program.Program, 0, len(inv.Programs))
	for _, p := range inv.Programs {
		progs = append(progs, p.Prog)
	}
	return readCalledKallsymsOf(progs...)
}

// readCalledKallsymsOf is readCalledKallsyms for the given programs (nil
// entries are skipped).
func readCalledKallsymsOf(progs ...*program.Program) (*insn.Kallsyms, error) {
	imms := map[int32]bool{}
	for _, p := range progs {
		if p == nil {
			continue
		}
		ins, _ := p.Decode()
		for _, in := range ins {
			if in.Code == 0x85 && (in.Src == 0 || in.Src == insn.PseudoKfuncCall) { // BPF_JMP|BPF_CALL
				imms[in.Imm] = true
			}
		}
	}
	base, err := kallsymsCallBase()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ks, err := insn.ReadKallsymsAt(f, base, imms)
	if err != nil {
		return nil, fmt.Errorf("/proc/kallsyms: %w", err)
	}
	return ks, nil
}

// callBase caches __bpf_call_base's address, fixed for the kernel's boot,
// once a read of /proc/kallsyms showed it (never a hidden 0): later reads
// then stream the table once (insn.ReadKallsymsAt).
var callBase struct {
	sync.Mutex
	addr uint64
}

func kallsymsCallBase() (uint64, error) {
	callBase.Lock()
	defer callBase.Unlock()
	if callBase.addr != 0 {
		return callBase.addr, nil
	}
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	base, err := insn.FindCallBase(f)
	if err != nil {
		return 0, fmt.Errorf("/proc/kallsyms: %w", err)
	}
	if base == 0 {
		return 0, errors.New("/proc/kallsyms shows no address for __bpf_call_base (run as root, or lower kernel.kptr_restrict)")
	}
	callBase.addr = base
	return base, nil
}

// crossView compares GET_NEXT_ID with the kernel-side views; a view that
// cannot be taken is a problem of the scan, not a finding.
func crossView(inv *inventory.Inventory) []inventory.Hidden {
	v, hidden, err := inventory.CrossView()
	if err != nil {
		inv.Problems = append(inv.Problems, "hidden programs not checked: "+err.Error())
		return nil
	}
	if v.IterErr != nil {
		inv.Problems = append(inv.Problems, "bpf_iter view unavailable: "+v.IterErr.Error())
	}
	if v.KsymsErr != nil {
		inv.Problems = append(inv.Problems, "kallsyms view unavailable: "+v.KsymsErr.Error())
	}
	return hidden
}

func hiddenText(h inventory.Hidden) string {
	what := fmt.Sprintf("prog id %d", h.ID)
	if h.ID == 0 {
		what = fmt.Sprintf("program bpf_prog_%s_%s", h.Tag, h.Name)
	}
	return fmt.Sprintf("%s seen by %s, missing from %s", output.Escape(what), strings.Join(h.SeenBy, ","), strings.Join(h.MissingFrom, ","))
}
