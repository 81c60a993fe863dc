package report

import (
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/cfg"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

//go:embed report.js
var script string

//go:embed report.css
var style string

// Input is what one report shows.
type Input struct {
	Program  *program.Program
	Analysis *analysis.Report
	// Verdicts from rules.Evaluate; none when the program was not judged.
	Verdicts []rules.Verdict
	// Insns are the decoded instructions (Program.Decode).
	Insns []insn.Instruction
	// Format renders one instruction in kernel form; nil uses insn.FormatKernel.
	Format func(insn.Instruction) string
	// ProgTypeName and AttachTypeName name the program's enums for the
	// metadata table ("" leaves the number alone).
	ProgTypeName, AttachTypeName string
}

// Layout constants shared with report.js: pixels per character and per
// line of a block's text, and the most lines a block shows.
const (
	charW        = 7.2
	lineH        = 14
	maxBlockRows = 200
	maxBlockCols = 90
)

// page is what the template fills in.
type page struct {
	Nonce    string
	Style    template.CSS
	Script   template.JS
	Data     template.JS
	Name     string
	Action   string
	Blocked  bool
	Hits     []hit
	Meta     [][2]string
	Helpers  []helperRow
	Maps     []mapRow
	Strings  []stringRow
	Problems []string
	Judged   bool
}

type hit struct {
	ID, Action, Severity, Description string
	Why                               []reason
}

type reason struct {
	Text  string
	Insns []int
	More  int
}

type helperRow struct {
	ID      int32
	Name    string
	Count   int
	Percent float64
	At      []int
	More    int
}

type mapRow struct {
	Index      int
	Name, Type string
	At         []int
	More       int
	TailCalls  string // a prog_array's occupied slots, escaped
}

type stringRow struct {
	Insn       int
	Kind, Text string
}

// data is what the script draws from, written as JSON by appendData:
// insns [slot, text, jump or call target slot or -1]; blocks [first, last
// (positions in insns), func, x, y, w, h, rule-marked]; edges [from, to
// (block, -1 for exit), kind]; funcs [x, y, w, h, start slot]; marks [pos,
// kind, rule, text]; helper and map: position -> anchor index.
type data struct {
	Insns  []insnRow
	Blocks []blockRow
	Edges  []cfg.Edge
	Funcs  []funcRow
	Marks  []markRow
	Helper [][2]int
	Map    [][2]int
	W, H   float64
}

type insnRow struct {
	slot   int
	text   string
	target int
	wide   bool
}

type blockRow struct {
	first, last, fn int
	box             cfg.Box
	rule            bool
}

type funcRow struct {
	box   cfg.Box
	start int
}

type markRow struct {
	pos              int
	kind, rule, text string
}

const listLimit = 40 // instruction links shown per row before "… N more"

// Write writes the HTML report of in to w.
func Write(w io.Writer, in Input) error {
	p, r := in.Program, in.Analysis
	format := in.Format
	if format == nil {
		format = insn.FormatKernel
	}
	var hits []rules.Hit
	action := rules.Action(0)
	for _, v := range in.Verdicts {
		hits = append(hits, v.Hits...)
		action = max(action, v.Action)
	}
	g := cfg.Build(in.Insns, cfg.Options{Translated: analysis.Translated(p)})
	marks := cfg.Marks(in.Insns, r, hits)

	// Block sizes from their text, then the layout.
	texts := make([]string, len(in.Insns))
	for i, ins := range in.Insns {
		texts[i] = format(ins)
	}
	marksAt := map[int]int{}
	for _, m := range marks {
		marksAt[m.Insn]++
	}
	d := cfg.Layout(g, func(b cfg.Block) (float64, float64) {
		cols, rows := 10, 0
		for i := b.First; i <= b.Last && rows < maxBlockRows; i++ {
			cols = max(cols, min(len(texts[i])+len(strconv.Itoa(in.Insns[i].Index))+2, maxBlockCols))
			rows++
		}
		if b.Last-b.First+1 > maxBlockRows {
			rows++ // "… N more"
		}
		return float64(cols)*charW + 12, float64(rows)*lineH + 10
	})

	ruleBlock := map[int]bool{}
	for _, m := range marks {
		if m.Kind == cfg.MarkRule {
			ruleBlock[g.BlockAt(m.Insn)] = true
		}
	}
	dd := data{Insns: make([]insnRow, 0, len(in.Insns)), Edges: g.Edges, W: d.W, H: d.H}
	posOf := func(slot int) (int, bool) {
		i := sort.Search(len(in.Insns), func(i int) bool { return in.Insns[i].Index >= slot })
		return i, i < len(in.Insns) && in.Insns[i].Index == slot
	}
	for i, ins := range in.Insns {
		target := -1
		k := ins.Kind()
		switch {
		case k.IsJump() && k == insn.KindGotol:
			target = ins.Index + 1 + int(ins.Imm)
		case k.IsJump():
			target = ins.Index + 1 + int(ins.Off)
		case k == insn.KindCallLocal:
			if analysis.Translated(p) {
				target = ins.Index + 1 + int(ins.Off)
			} else {
				target = ins.Index + 1 + int(ins.Imm)
			}
		}
		dd.Insns = append(dd.Insns, insnRow{ins.Index, texts[i], target, ins.Wide})
	}
	for _, b := range g.Blocks {
		dd.Blocks = append(dd.Blocks, blockRow{b.First, b.Last, b.Func, d.Blocks[b.ID], ruleBlock[b.ID]})
	}
	for i, f := range g.Funcs {
		dd.Funcs = append(dd.Funcs, funcRow{d.Funcs[i], f.Start})
	}
	for _, m := range marks {
		if pos, ok := posOf(m.Insn); ok {
			dd.Marks = append(dd.Marks, markRow{pos, m.Kind.String(), output.Escape(m.Rule), output.Escape(m.Text)})
		}
	}

	pg := page{
		Name:     output.Escape(p.Name),
		Action:   action.String(),
		Blocked:  action == rules.ActionBlock,
		Judged:   len(in.Verdicts) > 0,
		Problems: append(append([]string{}, r.Problems...), g.Problems...),
	}
	if pg.Name == "" {
		pg.Name = "(unnamed)"
	}
	for _, h := range hits {
		hh := hit{ID: output.Escape(h.ID), Action: h.Action.String(), Severity: h.Severity.String(), Description: output.Escape(h.Description)}
		for _, why := range h.Why {
			at, more := limit(why.Insns)
			hh.Why = append(hh.Why, reason{Text: output.Escape(why.Predicate + ": " + why.Detail), Insns: at, More: more})
		}
		pg.Hits = append(pg.Hits, hh)
	}
	meta := func(k, v string) { pg.Meta = append(pg.Meta, [2]string{k, output.Escape(v)}) }
	meta("origin", fmt.Sprintf("%s (%s)", p.Origin, p.Source))
	if p.Section != "" {
		meta("section", p.Section)
	}
	meta("type", fmt.Sprintf("%s (%d)", in.ProgTypeName, p.Type))
	if p.ExpectedAttachType != 0 {
		meta("attach type", fmt.Sprintf("%s (%d)", in.AttachTypeName, p.ExpectedAttachType))
	}
	if p.AttachTo != "" {
		meta("attach to", p.AttachTo)
	}
	if p.License != "" || p.Source != program.SourceRaw {
		meta("license", fmt.Sprintf("%q (GPL-compatible: %t)", p.License, r.GPL))
	}
	meta("instructions", fmt.Sprintf("%d slots, %d blocks, %d sub-programs", r.InsnCount, len(g.Blocks), len(g.Funcs)))
	meta("sha256", r.SHA256)
	if p.Kernel != nil {
		meta("kernel id/tag", fmt.Sprintf("%d / %s", p.Kernel.ID, p.Kernel.Tag))
	}
	if l := p.Loader; l != nil {
		meta("loader", fmt.Sprintf("pid %d uid %d comm %s exe %s", l.PID, l.UID, l.Comm, l.Exe))
	}
	total := 0
	for _, h := range r.Helpers {
		total += h.Count
	}
	hs := append([]analysis.HelperUse{}, r.Helpers...)
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].Count > hs[j].Count })
	for _, h := range hs {
		at, more := limit(h.At)
		pg.Helpers = append(pg.Helpers, helperRow{h.ID, output.Escape(h.Name), h.Count, 100 * float64(h.Count) / float64(max(total, 1)), at, more})
		for _, a := range h.At {
			if pos, ok := posOf(a); ok {
				dd.Helper = append(dd.Helper, [2]int{pos, int(h.ID)})
			}
		}
	}
	for i, m := range r.Maps {
		name := m.Name
		switch {
		case name != "":
		case m.ByIndex:
			name = fmt.Sprintf("fd_array[%d]", m.Index)
		default:
			name = fmt.Sprintf("fd %d", m.FD)
		}
		at, more := limit(m.At)
		var tcs []string
		for _, tc := range m.TailCalls {
			tcs = append(tcs, output.Escape(tc.String()))
		}
		pg.Maps = append(pg.Maps, mapRow{i, output.Escape(name), output.Escape(m.Type), at, more, strings.Join(tcs, ", ")})
		for _, a := range m.At {
			if pos, ok := posOf(a); ok {
				dd.Map = append(dd.Map, [2]int{pos, i})
			}
		}
	}
	for _, s := range r.Strings {
		pg.Strings = append(pg.Strings, stringRow{s.Insn, string(s.Kind), output.Escape(s.Text)})
	}

	js := appendData(make([]byte, 0, 64*len(in.Insns)+64*len(g.Blocks)+4096), &dd)
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("report nonce: %w", err)
	}
	pg.Nonce = base64.RawURLEncoding.EncodeToString(nonce)
	pg.Style, pg.Script, pg.Data = template.CSS(style), template.JS(script), template.JS(js)
	if err := pageTemplate.Execute(w, pg); err != nil {
		return fmt.Errorf("report template: %w", err)
	}
	return nil
}

func limit(v []int) ([]int, int) {
	if len(v) > listLimit {
		return v[:listLimit], len(v) - listLimit
	}
	return v, 0
}

func round(f float64) float64 { return float64(int64(f*10)) / 10 }
