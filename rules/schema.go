package rules

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/goccy/go-yaml/ast"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func (d *decoder) checkSet(rules []*Rule) {
	if len(rules) > MaxRules {
		d.add(&FieldError{Pos: rules[MaxRules].Pos, Msg: fmt.Sprintf("%d rules, at most %d: %v", len(rules), MaxRules, ErrTooLarge), Err: ErrTooLarge})
	}
	seen := map[string]*Rule{}
	for _, r := range rules {
		if first, ok := seen[r.ID]; ok {
			d.add(&FieldError{Pos: r.Pos, Rule: r.ID, Field: "id", Msg: "duplicate id, first defined at " + first.Pos.String()})
			continue
		}
		seen[r.ID] = r
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var ruleKeys = []string{"id", "description", "severity", "action", "tags", "match", "allow", "scope"}

func (d *decoder) parseRule(n ast.Node, index int) *Rule {
	d.rule = ""
	defer func() { d.rule = "" }()
	field := fmt.Sprintf("[%d]", index)
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil
	}
	r := &Rule{Pos: d.posOf(n), Severity: -1}
	before := len(d.errs) + d.omitted
	// The id first, so that every other error names the rule.
	for _, e := range entries {
		if e.key == "id" {
			if id, ok := d.str(e.value, "id"); ok {
				if !idPattern.MatchString(id) {
					d.errorf(e.value, "id", "%q is not a valid id (letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)", id)
				} else {
					r.ID = id
					d.rule = id
				}
			}
		}
	}
	var matchN ast.Node
	for _, e := range entries {
		switch e.key {
		case "id":
		case "description":
			r.Description, _ = d.str(e.value, e.key)
		case "severity":
			if s, ok := d.str(e.value, e.key); ok {
				r.Severity = parseSeverity(s)
				if r.Severity < 0 {
					d.errorf(e.value, e.key, "unknown severity %q; valid: info, low, medium, high, critical", s)
				}
			}
		case "action":
			if s, ok := d.str(e.value, e.key); ok {
				switch s {
				case "alert":
					r.Action = ActionAlert
				case "block":
					r.Action = ActionBlock
				default:
					d.errorf(e.value, e.key, "unknown action %q; valid: alert, block", s)
				}
			}
		case "tags":
			items, _ := d.list(e.value, e.key, true)
			for _, it := range items {
				if s, ok := d.pattern(it, e.key); ok {
					r.Tags = append(r.Tags, s)
				}
			}
		case "match":
			matchN = e.value
			if m, ok := d.parseMatch(e.value, "match", 0); ok {
				r.Match = *m
			}
		case "allow":
			r.Allow = d.parseAllow(e.value, e.key)
		case "scope":
			if s, ok := d.str(e.value, e.key); ok {
				switch s {
				case "program":
					r.Scope = ScopeProgram
				case "group":
					r.Scope = ScopeGroup
				default:
					d.errorf(e.value, e.key, "unknown scope %q; valid: program, group", s)
				}
			}
		default:
			d.unknownKey(e, "", ruleKeys)
		}
	}
	for _, req := range []struct {
		key     string
		missing bool
	}{{"id", r.ID == "" && !hasKey(entries, "id")}, {"severity", !hasKey(entries, "severity")},
		{"action", !hasKey(entries, "action")}, {"match", matchN == nil}} {
		if req.missing {
			d.errorf(n, req.key, "missing (required)")
		}
	}
	if r.Scope == ScopeGroup && len(d.errs)+d.omitted == before {
		// Group sums exist only in the kernel: a group rule it cannot
		// evaluate would never match anywhere.
		if ok, why := Enforceable(r); !ok {
			d.errorf(n, "scope", "a rule of scope group is evaluated in the kernel only, and this one cannot be: %s", why)
		}
	}
	if len(d.errs)+d.omitted != before {
		return nil
	}
	return r
}

func hasKey(entries []entry, key string) bool {
	return slices.ContainsFunc(entries, func(e entry) bool { return e.key == key })
}

func parseSeverity(s string) Severity {
	for sev := SeverityInfo; sev <= SeverityCritical; sev++ {
		if sev.String() == s {
			return sev
		}
	}
	return -1
}

var matchKeys = []string{"helpers", "helpers_mode", "helpers_only", "helpers_any", "prog_name", "prog_type",
	"attach_type", "attach_to", "attach_binary", "attach_symbol", "attach_interface", "attach_cgroup", "gpl_compatible", "insn_count", "kfuncs", "map_types", "tail_calls",
	"loads_programs", "cbpf", "strings", "loader", "not", "any"}

func (d *decoder) parseMatch(n ast.Node, field string, depth int) (*Match, bool) {
	if depth > maxDepth {
		d.errorf(n, field, "not/any nested more than %d deep", maxDepth)
		return nil, false
	}
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	if len(entries) == 0 {
		d.errorf(n, field, "empty match: it would match every program")
		return nil, false
	}
	m := &Match{}
	good := true
	fail := func() { good = false }
	for _, e := range entries {
		f := join(field, e.key)
		switch e.key {
		case "helpers":
			m.Helpers, ok = d.parseHelperMins(e.value, f)
		case "helpers_mode":
			var s string
			if s, ok = d.str(e.value, f); ok {
				switch s {
				case "all":
					m.HelpersMode = HelpersAll
				case "called":
					m.HelpersMode = HelpersCalled
				default:
					d.errorf(e.value, f, "unknown mode %q; valid: all, called", s)
					ok = false
				}
			}
		case "helpers_only":
			m.HelpersOnly, ok = d.boolean(e.value, f)
		case "helpers_any":
			m.HelpersAny, ok = d.parseHelperList(e.value, f)
		case "prog_name":
			m.ProgName, ok = d.parseNamePatterns(e.value, f)
		case "prog_type":
			m.ProgType, ok = d.parseEnumList(e.value, f, program.ProgTypes)
		case "attach_type":
			m.AttachType, ok = d.parseEnumList(e.value, f, program.AttachTypes)
		case "map_types":
			m.MapTypes, ok = d.parseEnumList(e.value, f, program.MapTypes)
		case "attach_to":
			m.AttachTo, ok = d.parseGlobs(e.value, f)
		case "attach_binary":
			m.AttachBinary, ok = d.parseGlobs(e.value, f)
		case "attach_symbol":
			m.AttachSymbol, ok = d.parseGlobs(e.value, f)
		case "attach_interface":
			m.AttachInterface, ok = d.parseGlobs(e.value, f)
		case "attach_cgroup":
			m.AttachCgroup, ok = d.parseGlobs(e.value, f)
		case "gpl_compatible":
			var b bool
			if b, ok = d.boolean(e.value, f); ok {
				m.GPL = &b
			}
		case "tail_calls":
			var b bool
			if b, ok = d.boolean(e.value, f); ok {
				m.TailCalls = &b
			}
		case "cbpf":
			m.Cbpf, ok = d.parseCbpf(e.value, f)
		case "loads_programs":
			var b bool
			if b, ok = d.boolean(e.value, f); ok {
				m.LoadsPrograms = &b
			}
		case "insn_count":
			m.InsnCount, ok = d.parseRange(e.value, f)
		case "kfuncs":
			var items []ast.Node
			if items, ok = d.list(e.value, f, true); ok {
				for _, it := range items {
					if s, sok := d.pattern(it, f); sok {
						m.Kfuncs = append(m.Kfuncs, s)
					} else {
						ok = false
					}
				}
			}
		case "strings":
			m.Strings, ok = d.parseStringPatterns(e.value, f)
		case "loader":
			m.Loader, ok = d.parseLoader(e.value, f)
		case "not":
			m.Not, ok = d.parseMatch(e.value, f, depth+1)
			if ok && m.Not.hasComm() {
				d.errorf(e.value, f, "loader.comm cannot be an exception: any process can take any comm (prctl PR_SET_NAME); "+
					"allowlist a loader by loader.exe_identity {inode, dev, sha256} or a program by allow")
				ok = false
			}
		case "any":
			var items []ast.Node
			if items, ok = d.list(e.value, f, false); ok {
				if len(items) == 0 {
					d.errorf(e.value, f, "empty list: nothing could match")
					ok = false
				}
				for i, it := range items {
					sub, sok := d.parseMatch(it, fmt.Sprintf("%s[%d]", f, i), depth+1)
					if sok {
						m.Any = append(m.Any, *sub)
					} else {
						ok = false
					}
				}
			}
		default:
			var handled bool
			if handled, ok = d.parseProvenanceKey(e, f, m); !handled {
				d.unknownKey(e, field, append(slices.Clone(matchKeys), provenanceKeys...))
			}
		}
		if !ok {
			fail()
		}
	}
	if good && len(m.Helpers) == 0 && hasKey(entries, "helpers_mode") {
		d.errorf(n, join(field, "helpers_mode"), "needs helpers")
		good = false
	}
	return m, good
}

// hasComm reports whether m, or anything nested in it, tests loader.comm.
func (m *Match) hasComm() bool {
	if m == nil {
		return false
	}
	if m.Loader != nil && len(m.Loader.Comm) > 0 {
		return true
	}
	for i := range m.Any {
		if m.Any[i].hasComm() {
			return true
		}
	}
	return m.Not.hasComm()
}
