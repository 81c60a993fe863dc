package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// Verdict is the judgement of one program by a rule set.
type Verdict struct {
	Action Action `json:"action"` // strongest action of Hits; none when nothing matched
	Hits   []Hit  `json:"rules,omitempty"`
}

// Hit is one matching rule and why it matched.
type Hit struct {
	ID          string   `json:"id"`
	Action      Action   `json:"action"`
	Severity    Severity `json:"severity"`
	Tags        []string `json:"tags,omitempty"`
	Description string   `json:"description,omitempty"`
	Why         []Reason `json:"why"`
}

// Reason is one predicate that held, with the instruction slots that made it
// hold (helper calls, strings, tail calls, map references) when it has any.
type Reason struct {
	Predicate string `json:"predicate"` // e.g. "helpers", "prog_name", "not"
	Detail    string `json:"detail"`
	Insns     []int  `json:"insns,omitempty"`
}

func (r Reason) String() string {
	s := r.Predicate + ": " + r.Detail
	if len(r.Insns) > 0 {
		s += " at insn " + joinInts(r.Insns, 20)
	}
	return s
}

func joinInts(v []int, limit int) string {
	parts := make([]string, 0, min(len(v), limit)+1)
	for i, x := range v {
		if i == limit {
			parts = append(parts, fmt.Sprintf("… (%d more)", len(v)-limit))
			break
		}
		parts = append(parts, strconv.Itoa(x))
	}
	return strings.Join(parts, ",")
}

// Evaluate judges prog, whose analysis is rep, with every rule of set. rep
// may come from analysis.Analyze; prog supplies the metadata (name, type,
// loader…). A nil set judges nothing.
func Evaluate(set *Set, prog *program.Program, rep *analysis.Report) Verdict {
	var v Verdict
	if set == nil {
		return v
	}
	in := newInput(prog, rep)
	for _, r := range set.Rules {
		if r.Scope == ScopeGroup {
			continue // judged in the kernel against the group's sum
		}
		why, ok := r.eval(in)
		if !ok {
			continue
		}
		v.Hits = append(v.Hits, Hit{ID: r.ID, Action: r.Action, Severity: r.Severity, Tags: r.Tags,
			Description: r.Description, Why: why})
		v.Action = max(v.Action, r.Action)
	}
	return v
}

// Matches reports whether rule r matches, and why.
func (r *Rule) Matches(prog *program.Program, rep *analysis.Report) ([]Reason, bool) {
	return r.eval(newInput(prog, rep))
}

// input is what every predicate looks at, prepared once per program.
type input struct {
	prog     *program.Program
	rep      *analysis.Report
	name     string // the kernel's view of the name: at most 15 bytes
	insnCnt  uint32
	helpers  map[int32]*analysis.HelperUse
	hashDone bool
	hash     uint64
	cbpf     *Cbpf // a socket-filter attach (EvaluateCbpf); nil for a program
}

func newInput(prog *program.Program, rep *analysis.Report) *input {
	if prog == nil {
		prog = &program.Program{}
	}
	if rep == nil {
		rep = &analysis.Report{}
	}
	in := &input{prog: prog, rep: rep, name: KernelName(prog.Name), helpers: map[int32]*analysis.HelperUse{}}
	in.insnCnt = prog.InsnCnt
	if in.insnCnt == 0 {
		in.insnCnt = uint32(rep.InsnCount)
	}
	for i := range rep.Helpers {
		h := &rep.Helpers[i]
		if h.Count > 0 {
			in.helpers[h.ID] = h
		}
	}
	return in
}

func (in *input) insnHash() uint64 {
	if !in.hashDone {
		in.hash, in.hashDone = kernel.Hash(in.prog.Insns), true
	}
	return in.hash
}

// KernelName is the name the kernel sees for a program named name: libbpf
// cuts names to 15 bytes (BPF_OBJ_NAME_LEN minus the NUL), so a rule judges
// an ELF program offline by the same name it would have when loaded.
func KernelName(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if len(name) > kernelNameMax {
		name = name[:kernelNameMax]
	}
	return name
}

func (r *Rule) eval(in *input) ([]Reason, bool) {
	for _, a := range r.Allow {
		switch {
		case a.SHA256 != "" && a.SHA256 == in.rep.SHA256,
			a.Tag != "" && in.prog.Kernel != nil && strings.EqualFold(a.Tag, in.prog.Kernel.Tag),
			a.HasHash && len(in.prog.Insns) > 0 && a.InsnHash == in.insnHash():
			return nil, false
		}
	}
	return r.Match.eval(in)
}

// maxReasonInsns caps the slots listed per reason: a large program calls a
// helper tens of thousands of times, and a verdict is printed and shipped.
const maxReasonInsns = 256

func (m *Match) eval(in *input) ([]Reason, bool) {
	var why []Reason
	hold := func(r Reason) {
		if n := len(r.Insns); n > maxReasonInsns {
			r.Insns = r.Insns[:maxReasonInsns:maxReasonInsns]
			r.Detail += fmt.Sprintf(" (first %d of %d slots)", maxReasonInsns, n)
		}
		why = append(why, r)
	}

	if len(m.Helpers) > 0 {
		r, ok := m.evalHelpers(in)
		if !ok {
			return nil, false
		}
		hold(r)
	}
	if m.HelpersOnly {
		allowed := map[int32]bool{}
		for _, h := range m.Helpers {
			allowed[h.ID] = true
		}
		for id := range in.helpers {
			if !allowed[id] {
				return nil, false
			}
		}
		hold(Reason{Predicate: "helpers_only", Detail: fmt.Sprintf("calls no helper outside the %d listed", len(m.Helpers))})
	}
	if len(m.HelpersAny) > 0 {
		var names []string
		var at []int
		for _, h := range m.HelpersAny {
			if u := in.helpers[h.ID]; u != nil {
				names = append(names, fmt.Sprintf("%s×%d", h.Name, u.Count))
				at = append(at, u.At...)
			}
		}
		if names == nil {
			return nil, false
		}
		slices.Sort(at)
		hold(Reason{Predicate: "helpers_any", Detail: "calls " + strings.Join(names, ", "), Insns: at})
	}
	if m.ProgName != nil {
		d, ok := m.ProgName.matchName(in.name)
		if !ok {
			return nil, false
		}
		hold(Reason{Predicate: "prog_name", Detail: fmt.Sprintf("%q %s", in.name, d)})
	}
	if len(m.ProgType) > 0 {
		if !slices.Contains(m.ProgType, in.prog.Type) {
			return nil, false
		}
		hold(Reason{Predicate: "prog_type", Detail: analysis.ProgTypeName(in.prog.Type)})
	}
	if len(m.AttachType) > 0 {
		if !slices.Contains(m.AttachType, in.prog.ExpectedAttachType) {
			return nil, false
		}
		hold(Reason{Predicate: "attach_type", Detail: enumName(program.AttachTypes, in.prog.ExpectedAttachType)})
	}
	if len(m.AttachTo) > 0 {
		g, ok := anyGlob(m.AttachTo, in.prog.AttachTo)
		if !ok || in.prog.AttachTo == "" {
			return nil, false
		}
		hold(Reason{Predicate: "attach_to", Detail: fmt.Sprintf("%q matches %q", in.prog.AttachTo, g)})
	}
	for _, ap := range []struct {
		name  string
		globs []Glob
		value func(*program.AttachPoint) string
	}{
		{"attach_binary", m.AttachBinary, func(a *program.AttachPoint) string { return a.Binary }},
		{"attach_symbol", m.AttachSymbol, func(a *program.AttachPoint) string { return a.Symbol }},
		{"attach_interface", m.AttachInterface, func(a *program.AttachPoint) string { return a.Interface }},
		{"attach_cgroup", m.AttachCgroup, func(a *program.AttachPoint) string { return a.Cgroup }},
	} {
		if len(ap.globs) == 0 {
			continue
		}
		if in.prog.AttachPoint == nil {
			return nil, false
		}
		v := ap.value(in.prog.AttachPoint)
		g, ok := anyGlob(ap.globs, v)
		if !ok || v == "" {
			return nil, false
		}
		hold(Reason{Predicate: ap.name, Detail: fmt.Sprintf("%q matches %q", v, g)})
	}
	if m.GPL != nil {
		if in.rep.GPL != *m.GPL {
			return nil, false
		}
		hold(Reason{Predicate: "gpl_compatible", Detail: fmt.Sprintf("license %q is gpl_compatible=%v", in.rep.License, in.rep.GPL)})
	}
	if m.InsnCount != nil {
		if in.insnCnt < m.InsnCount.Min || in.insnCnt > m.InsnCount.Max {
			return nil, false
		}
		hold(Reason{Predicate: "insn_count", Detail: fmt.Sprintf("%d in [%d, %d]", in.insnCnt, m.InsnCount.Min, m.InsnCount.Max)})
	}
	if len(m.Kfuncs) > 0 {
		var names []string
		var at []int
		for _, k := range in.rep.Kfuncs {
			if slices.Contains(m.Kfuncs, k.Name) {
				names = append(names, k.Name)
				at = append(at, k.At...)
			}
		}
		if names == nil {
			return nil, false
		}
		slices.Sort(at)
		hold(Reason{Predicate: "kfuncs", Detail: "calls " + strings.Join(names, ", "), Insns: at})
	}
	if len(m.MapTypes) > 0 {
		r, ok := m.evalMapTypes(in)
		if !ok {
			return nil, false
		}
		hold(r)
	}
	if m.TailCalls != nil {
		has := len(in.rep.TailCalls) > 0
		if has != *m.TailCalls {
			return nil, false
		}
		if has {
			hold(Reason{Predicate: "tail_calls", Detail: fmt.Sprintf("%d tail calls", len(in.rep.TailCalls)), Insns: in.rep.TailCalls})
		} else {
			hold(Reason{Predicate: "tail_calls", Detail: "no tail calls"})
		}
	}
	if m.Cbpf != nil {
		r, ok := m.Cbpf.eval(in)
		if !ok {
			return nil, false
		}
		hold(r)
	}
	if m.LoadsPrograms != nil {
		u := in.helpers[SysBPFHelper]
		if (u != nil) != *m.LoadsPrograms {
			return nil, false
		}
		if u != nil {
			hold(Reason{Predicate: "loads_programs", Detail: fmt.Sprintf("calls bpf_sys_bpf×%d: loads programs from inside the kernel", u.Count), Insns: u.At})
		} else {
			hold(Reason{Predicate: "loads_programs", Detail: "no bpf_sys_bpf call"})
		}
	}
	if m.Strings != nil {
		r, ok := m.Strings.evalStrings(in.rep.Strings)
		if !ok {
			return nil, false
		}
		hold(r)
	}
	if m.Loader != nil {
		rs, ok := m.Loader.eval(in.prog.Loader)
		if !ok {
			return nil, false
		}
		why = append(why, rs...)
	}
	if m.Prov != nil {
		rs, ok := m.Prov.eval(in.prog.Provenance)
		if !ok {
			return nil, false
		}
		why = append(why, rs...)
	}
	if m.Not != nil {
		if _, ok := m.Not.eval(in); ok {
			return nil, false
		}
		hold(Reason{Predicate: "not", Detail: "the exception does not hold: " + m.Not.describe()})
	}
	if len(m.Any) > 0 {
		held := false
		for i := range m.Any {
			if inner, ok := m.Any[i].eval(in); ok {
				for _, r := range inner {
					r.Predicate = fmt.Sprintf("any[%d].%s", i, r.Predicate)
					hold(r)
				}
				held = true
				break
			}
		}
		if !held {
			return nil, false
		}
	}
	return why, true
}

func (m *Match) evalHelpers(in *input) (Reason, bool) {
	var parts []string
	var at []int
	called := 0
	for _, h := range m.Helpers {
		u := in.helpers[h.ID]
		n := 0
		if u != nil {
			n = u.Count
		}
		if m.HelpersMode == HelpersCalled && n == 0 {
			continue
		}
		if uint64(n) < uint64(h.Min) {
			return Reason{}, false
		}
		called++
		parts = append(parts, fmt.Sprintf("%s×%d≥%d", h.Name, n, h.Min))
		if u != nil {
			at = append(at, u.At...)
		}
	}
	if m.HelpersMode == HelpersCalled && called == 0 {
		return Reason{}, false
	}
	slices.Sort(at)
	return Reason{Predicate: "helpers", Detail: strings.Join(parts, ", "), Insns: at}, true
}

func (m *Match) evalMapTypes(in *input) (Reason, bool) {
	want := map[string]bool{}
	for _, t := range m.MapTypes {
		want[enumName(program.MapTypes, t)] = true
	}
	var names []string
	var at []int
	for _, mp := range in.prog.Maps {
		if slices.Contains(m.MapTypes, mp.Type) {
			names = append(names, fmt.Sprintf("%s (%s)", mp.Name, enumName(program.MapTypes, mp.Type)))
			for _, u := range in.rep.Maps {
				if u.Name != "" && u.Name == mp.Name {
					at = append(at, u.At...)
				}
			}
		}
	}
	if names == nil {
		for _, u := range in.rep.Maps {
			if want[u.Type] {
				names = append(names, fmt.Sprintf("%s (%s)", u.Name, u.Type))
				at = append(at, u.At...)
			}
		}
	}
	if names == nil {
		return Reason{}, false
	}
	slices.Sort(at)
	return Reason{Predicate: "map_types", Detail: "uses " + strings.Join(names, ", "), Insns: slices.Compact(at)}, true
}

func enumName(e *program.Enum, v uint32) string {
	if n, ok := e.Name(v); ok {
		return n
	}
	return strconv.FormatUint(uint64(v), 10)
}

func anyGlob(globs []Glob, s string) (string, bool) {
	for _, g := range globs {
		if g.Match(s) {
			return g.Pattern, true
		}
	}
	return "", false
}

// matchName matches a kernel name against exact / prefix / glob / regex.
func (p *StringPatterns) matchName(name string) (string, bool) {
	if slices.Contains(p.Exact, name) {
		return "is exactly listed", true
	}
	for _, s := range p.Prefix {
		if strings.HasPrefix(name, s) {
			return fmt.Sprintf("has prefix %q", s), true
		}
	}
	if g, ok := anyGlob(p.Glob, name); ok {
		return fmt.Sprintf("matches glob %q", g), true
	}
	for _, re := range p.Regex {
		if re.MatchString(name) {
			return fmt.Sprintf("matches regex %q", re.String()), true
		}
	}
	return "", false
}

func (p *StringPatterns) evalStrings(strs []analysis.String) (Reason, bool) {
	var hits []string
	var at []int
	for _, s := range strs {
		pat, isRegex := p.matchString(s.Text)
		if pat == "" {
			continue
		}
		// Programs can hold tens of thousands of matching strings: describe
		// the first few, count the rest.
		if len(hits) < 8 {
			verb := "contains"
			if isRegex {
				verb = "matches"
			}
			hits = append(hits, fmt.Sprintf("%q %s %q", s.Text, verb, pat))
		}
		at = append(at, s.Insn)
	}
	if at == nil {
		return Reason{}, false
	}
	detail := strings.Join(hits, "; ")
	if len(at) > len(hits) {
		detail += fmt.Sprintf("; … %d strings in all", len(at))
	}
	slices.Sort(at)
	return Reason{Predicate: "strings", Detail: detail, Insns: slices.Compact(at)}, true
}

// matchString returns the first pattern that matches text.
func (p *StringPatterns) matchString(text string) (pattern string, isRegex bool) {
	for _, c := range p.Contains {
		if strings.Contains(text, c) {
			return c, false
		}
	}
	for _, re := range p.Regex {
		if re.MatchString(text) {
			return re.String(), true
		}
	}
	return "", false
}

// eval matches the loader; an unknown loader (offline programs) matches no
// loader predicate.
func (l *LoaderMatch) eval(ld *program.Loader) ([]Reason, bool) {
	if ld == nil {
		return nil, false
	}
	var why []Reason
	// A field the sensor lost is no fact: no predicate on it holds (so an
	// exception on it does not spare).
	for _, f := range []struct {
		name string
		used bool
	}{{"comm", len(l.Comm) > 0}, {"exe", len(l.Exe)+len(l.ExeIdentity) > 0}, {"uid", len(l.UID) > 0}, {"cgroup_id", len(l.Cgroup) > 0}} {
		if f.used && !ld.Knows(f.name) {
			return nil, false
		}
	}
	if len(l.Comm) > 0 {
		c := KernelName(ld.Comm)
		if !slices.Contains(l.Comm, c) {
			return nil, false
		}
		why = append(why, Reason{Predicate: "loader.comm", Detail: fmt.Sprintf("%q", c)})
	}
	if len(l.Exe) > 0 {
		g, ok := anyGlob(l.Exe, ld.Exe)
		if !ok || ld.Exe == "" {
			return nil, false
		}
		why = append(why, Reason{Predicate: "loader.exe", Detail: fmt.Sprintf("%q matches %q", ld.Exe, g)})
	}
	if len(l.UID) > 0 {
		if !slices.Contains(l.UID, ld.UID) {
			return nil, false
		}
		why = append(why, Reason{Predicate: "loader.uid", Detail: strconv.FormatUint(uint64(ld.UID), 10)})
	}
	if len(l.Cgroup) > 0 {
		if !slices.Contains(l.Cgroup, ld.CgroupID) {
			return nil, false
		}
		why = append(why, Reason{Predicate: "loader.cgroup", Detail: strconv.FormatUint(ld.CgroupID, 10)})
	}
	if len(l.ExeIdentity) > 0 {
		i := slices.IndexFunc(l.ExeIdentity, func(e ExeIdentity) bool { return e.matches(ld) })
		if i < 0 {
			return nil, false
		}
		why = append(why, Reason{Predicate: "loader.exe_identity", Detail: l.ExeIdentity[i].String()})
	}
	return why, true
}

// matches: the kernel's inode and device, and the file's sha256 when the
// identity names one; an unknown hash never matches one.
func (e ExeIdentity) matches(ld *program.Loader) bool {
	if ld.ExeInode == 0 || ld.ExeInode != e.Inode || ld.ExeDev != e.Dev {
		return false
	}
	return e.SHA256 == "" || e.SHA256 == ld.ExeSHA256
}

// describe summarises a match for reasons and `rules list`.
func (m *Match) describe() string {
	var parts []string
	if len(m.Helpers) > 0 {
		var hs []string
		for _, h := range m.Helpers {
			hs = append(hs, fmt.Sprintf("%s≥%d", h.Name, h.Min))
		}
		mode := ""
		if m.HelpersMode == HelpersCalled {
			mode = " (called)"
		}
		parts = append(parts, "helpers"+mode+" "+strings.Join(hs, ","))
	}
	if m.HelpersOnly {
		parts = append(parts, "helpers_only")
	}
	if len(m.HelpersAny) > 0 {
		var hs []string
		for _, h := range m.HelpersAny {
			hs = append(hs, h.Name)
		}
		parts = append(parts, "helpers_any "+strings.Join(hs, ","))
	}
	if p := m.ProgName; p != nil {
		parts = append(parts, "prog_name "+p.describe())
	}
	if len(m.ProgType) > 0 {
		var ts []string
		for _, t := range m.ProgType {
			ts = append(ts, enumName(program.ProgTypes, t))
		}
		parts = append(parts, "prog_type "+strings.Join(ts, ","))
	}
	if len(m.AttachType) > 0 {
		var ts []string
		for _, t := range m.AttachType {
			ts = append(ts, enumName(program.AttachTypes, t))
		}
		parts = append(parts, "attach_type "+strings.Join(ts, ","))
	}
	if len(m.AttachTo) > 0 {
		parts = append(parts, "attach_to "+strings.Join(globStrings(m.AttachTo), ","))
	}
	for _, ap := range []struct {
		name string
		g    []Glob
	}{{"attach_binary", m.AttachBinary}, {"attach_symbol", m.AttachSymbol}, {"attach_interface", m.AttachInterface}, {"attach_cgroup", m.AttachCgroup}} {
		if len(ap.g) > 0 {
			parts = append(parts, ap.name+" "+strings.Join(globStrings(ap.g), ","))
		}
	}
	if m.GPL != nil {
		parts = append(parts, fmt.Sprintf("gpl_compatible=%v", *m.GPL))
	}
	if m.InsnCount != nil {
		parts = append(parts, fmt.Sprintf("insn_count [%d,%d]", m.InsnCount.Min, m.InsnCount.Max))
	}
	if len(m.Kfuncs) > 0 {
		parts = append(parts, "kfuncs "+strings.Join(m.Kfuncs, ","))
	}
	if len(m.MapTypes) > 0 {
		var ts []string
		for _, t := range m.MapTypes {
			ts = append(ts, enumName(program.MapTypes, t))
		}
		parts = append(parts, "map_types "+strings.Join(ts, ","))
	}
	if m.TailCalls != nil {
		parts = append(parts, fmt.Sprintf("tail_calls=%v", *m.TailCalls))
	}
	if m.LoadsPrograms != nil {
		parts = append(parts, fmt.Sprintf("loads_programs=%v", *m.LoadsPrograms))
	}
	if m.Cbpf != nil {
		parts = append(parts, "cbpf")
	}
	if m.Strings != nil {
		parts = append(parts, "strings "+m.Strings.describe())
	}
	if l := m.Loader; l != nil {
		if len(l.Comm) > 0 {
			parts = append(parts, "loader.comm "+strings.Join(l.Comm, ","))
		}
		if len(l.Exe) > 0 {
			parts = append(parts, "loader.exe "+strings.Join(globStrings(l.Exe), ","))
		}
		if len(l.UID) > 0 {
			parts = append(parts, fmt.Sprintf("loader.uid %v", l.UID))
		}
		if len(l.Cgroup) > 0 {
			parts = append(parts, fmt.Sprintf("loader.cgroup %v", l.Cgroup))
		}
		for _, e := range l.ExeIdentity {
			parts = append(parts, "loader.exe_identity "+e.String())
		}
	}
	if m.Prov != nil {
		parts = append(parts, m.Prov.describe()...)
	}
	if m.Not != nil {
		parts = append(parts, "not("+m.Not.describe()+")")
	}
	if len(m.Any) > 0 {
		var as []string
		for i := range m.Any {
			as = append(as, "("+m.Any[i].describe()+")")
		}
		parts = append(parts, "any("+strings.Join(as, " | ")+")")
	}
	return strings.Join(parts, " and ")
}

func (p *StringPatterns) describe() string {
	var parts []string
	add := func(kind string, v []string) {
		if len(v) > 0 {
			parts = append(parts, kind+" "+strings.Join(v, ","))
		}
	}
	add("exact", p.Exact)
	add("prefix", p.Prefix)
	add("glob", globStrings(p.Glob))
	add("contains", p.Contains)
	var res []string
	for _, re := range p.Regex {
		res = append(res, re.String())
	}
	add("regex", res)
	return strings.Join(parts, "; ")
}

// Summary describes what the rule matches, in one line.
func (r *Rule) Summary() string { return r.Match.describe() }

// FormatVerdict renders a verdict for people: the action, then each matching
// rule with the predicates that held and the instruction slots involved.
func FormatVerdict(v Verdict) string {
	var b strings.Builder
	if len(v.Hits) == 0 {
		b.WriteString("verdict: none (no rule matched)\n")
		return b.String()
	}
	fmt.Fprintf(&b, "verdict: %s (%d rules matched)\n", v.Action, len(v.Hits))
	for _, h := range v.Hits {
		fmt.Fprintf(&b, "  rule %s [%s, %s]", h.ID, h.Action, h.Severity)
		if len(h.Tags) > 0 {
			fmt.Fprintf(&b, " %s", strings.Join(h.Tags, " "))
		}
		b.WriteByte('\n')
		for _, r := range h.Why {
			fmt.Fprintf(&b, "    %s\n", r)
		}
	}
	return b.String()
}

// EvaluateGroup judges with the rules of scope group only: prog is the
// program being loaded and rep a report whose helper counts are already
// summed over its loader group (what the kernel's group view holds).
func EvaluateGroup(set *Set, prog *program.Program, rep *analysis.Report) Verdict {
	var v Verdict
	if set == nil {
		return v
	}
	in := newInput(prog, rep)
	for _, r := range set.Rules {
		if r.Scope != ScopeGroup {
			continue
		}
		why, ok := r.eval(in)
		if !ok {
			continue
		}
		v.Hits = append(v.Hits, Hit{ID: r.ID, Action: r.Action, Severity: r.Severity, Tags: r.Tags,
			Description: r.Description, Why: why})
		v.Action = max(v.Action, r.Action)
	}
	return v
}
