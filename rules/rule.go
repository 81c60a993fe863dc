package rules

import (
	"fmt"
	"regexp"
)

// Severity ranks how bad a match is.
type Severity int

//go:generate go tool stringer -type=Severity,Action -linecomment -output=enum_string.go

const (
	SeverityInfo     Severity = iota // info
	SeverityLow                      // low
	SeverityMedium                   // medium
	SeverityHigh                     // high
	SeverityCritical                 // critical
)

// Action is what a matching rule asks for.
type Action int

const (
	ActionNone  Action = iota // none
	ActionAlert               // alert
	ActionBlock               // block
)

// MarshalText makes severities read as words in JSON and YAML.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalText makes actions read as words in JSON and YAML.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Position is where something is in a rule file.
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

func (p Position) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Set is an ordered list of rules with unique ids. Order matters for the
// kernel table (the first matching rule is reported) and for output.
type Set struct {
	Rules  []*Rule
	Source string // the file or directory it was loaded from, or "defaults"
}

// Rule is one validated rule.
type Rule struct {
	ID          string
	Description string
	Severity    Severity
	Action      Action
	Tags        []string
	Match       Match
	Allow       []Allow // exceptions: a program matching one never matches the rule
	// Scope is what the rule judges: one program (the default) or the
	// loader group of the program being loaded (docs/GROUPS.md).
	Scope Scope
	Pos   Position
}

// Scope says whether a rule judges one program or a loader group.
type Scope int

const (
	// ScopeProgram: the rule judges each program alone.
	ScopeProgram Scope = iota
	// ScopeGroup: the rule judges the program being loaded with helper
	// counts summed over its loader group (docs/GROUPS.md); evaluated
	// in the kernel only, where the group sums live.
	ScopeGroup
)

func (s Scope) String() string {
	if s == ScopeGroup {
		return "group"
	}
	return "program"
}

// MarshalText makes scopes read as words in JSON and YAML.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// HelpersMode says how Match.Helpers minimums apply.
type HelpersMode int

const (
	// HelpersAll: every listed helper is called at least its minimum.
	HelpersAll HelpersMode = iota
	// HelpersCalled: at least one listed helper is called, and each listed
	// helper that is called at all is called at least its minimum — the
	// original proof of concept's verdict (see docs/RULES.md).
	HelpersCalled
)

// HelperMin is a minimum call count of one helper.
type HelperMin struct {
	ID   int32
	Name string
	Min  uint32
}

// Match is a conjunction: every present predicate must hold. Empty fields are
// absent predicates; a list inside a predicate means any of.
type Match struct {
	Helpers     []HelperMin
	HelpersMode HelpersMode
	HelpersOnly bool // no helper outside Helpers is called
	HelpersAny  []HelperMin

	ProgName   *StringPatterns
	ProgType   []uint32
	AttachType []uint32
	AttachTo   []Glob // over program.Program.AttachTo
	// The attach point's parts (program.Program.AttachPoint), known only
	// when a program is judged at attach time: a load never matches them.
	AttachBinary    []Glob // uprobe binary path
	AttachSymbol    []Glob // uprobe symbol or kprobe function
	AttachInterface []Glob // xdp, tcx, netkit interface name
	AttachCgroup    []Glob // cgroup path under the cgroup2 mount
	GPL             *bool  // license is (not) GPL-compatible
	InsnCount       *Range
	Kfuncs          []string // any of, by name
	MapTypes        []uint32 // any of
	TailCalls       *bool
	// LoadsPrograms: the program calls bpf_sys_bpf, i.e. it is an
	// in-kernel loader (a light skeleton's loader program) whose payload
	// never passes through the bpf() system call.
	LoadsPrograms *bool
	// Cbpf makes the rule about classic BPF socket filters (cbpf_attach)
	// instead of programs: see CbpfMatch.
	Cbpf    *CbpfMatch
	Strings *StringPatterns // contains (Exact is unused) / regex over the extracted strings
	Loader  *LoaderMatch
	Prov    *ProvenanceMatch // signed, keyring, verified, via_token, token (rules/provenance.go)

	Not *Match  // must not hold
	Any []Match // at least one must hold
}

// Range is an inclusive instruction-count range.
type Range struct{ Min, Max uint32 }

// StringPatterns is a set of patterns of which any may match.
type StringPatterns struct {
	Exact    []string
	Prefix   []string
	Glob     []Glob
	Contains []string
	Regex    []*regexp.Regexp
}

// LoaderMatch is about the process that loads the program. Each present
// field must hold; a list means any of.
type LoaderMatch struct {
	// Comm is an exact task comm (at most 15 bytes). The process chooses
	// it (prctl PR_SET_NAME), so it is refused under a not: it can make
	// a load suspicious, never spare one.
	Comm   []string
	Exe    []Glob // over the executable path
	UID    []uint32
	Cgroup []uint64
	// ExeIdentity is the executable as the kernel knows it (inode and
	// device, evaluated in the kernel) and, when given, the file's
	// sha256 (checked in user space). The way to allowlist a loader.
	ExeIdentity []ExeIdentity
}

// ExeIdentity names one executable file by what its loader cannot choose.
type ExeIdentity struct {
	Inode uint64
	// Dev is the kernel's dev_t of the file system: MAJOR << 20 | MINOR
	// (written "MAJOR:MINOR" in rule files, as `stat -c %Hd:%Ld` prints).
	Dev    uint32
	SHA256 string // lowercase hex; "" when not checked
}

// KernelDev encodes major:minor as the kernel's dev_t (MKDEV).
func KernelDev(major, minor uint32) uint32 { return major<<20 | minor }

func (e ExeIdentity) String() string {
	s := fmt.Sprintf("inode %d dev %d:%d", e.Inode, e.Dev>>20, e.Dev&(1<<20-1))
	if e.SHA256 != "" {
		s += " sha256 " + e.SHA256
	}
	return s
}

// Allow is an allowlist entry: exactly one field is set.
type Allow struct {
	SHA256   string // analysis fingerprint, lowercase hex
	Tag      string // kernel tag, 16 lowercase hex digits
	InsnHash uint64 // kernel instruction hash (rules/kernel.Hash)
	HasHash  bool
}

// SysBPFHelper is the id of bpf_sys_bpf, the helper through which a
// BPF_PROG_TYPE_SYSCALL program loads programs (Match.LoadsPrograms).
const SysBPFHelper = 166
