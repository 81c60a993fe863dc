package rules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// Placement says where a rule is evaluated and why.
type Placement struct {
	ID     string `json:"id"`
	Kernel bool   `json:"kernel"` // compiled into the kernel table: a block is enforced at load time
	Slot   int    `json:"slot"`   // index in the kernel table, -1 when not in it
	Reason string `json:"reason"`
}

// Compiled is a rule set's kernel table and where each rule went.
type Compiled struct {
	kernel.Rules             // the table and the rule id of each slot
	Placements   []Placement // one per rule, in set order
	// Overflow are the rules the kernel could evaluate but that found no
	// slot left in the table (Fits reports them).
	Overflow []string
}

// Kernel is the part of c a sensor loads (nil for a nil c).
func (c *Compiled) Kernel() *kernel.Rules {
	if c == nil {
		return nil
	}
	return &c.Rules
}

// ErrTableFull: a rule set needs more kernel table slots than there are.
var ErrTableFull = errors.New("the rule set does not fit the kernel table")

// Fits is nil when every rule the kernel can evaluate got a slot; else an
// ErrTableFull naming the rules left out. A sensor must refuse such a set
// rather than quietly turn its last block rules into alerts.
func (c *Compiled) Fits() error {
	if len(c.Overflow) == 0 {
		return nil
	}
	ids := c.Overflow
	more := ""
	if len(ids) > 5 {
		ids, more = ids[:5], fmt.Sprintf(" and %d more", len(c.Overflow)-5)
	}
	return fmt.Errorf("%w: it holds %d rules, %d more are enforceable in the kernel (%s%s)",
		ErrTableFull, kernel.MaxRules, len(c.Overflow), strings.Join(ids, ", "), more)
}

// Compile puts the set's block rules that the kernel can evaluate into a
// kernel table (bpf/include/rules.h), in set order. Alert rules and block
// rules with predicates the kernel cannot evaluate stay in user space, where
// they can only alert; Placements says which and why.
func Compile(set *Set) *Compiled {
	return compile(set, false)
}

// compile with all also puts enforceable alert rules in the table (tests
// compare the kernel and Go evaluators on every rule).
func compile(set *Set, all bool) *Compiled {
	c := &Compiled{}
	if set == nil {
		return c
	}
	for _, r := range set.Rules {
		p := Placement{ID: r.ID, Slot: -1}
		kr, why := kernelRule(r)
		switch {
		case why != "" && r.Action == ActionBlock:
			p.Reason = "alert-only (block not enforceable in the kernel): " + why
		case why != "":
			p.Reason = "user space: " + why
		case r.Action != ActionBlock && !all && r.Scope != ScopeGroup:
			p.Reason = "user space: alert rules need no kernel enforcement"
		case len(c.Slots) >= kernel.MaxRules:
			p.Reason = fmt.Sprintf("alert-only (block not enforceable in the kernel): the kernel table holds %d rules", kernel.MaxRules)
			c.Overflow = append(c.Overflow, r.ID)
		default:
			p.Kernel, p.Slot = true, len(c.Slots)
			p.Reason = "kernel: enforced at load time"
			if r.Action != ActionBlock {
				p.Reason = "kernel: evaluated at load time (alert)"
			}
			if r.Scope == ScopeGroup {
				p.Reason = "kernel: judged against the loader group's sum at load time"
				c.Table.GroupN++
			}
			c.Table.Rules[p.Slot] = *kr
			c.Slots = append(c.Slots, r.ID)
		}
		c.Placements = append(c.Placements, p)
	}
	c.Table.Count = uint32(len(c.Slots))
	return c
}

// Enforceable reports whether rule r can be compiled into the kernel table,
// and if not, why.
func Enforceable(r *Rule) (bool, string) {
	_, why := kernelRule(r)
	return why == "", why
}

// kernelRule compiles r, or says why the kernel cannot evaluate it.
func kernelRule(r *Rule) (*kernel.Rule, string) {
	kr := &kernel.Rule{Action: kernel.ActionAlert}
	if r.Action == ActionBlock {
		kr.Action = kernel.ActionBlock
	}
	if r.Scope == ScopeGroup {
		kr.Flags |= kernel.FlagGroup
	}
	m := &r.Match
	var userOnly []string
	need := func(cond bool, what string) {
		if cond {
			userOnly = append(userOnly, what)
		}
	}
	need(m.ProgName != nil && (len(m.ProgName.Glob) > 0 || len(m.ProgName.Regex) > 0), "prog_name glob/regex")
	need(len(m.AttachTo) > 0, "attach_to (the BTF name is resolved in user space)")
	need(len(m.AttachBinary)+len(m.AttachSymbol)+len(m.AttachInterface)+len(m.AttachCgroup) > 0, "attach_binary/attach_symbol/attach_interface/attach_cgroup (known at attach time only)")
	need(m.GPL != nil, "gpl_compatible (the license string is not read in the kernel)")
	need(len(m.Kfuncs) > 0, "kfuncs")
	need(len(m.MapTypes) > 0, "map_types")
	need(m.TailCalls != nil, "tail_calls")
	need(m.Strings != nil, "strings")
	need(m.Cbpf != nil, "cbpf (classic socket filters are judged at the setsockopt hook)")
	need(m.LoadsPrograms != nil && (!*m.LoadsPrograms || len(m.HelpersAny) > 0), "loads_programs: false, or beside helpers_any")
	need(m.Loader != nil && len(m.Loader.Exe) > 0, "loader.exe")
	need(m.Loader != nil && len(m.Loader.Cgroup) > 0, "loader.cgroup")
	need(len(m.Any) > 0, "any")
	if m.Prov != nil {
		for _, w := range m.Prov.userOnly() {
			need(true, w)
		}
	}
	for _, a := range r.Allow {
		need(a.SHA256 != "", "allow by sha256 (the kernel knows only the 64-bit insn_hash)")
		need(a.Tag != "", "allow by kernel tag (the tag exists only after the load)")
	}
	if len(userOnly) > 0 {
		return nil, dedupe(userOnly) + " evaluated in user space only"
	}

	if len(m.Helpers) > kernel.RuleHelpers {
		return nil, fmt.Sprintf("%d helpers, the kernel table holds %d per rule", len(m.Helpers), kernel.RuleHelpers)
	}
	for i, h := range m.Helpers {
		if h.ID > int32(kernel.MaxHelperID) {
			return nil, fmt.Sprintf("helper %s has id %d, the kernel counts ids up to %d", h.Name, h.ID, kernel.MaxHelperID)
		}
		kr.HelperId[i], kr.HelperMin[i] = uint32(h.ID), h.Min
		if m.HelpersOnly {
			kr.Allowed[h.ID/64] |= 1 << (h.ID % 64)
		}
	}
	kr.HelperN = uint32(len(m.Helpers))
	if m.HelpersMode == HelpersCalled && len(m.Helpers) > 0 {
		kr.Flags |= kernel.FlagHelpersCalled
	}
	if m.HelpersOnly {
		kr.Flags |= kernel.FlagHelpersOnly
	}
	anyOf := m.HelpersAny
	if m.LoadsPrograms != nil && *m.LoadsPrograms {
		// The kernel's fact is the helper's call count.
		anyOf = []HelperMin{{ID: SysBPFHelper, Name: "sys_bpf", Min: 1}}
	}
	if len(anyOf) > 0 {
		kr.Flags |= kernel.FlagHelpersAny
		for _, h := range anyOf {
			if h.ID > int32(kernel.MaxHelperID) {
				return nil, fmt.Sprintf("helper %s has id %d, the kernel counts ids up to %d", h.Name, h.ID, kernel.MaxHelperID)
			}
			kr.AnyOf[h.ID/64] |= 1 << (h.ID % 64)
		}
	}
	if len(m.ProgType) > 0 {
		kr.Flags |= kernel.FlagProgType
		for _, t := range m.ProgType {
			if t >= 64 {
				return nil, fmt.Sprintf("prog_type %d: the kernel table holds types below 64", t)
			}
			kr.ProgTypes |= 1 << t
		}
	}
	if len(m.AttachType) > 0 {
		kr.Flags |= kernel.FlagAttachType
		for _, t := range m.AttachType {
			if t >= 128 {
				return nil, fmt.Sprintf("attach_type %d: the kernel table holds types below 128", t)
			}
			kr.AttachTypes[t/64] |= 1 << (t % 64)
		}
	}
	if m.Prov != nil {
		m.Prov.compile(kr)
	}
	if m.InsnCount != nil {
		kr.Flags |= kernel.FlagInsnRange
		kr.InsnMin, kr.InsnMax = m.InsnCount.Min, m.InsnCount.Max
	}

	// Name, comm, uid and executable conditions: positive in the match, or
	// (except comm, which the loader chooses) an exception in a `not` that
	// holds nothing else.
	names, comms, uids, exes := m.ProgName, loaderComm(m.Loader), loaderUID(m.Loader), loaderExes(m.Loader)
	if n := m.Not; n != nil {
		if !n.onlyNameUIDExe() {
			return nil, "not: only a not holding just prog_name exact/prefix, loader.uid or loader.exe_identity is evaluated in the kernel; this one is evaluated in user space only"
		}
		switch {
		case n.ProgName != nil && names != nil, loaderUID(n.Loader) != nil && uids != nil, loaderExes(n.Loader) != nil && exes != nil:
			return nil, "not: the same field both required and excepted is evaluated in user space only"
		}
		if n.ProgName != nil {
			names = n.ProgName
			kr.Flags |= kernel.FlagNameNot
		}
		if u := loaderUID(n.Loader); u != nil {
			uids = u
			kr.Flags |= kernel.FlagUIDNot
		}
		if e := loaderExes(n.Loader); e != nil {
			exes = e
			kr.Flags |= kernel.FlagExeNot
		}
	}
	if exes != nil {
		if len(exes) > kernel.RuleExes {
			return nil, fmt.Sprintf("%d loader.exe_identity entries, the kernel table holds %d per rule", len(exes), kernel.RuleExes)
		}
		for i, e := range exes {
			kr.Exes[i] = kernel.Exe{Ino: e.Inode, Dev: e.Dev}
		}
		kr.ExeN = uint32(len(exes))
	}
	if names != nil {
		if len(names.Exact)+len(names.Prefix) > kernel.RuleNames {
			return nil, fmt.Sprintf("%d prog_name patterns, the kernel table holds %d per rule", len(names.Exact)+len(names.Prefix), kernel.RuleNames)
		}
		i := 0
		for _, s := range names.Exact {
			kr.Names[i] = kernelStr(s, false)
			i++
		}
		for _, s := range names.Prefix {
			kr.Names[i] = kernelStr(s, true)
			i++
		}
		kr.NameN = uint32(i)
	}
	if comms != nil {
		if len(comms) > kernel.RuleComms {
			return nil, fmt.Sprintf("%d loader.comm names, the kernel table holds %d per rule", len(comms), kernel.RuleComms)
		}
		for i, s := range comms {
			kr.Comms[i] = kernelStr(s, false)
		}
		kr.CommN = uint32(len(comms))
	}
	if uids != nil {
		if len(uids) > kernel.RuleUIDs {
			return nil, fmt.Sprintf("%d loader.uid values, the kernel table holds %d per rule", len(uids), kernel.RuleUIDs)
		}
		copy(kr.Uids[:], uids)
		kr.UidN = uint32(len(uids))
	}
	for _, a := range r.Allow {
		if kr.HashN >= uint32(kernel.RuleHashes) {
			return nil, fmt.Sprintf("more than %d allow entries, the kernel table holds %d per rule", kernel.RuleHashes, kernel.RuleHashes)
		}
		kr.AllowHash[kr.HashN] = a.InsnHash
		kr.HashN++
	}
	return kr, ""
}

func dedupe(v []string) string {
	seen := map[string]bool{}
	var out []string
	for _, s := range v {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

func loaderComm(l *LoaderMatch) []string {
	if l == nil || len(l.Comm) == 0 {
		return nil
	}
	return l.Comm
}

func loaderExes(l *LoaderMatch) []ExeIdentity {
	if l == nil || len(l.ExeIdentity) == 0 {
		return nil
	}
	return l.ExeIdentity
}

func loaderUID(l *LoaderMatch) []uint32 {
	if l == nil || len(l.UID) == 0 {
		return nil
	}
	return l.UID
}

// onlyNameUIDExe: the match holds exactly one predicate, and it is one of
// prog_name exact/prefix, loader.uid or loader.exe_identity.
func (m *Match) onlyNameUIDExe() bool {
	n := 0
	if p := m.ProgName; p != nil {
		if len(p.Glob)+len(p.Regex) > 0 {
			return false
		}
		n++
	}
	if l := m.Loader; l != nil {
		if len(l.Exe)+len(l.Cgroup)+len(l.Comm) > 0 {
			return false
		}
		if len(l.UID) > 0 {
			n++
		}
		if len(l.ExeIdentity) > 0 {
			n++
		}
	}
	rest := *m
	rest.ProgName, rest.Loader = nil, nil
	return n == 1 && rest.describe() == ""
}

// kernelStr encodes a name pattern as rules_str: an exact pattern's mask
// also covers the NUL after it.
func kernelStr(s string, prefix bool) kernel.Str {
	var text, mask [16]byte
	copy(text[:], s)
	n := len(s)
	if !prefix {
		n++
	}
	for i := 0; i < n && i < 16; i++ {
		mask[i] = 0xff
	}
	return kernel.Str{
		Text: [2]uint64{binary.LittleEndian.Uint64(text[:8]), binary.LittleEndian.Uint64(text[8:])},
		Mask: [2]uint64{binary.LittleEndian.Uint64(mask[:8]), binary.LittleEndian.Uint64(mask[8:])},
	}
}

// Facts computes what the kernel would know about prog at load time: its
// metadata and the walk of its instructions (rules_facts_add_insn).
func Facts(prog *program.Program) kernel.Facts {
	var f kernel.Facts
	f.ProgType = prog.Type
	f.ExpectedAttachType = prog.ExpectedAttachType
	f.InsnCnt = prog.InsnCnt
	if f.InsnCnt == 0 {
		f.InsnCnt = uint32(len(prog.Insns) / 8)
	}
	kernel.SetString(&f.ProgName, prog.Name)
	if prog.Loader != nil {
		f.Uid = prog.Loader.UID
		kernel.SetString(&f.Comm, prog.Loader.Comm)
		f.ExeIno, f.ExeDev = prog.Loader.ExeInode, prog.Loader.ExeDev
	}
	f.Prov = ProvFacts(prog.Provenance)
	f.InsnHash = kernel.HashInit
	for i := 0; i+8 <= len(prog.Insns); i += 8 {
		kernel.AddInsn(&f, binary.LittleEndian.Uint64(prog.Insns[i:]))
	}
	return f
}
