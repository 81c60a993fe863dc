package inventory

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Why a program could not be read. Each is reported, never skipped.
const (
	UnreadableGone   = "unloaded during the scan"
	UnreadablePerm   = "permission denied (EPERM): reading programs needs CAP_SYS_ADMIN"
	UnreadableNoCode = "the kernel withheld the instructions (kptr_restrict with bpf_jit_harden, or not bpf-capable)"
)

// Program is one loaded program as the scan found it. Prog is nil when the
// program could not be read; Unreadable then says why.
type Program struct {
	ID         uint32           `json:"id"`
	Prog       *program.Program `json:"-"`
	Unreadable string           `json:"unreadable,omitempty"`

	Name          string    `json:"name"`
	Type          uint32    `json:"type"`
	Tag           string    `json:"tag"`
	GPL           bool      `json:"gpl_compatible"`
	LoadTime      time.Time `json:"loaded_at,omitzero"`
	CreatedByUID  uint32    `json:"uid"`
	BTFID         uint32    `json:"btf_id,omitempty"`
	MapIDs        []uint32  `json:"map_ids,omitempty"`
	XlatedLen     uint32    `json:"bytes_xlated"`
	JitedLen      uint32    `json:"bytes_jited"`
	VerifiedInsns uint32    `json:"verified_insns,omitempty"`
	// AttachBTFObjID and AttachBTFID name the function a tracing, lsm or
	// ext program was verified against; AttachTo is its name when known.
	AttachBTFObjID uint32 `json:"attach_btf_obj_id,omitempty"`
	AttachBTFID    uint32 `json:"attach_btf_id,omitempty"`
	AttachTo       string `json:"attach_to,omitempty"`

	Links   []uint32 `json:"link_ids,omitempty"`
	Holders []Holder `json:"holders,omitempty"`
	Pins    []string `json:"pinned,omitempty"`
}

// Map is one loaded map.
type Map struct {
	ID         uint32   `json:"id"`
	Name       string   `json:"name"`
	Type       uint32   `json:"type"`
	KeySize    uint32   `json:"key_size"`
	ValueSize  uint32   `json:"value_size"`
	MaxEntries uint32   `json:"max_entries"`
	Unreadable string   `json:"unreadable,omitempty"`
	Holders    []Holder `json:"holders,omitempty"`
	Pins       []string `json:"pinned,omitempty"`
	// TailCalls: a prog_array's occupied slots and the programs in them
	// (the first MaxTailCallSlots slots are read).
	TailCalls []program.TailCall `json:"tail_calls,omitempty"`
}

// MaxTailCallSlots bounds the slots of one prog_array that are read.
const MaxTailCallSlots = 4096

// Link is one BPF link and what it attaches its program to.
type Link struct {
	ID         uint32   `json:"id"`
	Type       string   `json:"type"` // bpftool's name: "tracing", "cgroup", "perf_event" …
	ProgID     uint32   `json:"prog_id"`
	AttachType uint32   `json:"attach_type,omitempty"`
	Target     string   `json:"target,omitempty"` // "tracepoint syscalls/sys_enter_bpf", "cgroup 1234" …
	Unreadable string   `json:"unreadable,omitempty"`
	Holders    []Holder `json:"holders,omitempty"`
	Pins       []string `json:"pinned,omitempty"`
}

// Holder is a process holding an fd to an object. Exe identity (device and
// inode) is what the kernel vouches for; comm and the exe path are hints.
type Holder struct {
	PID    uint32 `json:"pid"`
	FD     int    `json:"fd"`
	Comm   string `json:"comm,omitempty"`
	Exe    string `json:"exe,omitempty"`
	ExeDev uint64 `json:"exe_dev,omitempty"`
	ExeIno uint64 `json:"exe_ino,omitempty"`
}

// Inventory is the result of one scan, each list ordered by id. Problems
// names every part of the picture that could not be read at all (e.g. an
// unreadable /proc leaves holders unknown).
type Inventory struct {
	Programs []Program `json:"programs"`
	Maps     []Map     `json:"maps"`
	Links    []Link    `json:"links"`
	Problems []string  `json:"problems,omitempty"`
}

// Options tune Scan. The zero value scans the running host.
type Options struct {
	// Root is the file-system root under which /proc and the mount table
	// are read ("" or "/" for the host); tests point it at a fake tree.
	Root string
	// NoOwners skips the walk of /proc and bpffs (holders and pins).
	NoOwners bool
	// Programs, when not nil, makes the scan read exactly these program
	// ids instead of those GET_NEXT_ID lists (a hidden program is not
	// listed but may be readable by id); maps and links are all listed.
	Programs map[uint32]bool
	// kernel replaces the bpf(2) calls in tests.
	kernel kernel
	// afterIDs runs between enumerating the ids and reading the objects.
	afterIDs func(progIDs []uint32)
}

// kernel is the bpf(2) surface the scan uses.
type kernel interface {
	nextID(cmd uintptr, start uint32) (uint32, error)
	prog(id uint32) (*progRecord, error)
	mapByID(id uint32) (Map, error)
	link(id uint32) (Link, error)
	pinned(path string) (kind string, id uint32, err error)
}

// progRecord is what one program's fd yields.
type progRecord struct {
	info  progInfo
	maps  []uint32
	insns []byte
	ksyms []uint64 // jited_ksyms: the address of each JITed function
	// funcTypeID is the BTF type of the main function, read when the name
	// was cut at 15 bytes.
	funcTypeID uint32
	noCode     bool
}

// ErrNoAccess is returned when the kernel refuses to enumerate at all.
var ErrNoAccess = errors.New("the kernel refuses to list BPF objects (needs CAP_SYS_ADMIN)")

// Scan lists every program, map and link loaded in the kernel now.
func Scan(opts *Options) (*Inventory, error) {
	if opts == nil {
		opts = &Options{}
	}
	k := opts.kernel
	if k == nil {
		k = sysKernel{}
	}
	progIDs, err := allIDs(k, cmdProgGetNextID)
	if err != nil {
		return nil, fmt.Errorf("enumerate programs: %w", err)
	}
	mapIDs, err := allIDs(k, cmdMapGetNextID)
	if err != nil {
		return nil, fmt.Errorf("enumerate maps: %w", err)
	}
	linkIDs, err := allIDs(k, cmdLinkGetNextID)
	if err != nil && !errors.Is(err, unix.EINVAL) { // links: 5.8 and later
		return nil, fmt.Errorf("enumerate links: %w", err)
	}
	if opts.Programs != nil {
		progIDs = progIDs[:0]
		for id := range opts.Programs {
			progIDs = append(progIDs, id)
		}
		slices.Sort(progIDs)
	}
	if opts.afterIDs != nil {
		opts.afterIDs(progIDs)
	}

	inv := &Inventory{}
	mapNames := make(map[uint32]Map, len(mapIDs))
	for _, id := range mapIDs {
		m, err := k.mapByID(id)
		if err != nil {
			m = Map{ID: id, Unreadable: unreadable(err)}
		}
		mapNames[id] = m
		inv.Maps = append(inv.Maps, m)
	}
	linksOf := map[uint32][]uint32{}
	targetOf := map[uint32]Link{}
	for _, id := range linkIDs {
		l, err := k.link(id)
		if err != nil {
			l = Link{ID: id, Unreadable: unreadable(err)}
		} else {
			linksOf[l.ProgID] = append(linksOf[l.ProgID], id)
			if _, ok := targetOf[l.ProgID]; !ok {
				targetOf[l.ProgID] = l
			}
		}
		inv.Links = append(inv.Links, l)
	}
	bootOffset := bootTimeOffset()
	btfSpecs := map[uint32]*btf.Spec{}
	for _, id := range progIDs {
		p := Program{ID: id, Links: linksOf[id]}
		rec, err := k.prog(id)
		if err != nil {
			p.Unreadable = unreadable(err)
			inv.Programs = append(inv.Programs, p)
			continue
		}
		fill(&p, rec, mapNames, bootOffset)
		if rec.funcTypeID != 0 {
			if full := btfFuncName(btfSpecs, rec.info.BTFID, rec.funcTypeID); strings.HasPrefix(full, p.Name) {
				p.Name, p.Prog.Name = full, full
			}
		}
		if l, ok := targetOf[id]; ok {
			p.Prog.AttachTo = l.Target
			if p.Prog.ExpectedAttachType == 0 {
				p.Prog.ExpectedAttachType = l.AttachType
			}
		}
		inv.Programs = append(inv.Programs, p)
	}
	if !opts.NoOwners {
		attachOwners(inv, opts.Root, k)
	}
	return inv, nil
}

// ProgramIDs lists the ids of every loaded program (BPF_PROG_GET_NEXT_ID),
// without reading the programs: the cheap half of a scan.
func ProgramIDs() ([]uint32, error) {
	ids, err := allIDs(sysKernel{}, cmdProgGetNextID)
	if err != nil {
		return nil, fmt.Errorf("enumerate programs: %w", err)
	}
	return ids, nil
}

// allIDs walks a GET_NEXT_ID command to its end.
func allIDs(k kernel, cmd uintptr) ([]uint32, error) {
	var ids []uint32
	var id uint32
	for {
		next, err := k.nextID(cmd, id)
		switch {
		case errors.Is(err, unix.ENOENT):
			return ids, nil
		case errors.Is(err, unix.EPERM):
			return ids, fmt.Errorf("%w: %v", ErrNoAccess, err)
		case err != nil:
			return ids, err
		case next <= id:
			return ids, fmt.Errorf("the kernel returned id %d after %d", next, id)
		}
		ids = append(ids, next)
		id = next
	}
}

// unreadable says why an object enumerated a moment ago could not be read.
func unreadable(err error) string {
	switch {
	case errors.Is(err, unix.ENOENT):
		return UnreadableGone
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return UnreadablePerm
	}
	return "unreadable: " + err.Error()
}

func fill(p *Program, rec *progRecord, maps map[uint32]Map, bootOffset time.Duration) {
	in := &rec.info
	p.Name = cstring(in.Name[:])
	p.Type = in.Type
	p.Tag = hex.EncodeToString(in.Tag[:])
	p.GPL = in.GPLCompatible&1 != 0
	p.CreatedByUID = in.CreatedByUID
	p.BTFID = in.BTFID
	p.MapIDs = rec.maps
	p.XlatedLen = in.XlatedProgLen
	p.JitedLen = in.JitedProgLen
	p.VerifiedInsns = in.VerifiedInsns
	p.AttachBTFObjID = in.AttachBTFObjID
	p.AttachBTFID = in.AttachBTFID
	if in.LoadTime != 0 && bootOffset != 0 {
		p.LoadTime = time.Unix(0, 0).Add(bootOffset + time.Duration(in.LoadTime))
	}
	pr := &program.Program{
		Source:  program.SourceKernel,
		Origin:  fmt.Sprintf("prog id %d", in.ID),
		Name:    p.Name,
		Type:    in.Type,
		Insns:   rec.insns,
		InsnCnt: in.XlatedProgLen / insn.Size,
		Kernel:  &program.Kernel{ID: in.ID, Tag: p.Tag},
		Refs:    map[int]program.Ref{},
	}
	if rec.noCode {
		p.Unreadable = UnreadableNoCode
	}
	for _, id := range rec.maps {
		m := maps[id]
		pr.Maps = append(pr.Maps, program.Map{Name: m.Name, Type: m.Type, KeySize: m.KeySize,
			ValueSize: m.ValueSize, MaxEntries: m.MaxEntries, ID: id, TailCalls: m.TailCalls})
	}
	// The translated form carries map ids in its ld_imm64 (src 1: the map,
	// 2: a value inside it): name them for the analysis.
	ins, _ := insn.Decode(rec.insns)
	for _, i := range ins {
		if i.Code != insn.OpLdImm64 || (i.Src != insn.PseudoMapFD && i.Src != insn.PseudoMapValue) {
			continue
		}
		m, ok := maps[uint32(i.Imm)]
		if !ok {
			continue
		}
		kind := program.RefMap
		if i.Src == insn.PseudoMapValue {
			kind = program.RefData
		}
		pr.Refs[i.Index] = program.Ref{Kind: kind, Name: m.Name, Section: m.Name}
	}
	p.Prog = pr
}

// bootTimeOffset is wall-clock time at boot: load_time counts from boot.
func bootTimeOffset() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(time.Now().UnixNano()) - time.Duration(ts.Nano())
}

func sortHolders(h []Holder) {
	sort.Slice(h, func(i, j int) bool {
		if h[i].PID != h[j].PID {
			return h[i].PID < h[j].PID
		}
		return h[i].FD < h[j].FD
	})
}

// btfFuncName names a BTF function type of a program's BTF object, as
// bpftool does for names the kernel cut at 15 bytes; "" when unknown.
func btfFuncName(cache map[uint32]*btf.Spec, btfID, typeID uint32) string {
	spec, ok := cache[btfID]
	if !ok {
		if h, err := btf.NewHandleFromID(btf.ID(btfID)); err == nil {
			spec, _ = h.Spec(nil)
			h.Close()
		}
		cache[btfID] = spec
	}
	if spec == nil {
		return ""
	}
	t, err := spec.TypeByID(btf.TypeID(typeID))
	if err != nil {
		return ""
	}
	return t.TypeName()
}
