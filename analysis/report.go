package analysis

import "github.com/ebpf-sentry/ebpf-sentry/program"

// Report is the result of analysing one program. Rules and outputs consume it.
type Report struct {
	InsnCount int         `json:"insn_count"`          // instruction slots
	ProgType  string      `json:"prog_type,omitempty"` // bpftool's name of Program.Type ("tracepoint", "kprobe" …)
	SHA256    string      `json:"sha256"`              // fingerprint, map fds / relocations normalised
	License   string      `json:"license,omitempty"`
	GPL       bool        `json:"gpl_compatible"`
	Helpers   []HelperUse `json:"helpers"` // sorted by id
	Kfuncs    []KfuncUse  `json:"kfuncs,omitempty"`
	Subprogs  []int       `json:"subprogs,omitempty"`   // slot indexes where bpf-to-bpf callees start
	TailCalls []int       `json:"tail_calls,omitempty"` // slot indexes of bpf_tail_call calls
	// TailCallSites details TailCalls with the prog-array map when visible.
	TailCallSites []TailCall `json:"tail_call_sites,omitempty"`
	// SubprogCalls lists every bpf-to-bpf call with its target slot.
	SubprogCalls []SubprogCall `json:"subprog_calls,omitempty"`
	Maps         []MapUse      `json:"maps,omitempty"`
	// Externs lists what the loader fills in or links: kconfig values,
	// kernel symbols (__ksym), extern functions; in order of first use.
	Externs  []ExternUse `json:"externs,omitempty"`
	Strings  []String    `json:"strings,omitempty"`
	Problems []string    `json:"problems,omitempty"` // decode problems, "insn N (byte M): msg"
	// ProblemsDropped counts the decode problems beyond MaxProblems that
	// Problems does not list.
	ProblemsDropped int `json:"problems_dropped,omitempty"`
}

// HelperUse is one helper and where it is called.
type HelperUse struct {
	ID    int32  `json:"id"`
	Name  string `json:"name"`
	Count int    `json:"count"`
	At    []int  `json:"at"` // slot indexes of the calls
}

// KfuncUse is one kernel function called through BPF_PSEUDO_KFUNC_CALL.
type KfuncUse struct {
	BTFID int32  `json:"btf_id"`
	Name  string `json:"name,omitempty"` // resolved through kernel BTF or ELF relocation
	Count int    `json:"count"`
	At    []int  `json:"at"`
}

// MapUse is one map the program references: by name and type when the
// program came from an ELF object, by the fd (or fd_array index) in its
// ld_imm64 otherwise.
type MapUse struct {
	Name    string `json:"name,omitempty"`
	Type    string `json:"type,omitempty"` // bpftool's name: "hash", "ringbuf", "prog_array" …
	FD      int32  `json:"fd,omitempty"`
	Index   int32  `json:"index,omitempty"`    // BPF_PSEUDO_MAP_IDX*: index into fd_array
	ByIndex bool   `json:"by_index,omitempty"` // Index is meaningful
	At      []int  `json:"at"`                 // slot indexes of the ld_imm64s
	// TailCalls: a prog_array's slots that hold a program (the tail-call
	// graph's edges from this program), where the object or the kernel
	// says.
	TailCalls []program.TailCall `json:"tail_calls,omitempty"`
}

// TailCall is one bpf_tail_call site.
type TailCall struct {
	At    int    `json:"at"`               // slot index of the call
	Known bool   `json:"known"`            // the prog-array map was found
	Map   string `json:"map,omitempty"`    // its name (ELF)
	MapFD int32  `json:"map_fd,omitempty"` // its fd (raw captures)
	MapAt int    `json:"map_at,omitempty"` // slot of the ld_imm64 that loads it
}

// SubprogCall is one bpf-to-bpf call.
type SubprogCall struct {
	At     int    `json:"at"`             // slot index of the call
	Target int    `json:"target"`         // slot index where the callee starts
	Name   string `json:"name,omitempty"` // callee symbol (ELF)
}

// StringKind says how a string was found.
type StringKind string

const (
	StringStack   StringKind = "stack"   // built on the stack from immediates
	StringCompare StringKind = "compare" // byte-compare chain
	StringData    StringKind = "data"    // referenced global data (.rodata/.data/.bss)
	StringFormat  StringKind = "format"  // bpf_trace_printk / bpf_snprintf format
)

// String is a string found in the program. Text is escaped: printable ASCII
// as is, everything else as \xNN, so it is always valid, harmless UTF-8.
type String struct {
	Insn int        `json:"insn"` // slot index where it begins
	Text string     `json:"text"`
	Kind StringKind `json:"kind"`
}

// ExternUse is one extern the program refers to (ELF objects only).
type ExternUse struct {
	Kind string `json:"kind"` // kconfig, ksym or extern (a function or variable the loader links in)
	Name string `json:"name"`
	At   []int  `json:"at"` // slots of the instructions that refer to it
}
