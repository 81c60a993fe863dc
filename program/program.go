package program

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// Source says where a Program came from.
type Source string

const (
	SourceELF    Source = "elf"    // an object file, offline
	SourceRaw    Source = "raw"    // a raw instruction dump, offline
	SourceSensor Source = "sensor" // captured by the sensor at BPF_PROG_LOAD
	SourceKernel Source = "kernel" // already loaded, fetched by prog id
	// SourceLightSkeleton: decoded from a light skeleton's data blob
	// (bpftool gen skeleton -L) embedded in a file, offline.
	SourceLightSkeleton Source = "light-skeleton"
)

// Program is an eBPF program's metadata and its instructions exactly as
// submitted (or as found in the object / dump). Every stage after capture
// (analysis, rules, output) works on this value and needs no kernel.
type Program struct {
	Source Source `json:"source"`
	Origin string `json:"origin,omitempty"` // file path, "stdin", or "" for sensor captures

	Name    string `json:"name"`              // kernel prog name (≤ 15 chars) or ELF symbol name
	Section string `json:"section,omitempty"` // ELF section

	Type               uint32 `json:"type"`                 // enum bpf_prog_type
	ExpectedAttachType uint32 `json:"expected_attach_type"` // enum bpf_attach_type
	AttachBTFID        uint32 `json:"attach_btf_id,omitempty"`
	AttachTo           string `json:"attach_to,omitempty"` // attach target function/tracepoint name when known
	// AttachPoint is where the program is being attached, when judged at
	// attach time (package target names it); nil for a load.
	AttachPoint *AttachPoint `json:"attach_point,omitempty"`
	Flags       uint32       `json:"flags,omitempty"` // prog_flags
	License     string       `json:"license,omitempty"`

	// BigEndian is set for programs built for big-endian targets (bpfeb):
	// their Insns are still encoded little-endian, but the values they store
	// and compare are laid out big-endian in memory.
	BigEndian bool `json:"big_endian,omitempty"`

	// Insns is the raw instruction stream, 8 bytes per slot, little-endian.
	Insns []byte `json:"-"`
	// InsnCnt is the slot count the loader declared (may exceed len(Insns)/8
	// when a capture was truncated; see Truncated).
	InsnCnt   uint32 `json:"insn_cnt"`
	Truncated bool   `json:"truncated,omitempty"`

	// Refs resolves instructions that refer to something outside the
	// instruction stream (ELF relocations, map fds), keyed by slot index.
	Refs map[int]Ref `json:"-"`
	// Maps lists the maps the program references, when known.
	Maps []Map `json:"maps,omitempty"`
	// Data holds the contents of global-data sections (.rodata, .data, .bss,
	// .rodata.str1.1 …) keyed by section name, for string extraction.
	Data map[string][]byte `json:"-"`

	// StructOps places a struct_ops program in its ops struct (ELF objects).
	StructOps *StructOps `json:"struct_ops,omitempty"`
	// Unresolved lists what the program refers to that the object does not
	// resolve offline (read without cilium/ebpf's loader); it was analysed
	// anyway.
	Unresolved []Unresolved `json:"unresolved,omitempty"`
	// ObjectLoaderError is why cilium/ebpf's loader refused the object, when
	// it was read directly instead.
	ObjectLoaderError string `json:"object_loader_error,omitempty"`

	Loader *Loader `json:"loader,omitempty"` // who loaded it (sensor, kernel scan)
	Kernel *Kernel `json:"kernel,omitempty"` // kernel-side identity once loaded
	// Provenance: signature and token of the load (sensor captures).
	Provenance *Provenance `json:"provenance,omitempty"`
}

// RefKind classifies a Ref.
type RefKind string

const (
	RefMap     RefKind = "map"     // ld_imm64 of a map (fd or ELF map symbol)
	RefData    RefKind = "data"    // ld_imm64 of an address inside a global-data section
	RefFunc    RefKind = "func"    // call or ld_imm64 of a sub-program
	RefKfunc   RefKind = "kfunc"   // call of a kernel function by BTF id / name
	RefKsym    RefKind = "ksym"    // ld_imm64 of a kernel variable (BPF_PSEUDO_BTF_ID, __ksym)
	RefKconfig RefKind = "kconfig" // ld_imm64 of a kconfig extern the loader fills in (LINUX_KERNEL_VERSION)
	RefExtern  RefKind = "extern"  // call or ld_imm64 of an extern the loader must link in
	RefUnknown RefKind = "unknown" // relocation we could not classify
)

// Ref is what one instruction refers to.
type Ref struct {
	Kind    RefKind `json:"kind"`
	Name    string  `json:"name,omitempty"`    // map, section, function or kfunc name
	Section string  `json:"section,omitempty"` // for RefData: section holding the value
	Offset  int64   `json:"offset,omitempty"`  // for RefData: byte offset in Section
}

// Map describes a map the program uses.
type Map struct {
	Name       string `json:"name,omitempty"`
	Type       uint32 `json:"type"` // enum bpf_map_type
	KeySize    uint32 `json:"key_size,omitempty"`
	ValueSize  uint32 `json:"value_size,omitempty"`
	MaxEntries uint32 `json:"max_entries,omitempty"`
	FD         int32  `json:"fd,omitempty"` // raw captures: the fd as it appeared in ld_imm64
	ID         uint32 `json:"id,omitempty"` // kernel map id when known
	// TailCalls is a prog_array's contents: the slots the object
	// initialises (ELF), or that hold a program now (a loaded map).
	TailCalls []TailCall `json:"tail_calls,omitempty"`
}

// TailCall is one occupied slot of a prog_array: an edge of the tail-call
// graph.
type TailCall struct {
	Key    uint32 `json:"key"`
	Prog   string `json:"prog,omitempty"`    // the program's name in the object (ELF)
	ProgID uint32 `json:"prog_id,omitempty"` // the kernel's program id (a loaded map)
}

// String is "[1] → tg_stage2" (from an object) or "[5] → prog 42" (from the
// kernel). The name comes from the object: escape it before showing it.
func (t TailCall) String() string {
	if t.Prog != "" {
		return fmt.Sprintf("[%d] → %s", t.Key, t.Prog)
	}
	return fmt.Sprintf("[%d] → prog %d", t.Key, t.ProgID)
}

// Loader is the process that issued BPF_PROG_LOAD.
type Loader struct {
	PID      uint32 `json:"pid"`
	TID      uint32 `json:"tid"`
	PPID     uint32 `json:"ppid"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	Comm     string `json:"comm"`
	Exe      string `json:"exe,omitempty"`
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	// The executable's identity: inode and kernel dev_t (MAJOR << 20 |
	// MINOR) as the kernel saw them at load time, and the file's sha256
	// when user space could hash the same file (same inode and device).
	ExeInode  uint64 `json:"exe_inode,omitempty"`
	ExeDev    uint32 `json:"exe_dev,omitempty"`
	ExeSHA256 string `json:"exe_sha256,omitempty"`
	// Unknown names the fields whose values are not known (their zero
	// values are placeholders, never facts): the sensor lost the record
	// that carries them. Rules treat an unknown field as matching nothing.
	Unknown []string `json:"unknown,omitempty"`
}

// HeaderFields are the loader fields only a load's header record carries:
// all of them but the pid are unknown when it was lost.
var HeaderFields = []string{"tid", "ppid", "uid", "gid", "comm", "exe", "cgroup_id"}

// Knows reports whether field (a json name) is known.
func (l *Loader) Knows(field string) bool {
	for _, f := range l.Unknown {
		if f == field {
			return false
		}
	}
	return true
}

// Kernel is the identity the kernel gave a loaded program.
type Kernel struct {
	ID  uint32 `json:"id"`
	Tag string `json:"tag"` // 16 hex digits, as bpftool prints it
}

// Decode decodes the program's instructions (see insn.Decode).
func (p *Program) Decode() ([]insn.Instruction, []insn.Problem) {
	return insn.Decode(p.Insns)
}

// AttachPoint is the parts of an attach target that rules match besides
// AttachTo: a uprobe's binary and symbol (or a kprobe's function), the
// network interface, the cgroup path.
type AttachPoint struct {
	Kind      string `json:"kind"`
	Binary    string `json:"binary,omitempty"`
	Symbol    string `json:"symbol,omitempty"`
	Interface string `json:"interface,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"`
}
