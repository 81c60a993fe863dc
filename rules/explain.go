package rules

import (
	"fmt"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Outcome is what one rule does to one program.
type Outcome string

const (
	OutcomeMatch    Outcome = "match"     // every predicate holds
	OutcomeAllowed  Outcome = "allowed"   // it would match, an allow entry exempts the program
	OutcomeNearMiss Outcome = "near_miss" // some predicates hold, not all
	OutcomeNoMatch  Outcome = "no_match"  // no predicate holds but exceptions (not)
)

// Explanation says what one rule would do to a program and why: the
// predicates that hold (with their instruction slots) and those that fail.
type Explanation struct {
	ID      string  `json:"id"`
	Action  Action  `json:"action"`
	Outcome Outcome `json:"outcome"`
	Allow   string  `json:"allowed_by,omitempty"` // the allow entry that exempts it
	// Predicates counts the rule's top-level predicates; those not in
	// Failed hold, with their reasons in Held.
	Predicates int       `json:"predicates"`
	Held       []Reason  `json:"held,omitempty"`
	Failed     []Missing `json:"failed,omitempty"`
}

// Missing is one predicate that does not hold: what the rule wants.
type Missing struct {
	Predicate string `json:"predicate"`
	Want      string `json:"want"`
}

// Explain evaluates every rule of set on prog predicate by predicate, so
// that a rule that does not match still says which of its predicates held
// (a near miss) and which failed.
func Explain(set *Set, prog *program.Program, rep *analysis.Report) []Explanation {
	if set == nil {
		return nil
	}
	in := newInput(prog, rep)
	out := make([]Explanation, 0, len(set.Rules))
	for _, r := range set.Rules {
		if r.Scope == ScopeGroup {
			continue // judged against a group's sum, which one program does not show
		}
		e := Explanation{ID: r.ID, Action: r.Action}
		ps := r.Match.predicates()
		e.Predicates = len(ps)
		positive := false // an exception (not) holding alone is no near miss
		for _, p := range ps {
			if why, ok := p.m.eval(in); ok {
				e.Held = append(e.Held, why...)
				positive = positive || p.name != "not"
			} else {
				e.Failed = append(e.Failed, Missing{Predicate: p.name, Want: p.m.describe()})
			}
		}
		switch {
		case len(e.Failed) == 0:
			e.Outcome = OutcomeMatch
			if _, ok := r.eval(in); !ok {
				e.Outcome, e.Allow = OutcomeAllowed, r.allowedBy(in)
			}
		case positive:
			e.Outcome = OutcomeNearMiss
		default:
			e.Outcome = OutcomeNoMatch
		}
		out = append(out, e)
	}
	return out
}

func (r *Rule) allowedBy(in *input) string {
	for _, a := range r.Allow {
		switch {
		case a.SHA256 != "" && a.SHA256 == in.rep.SHA256:
			return "sha256 " + a.SHA256
		case a.Tag != "" && in.prog.Kernel != nil && strings.EqualFold(a.Tag, in.prog.Kernel.Tag):
			return "tag " + a.Tag
		case a.HasHash && len(in.prog.Insns) > 0 && a.InsnHash == in.insnHash():
			return fmt.Sprintf("insn_hash %#x", a.InsnHash)
		}
	}
	return ""
}

type namedMatch struct {
	name string
	m    Match
}

// predicates splits m into one Match per predicate (helpers_only goes with
// the helpers it refers to), in the order eval checks them.
func (m *Match) predicates() []namedMatch {
	var ps []namedMatch
	add := func(name string, sub Match) { ps = append(ps, namedMatch{name, sub}) }
	if len(m.Helpers) > 0 || m.HelpersOnly {
		add("helpers", Match{Helpers: m.Helpers, HelpersMode: m.HelpersMode, HelpersOnly: m.HelpersOnly})
	}
	if len(m.HelpersAny) > 0 {
		add("helpers_any", Match{HelpersAny: m.HelpersAny})
	}
	if m.ProgName != nil {
		add("prog_name", Match{ProgName: m.ProgName})
	}
	if len(m.ProgType) > 0 {
		add("prog_type", Match{ProgType: m.ProgType})
	}
	if len(m.AttachType) > 0 {
		add("attach_type", Match{AttachType: m.AttachType})
	}
	if len(m.AttachTo) > 0 {
		add("attach_to", Match{AttachTo: m.AttachTo})
	}
	if len(m.AttachBinary) > 0 {
		add("attach_binary", Match{AttachBinary: m.AttachBinary})
	}
	if len(m.AttachSymbol) > 0 {
		add("attach_symbol", Match{AttachSymbol: m.AttachSymbol})
	}
	if len(m.AttachInterface) > 0 {
		add("attach_interface", Match{AttachInterface: m.AttachInterface})
	}
	if len(m.AttachCgroup) > 0 {
		add("attach_cgroup", Match{AttachCgroup: m.AttachCgroup})
	}
	if m.GPL != nil {
		add("gpl_compatible", Match{GPL: m.GPL})
	}
	if m.InsnCount != nil {
		add("insn_count", Match{InsnCount: m.InsnCount})
	}
	if len(m.Kfuncs) > 0 {
		add("kfuncs", Match{Kfuncs: m.Kfuncs})
	}
	if len(m.MapTypes) > 0 {
		add("map_types", Match{MapTypes: m.MapTypes})
	}
	if m.TailCalls != nil {
		add("tail_calls", Match{TailCalls: m.TailCalls})
	}
	if m.LoadsPrograms != nil {
		add("loads_programs", Match{LoadsPrograms: m.LoadsPrograms})
	}
	if m.Cbpf != nil {
		add("cbpf", Match{Cbpf: m.Cbpf})
	}
	if m.Strings != nil {
		add("strings", Match{Strings: m.Strings})
	}
	if m.Loader != nil {
		add("loader", Match{Loader: m.Loader})
	}
	if m.Prov != nil {
		add("provenance", Match{Prov: m.Prov})
	}
	if m.Not != nil {
		add("not", Match{Not: m.Not})
	}
	if len(m.Any) > 0 {
		add("any", Match{Any: m.Any})
	}
	return ps
}

// FormatExplanations renders Explain's result for a terminal: matches,
// allowed matches and near misses in full, the rules where nothing held
// counted in one line.
func FormatExplanations(es []Explanation) string {
	var b strings.Builder
	b.WriteString("explain:\n")
	none := 0
	for _, e := range es {
		switch e.Outcome {
		case OutcomeNoMatch:
			none++
			continue
		case OutcomeMatch:
			fmt.Fprintf(&b, "  %s [%s]: matches\n", e.ID, e.Action)
		case OutcomeAllowed:
			fmt.Fprintf(&b, "  %s [%s]: would match, allowed by %s\n", e.ID, e.Action, e.Allow)
		case OutcomeNearMiss:
			fmt.Fprintf(&b, "  %s [%s]: near miss, %d of %d predicates hold\n", e.ID, e.Action, e.Predicates-len(e.Failed), e.Predicates)
		}
		for _, r := range e.Held {
			fmt.Fprintf(&b, "      held:   %s\n", r)
		}
		for _, f := range e.Failed {
			fmt.Fprintf(&b, "      failed: %s (want %s)\n", f.Predicate, f.Want)
		}
	}
	if none > 0 {
		fmt.Fprintf(&b, "  %d other rules: no predicate holds (exceptions aside)\n", none)
	}
	return b.String()
}
