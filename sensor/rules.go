package sensor

import (
	"errors"
	"fmt"
)

// Rule is one entry of the kernel rule table. All present conditions must
// hold: prog type in ProgTypes (empty: any), name matching one of Names
// (empty: any), every helper in MinHelpers called at least that often, and
// with HelpersOnly no helper outside MinHelpers used at all (the seed's
// semantics).
type Rule struct {
	ID          uint32
	Action      Verdict // VerdictAlert or VerdictBlock
	ProgTypes   []uint32
	Names       []NamePattern
	MinHelpers  []HelperMin
	HelpersOnly bool
}

// NamePattern matches the program name exactly or as a prefix.
type NamePattern struct {
	Text   string
	Prefix bool
}

// HelperMin asks for at least Min calls of helper ID.
type HelperMin struct {
	ID  uint32
	Min uint32
}

// Limits of the kernel table (bpf/include/sentry.h).
const (
	MaxRules       = 64
	MaxRuleNames   = 4
	MaxRuleHelpers = 16
	MaxHelperID    = 255
	maxNameLen     = 16
)

// ErrRuleTable is wrapped by every rule compilation error.
var ErrRuleTable = errors.New("rule does not fit the kernel rule table")

func compileRules(rules []Rule) ([]sentrySentryRule, error) {
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("%w: %d rules, at most %d", ErrRuleTable, len(rules), MaxRules)
	}
	out := make([]sentrySentryRule, len(rules))
	for i, r := range rules {
		k, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rule %d (id %d): %w", i, r.ID, err)
		}
		out[i] = k
	}
	return out, nil
}

func compileRule(r Rule) (sentrySentryRule, error) {
	var k sentrySentryRule
	if r.Action != VerdictAlert && r.Action != VerdictBlock {
		return k, fmt.Errorf("%w: action %v, want alert or block", ErrRuleTable, r.Action)
	}
	k.Id = r.ID
	k.Action = uint32(r.Action)
	for _, t := range r.ProgTypes {
		if t >= 64 {
			return k, fmt.Errorf("%w: prog type %d ≥ 64", ErrRuleTable, t)
		}
		k.ProgTypes |= 1 << t
	}
	if len(r.Names) > MaxRuleNames {
		return k, fmt.Errorf("%w: %d name patterns, at most %d", ErrRuleTable, len(r.Names), MaxRuleNames)
	}
	for i, n := range r.Names {
		if len(n.Text) == 0 || len(n.Text) > maxNameLen {
			return k, fmt.Errorf("%w: name pattern %q must be 1..%d bytes (kernel prog names are at most 15)", ErrRuleTable, n.Text, maxNameLen)
		}
		k.NameLen[i] = uint32(len(n.Text))
		if n.Prefix {
			k.NamePrefix[i] = 1
		}
		for j := 0; j < len(n.Text); j++ {
			k.Names[i][j] = int8(n.Text[j])
		}
	}
	k.NameCount = uint32(len(r.Names))
	if len(r.MinHelpers) > MaxRuleHelpers {
		return k, fmt.Errorf("%w: %d helpers, at most %d", ErrRuleTable, len(r.MinHelpers), MaxRuleHelpers)
	}
	for i, h := range r.MinHelpers {
		if h.ID > MaxHelperID {
			return k, fmt.Errorf("%w: helper id %d > %d", ErrRuleTable, h.ID, MaxHelperID)
		}
		k.HelperId[i] = h.ID
		k.HelperMin[i] = h.Min
		k.Allowed[h.ID/64] |= 1 << (h.ID % 64)
	}
	k.HelperCount = uint32(len(r.MinHelpers))
	if r.HelpersOnly {
		k.HelpersOnly = 1
	}
	return k, nil
}

// SeedRules are the proof of concept's two patterns with their original
// semantics (helper minimums, no other helper, name prefixes). They are the
// sensor's defaults until the rules package supplies compiled tables.
func SeedRules() []Rule {
	return []Rule{
		{
			ID: 1, Action: VerdictBlock, HelpersOnly: true,
			MinHelpers: []HelperMin{{14, 1}, {1, 1}, {4, 5}, {3, 1}, {16, 1}, {132, 1}, {131, 1}},
			Names:      []NamePattern{{"testtest", true}, {"handle_", true}, {"det_", true}},
		},
		{
			ID: 2, Action: VerdictBlock, HelpersOnly: true,
			MinHelpers: []HelperMin{{14, 1}, {35, 1}, {113, 2}, {112, 2}, {6, 2}, {36, 1}, {131, 1}, {132, 1}},
			Names:      []NamePattern{{"handle_execve_e", true}},
		},
	}
}
