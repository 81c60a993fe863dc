package inventory

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// sysKernel reads the running kernel through bpf(2).
type sysKernel struct{}

func (sysKernel) nextID(cmd uintptr, start uint32) (uint32, error) { return nextID(cmd, start) }

func (sysKernel) prog(id uint32) (*progRecord, error) {
	fd, err := fdByID(cmdProgGetFDByID, id)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	rec := &progRecord{}
	if err := objInfo(fd, unsafe.Pointer(&rec.info), uint32(unsafe.Sizeof(rec.info))); err != nil {
		return nil, err
	}
	// Second call for the variable parts, on a clean struct: the kernel
	// refuses lengths it did not announce.
	var info2 progInfo
	if n := rec.info.NrMapIDs; n > 0 {
		rec.maps = make([]uint32, n)
		info2.NrMapIDs = n
		info2.MapIDs = uint64(uintptr(unsafe.Pointer(&rec.maps[0])))
	}
	if n := rec.info.XlatedProgLen; n > 0 {
		rec.insns = make([]byte, n)
		info2.XlatedProgLen = n
		info2.XlatedProgInsns = uint64(uintptr(unsafe.Pointer(&rec.insns[0])))
	}
	if n := rec.info.NrJitedKsyms; n > 0 {
		rec.ksyms = make([]uint64, n)
		info2.NrJitedKsyms = n
		info2.JitedKsyms = uint64(uintptr(unsafe.Pointer(&rec.ksyms[0])))
	}
	// A name cut at 15 bytes: bpftool shows the main function's BTF name
	// instead, so read the first func_info record for it.
	var funcInfo []byte
	if len(cstring(rec.info.Name[:])) == len(rec.info.Name)-1 && rec.info.BTFID != 0 && rec.info.NrFuncInfo > 0 && rec.info.FuncInfoRecSize >= 8 {
		funcInfo = make([]byte, rec.info.NrFuncInfo*rec.info.FuncInfoRecSize)
		info2.NrFuncInfo, info2.FuncInfoRecSize = rec.info.NrFuncInfo, rec.info.FuncInfoRecSize
		info2.FuncInfo = uint64(uintptr(unsafe.Pointer(&funcInfo[0])))
	}
	if info2.NrMapIDs > 0 || info2.XlatedProgLen > 0 || info2.NrJitedKsyms > 0 || funcInfo != nil {
		err := objInfo(fd, unsafe.Pointer(&info2), uint32(unsafe.Sizeof(info2)))
		runtime.KeepAlive(rec.maps)
		runtime.KeepAlive(rec.insns)
		runtime.KeepAlive(rec.ksyms)
		runtime.KeepAlive(funcInfo)
		if err != nil {
			return nil, err
		}
		if info2.XlatedProgLen > 0 && info2.XlatedProgInsns == 0 {
			rec.insns, rec.noCode = nil, true // the kernel zeroes the pointer when it withholds the code
		}
		if funcInfo != nil && info2.FuncInfo != 0 {
			rec.funcTypeID = binary.NativeEndian.Uint32(funcInfo[4:]) // bpf_func_info: insn_off, type_id
		}
		if info2.JitedKsyms == 0 { // kptr_restrict: no addresses
			rec.ksyms = nil
		}
		if info2.NrMapIDs < uint32(len(rec.maps)) {
			rec.maps = rec.maps[:info2.NrMapIDs]
		}
	} else if rec.info.XlatedProgLen == 0 {
		rec.noCode = true
	}
	return rec, nil
}

func (sysKernel) mapByID(id uint32) (Map, error) {
	fd, err := fdByID(cmdMapGetFDByID, id)
	if err != nil {
		return Map{}, err
	}
	defer unix.Close(fd)
	var in mapInfo
	if err := objInfo(fd, unsafe.Pointer(&in), uint32(unsafe.Sizeof(in))); err != nil {
		return Map{}, err
	}
	m := Map{ID: in.ID, Name: cstring(in.Name[:]), Type: in.Type, KeySize: in.KeySize,
		ValueSize: in.ValueSize, MaxEntries: in.MaxEntries}
	if m.Type == mapTypeProgArray && m.KeySize == 4 && m.ValueSize == 4 {
		m.TailCalls = progArraySlots(fd, min(m.MaxEntries, MaxTailCallSlots))
	}
	return m, nil
}

const (
	mapTypeProgArray = 3
	cmdMapLookupElem = 1
	attrMapElemSize  = 32
)

// progArraySlots reads slots [0, n) of the prog_array behind fd: a lookup
// from user space gives the id of the program in a slot, ENOENT when empty.
func progArraySlots(fd int, n uint32) []program.TailCall {
	var out []program.TailCall
	for key := uint32(0); key < n; key++ {
		var id uint32
		attr := struct {
			FD    uint32
			_     uint32
			Key   uint64
			Value uint64
			Flags uint64
		}{FD: uint32(fd), Key: uint64(uintptr(unsafe.Pointer(&key))), Value: uint64(uintptr(unsafe.Pointer(&id)))}
		if _, err := bpf(cmdMapLookupElem, unsafe.Pointer(&attr), attrMapElemSize); err == nil {
			out = append(out, program.TailCall{Key: key, ProgID: id})
		}
		runtime.KeepAlive(&key)
		runtime.KeepAlive(&id)
	}
	return out
}

func (sysKernel) link(id uint32) (Link, error) {
	fd, err := fdByID(cmdLinkGetFDByID, id)
	if err != nil {
		return Link{}, err
	}
	defer unix.Close(fd)
	var in linkInfo
	if err := objInfo(fd, unsafe.Pointer(&in), uint32(unsafe.Sizeof(in))); err != nil {
		return Link{}, err
	}
	// Names behind pointers (tracepoint, kprobe function, iterator
	// target): ask again with a buffer at the right place in the union.
	var name [256]byte
	if off, ok := nameField[in.Type]; ok {
		var in2 linkInfo
		if in.Type == linkPerfEvent {
			copy(in2.U[:8], in.U[:8]) // perf_event.type picks the union member
			pt := binary.NativeEndian.Uint32(in.U[0:])
			if o, ok := perfNameField[pt]; ok {
				off = o
			} else {
				off = -1
			}
		}
		if off >= 0 {
			binary.NativeEndian.PutUint64(in2.U[off:], uint64(uintptr(unsafe.Pointer(&name[0]))))
			binary.NativeEndian.PutUint32(in2.U[off+8:], uint32(len(name)))
			if err := objInfo(fd, unsafe.Pointer(&in2), uint32(unsafe.Sizeof(in2))); err == nil {
				in.U = in2.U
			}
			runtime.KeepAlive(&name)
		}
	}
	return decodeLink(&in, cstring(name[:])), nil
}

func (sysKernel) pinned(path string) (string, uint32, error) {
	fd, err := objGet(path)
	if err != nil {
		return "", 0, err
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return "", 0, err
	}
	f := parseFDInfo(b)
	switch {
	case f.link != 0:
		return "link", f.link, nil
	case f.prog != 0:
		return "prog", f.prog, nil
	case f.mapID != 0:
		return "map", f.mapID, nil
	}
	return "", 0, fmt.Errorf("%s: fdinfo names no prog, map or link id", path)
}

// enum bpf_link_type.
const (
	linkRawTracepoint = 1
	linkTracing       = 2
	linkCgroup        = 3
	linkIter          = 4
	linkNetns         = 5
	linkXDP           = 6
	linkPerfEvent     = 7
	linkKprobeMulti   = 8
	linkStructOps     = 9
	linkNetfilter     = 10
	linkTCX           = 11
	linkUprobeMulti   = 12
	linkNetkit        = 13
	linkSockmap       = 14
)

// LinkTypes names enum bpf_link_type as bpftool does.
var LinkTypes = []string{"unspec", "raw_tracepoint", "tracing", "cgroup", "iter", "netns", "xdp",
	"perf_event", "kprobe_multi", "struct_ops", "netfilter", "tcx", "uprobe_multi", "netkit", "sockmap"}

// nameField is where in the link-info union a name pointer sits (followed
// by its u32 length); -1 for perf_event, where it depends on the event type.
var nameField = map[uint32]int{linkRawTracepoint: 0, linkIter: 0, linkPerfEvent: -1}

// perfNameField: enum bpf_perf_event_type → offset of the name pointer in
// the union (after perf_event's u32 type and u32 padding).
var perfNameField = map[uint32]int{
	1: 8, // uprobe: file_name
	2: 8, // uretprobe
	3: 8, // kprobe: func_name
	4: 8, // kretprobe
	5: 8, // tracepoint: tp_name
}

var perfEventKinds = map[uint32]string{1: "uprobe", 2: "uretprobe", 3: "kprobe", 4: "kretprobe", 5: "tracepoint", 6: "perf event"}

func decodeLink(in *linkInfo, name string) Link {
	l := Link{ID: in.ID, ProgID: in.ProgID, Type: fmt.Sprintf("link type %d", in.Type)}
	if int(in.Type) < len(LinkTypes) {
		l.Type = LinkTypes[in.Type]
	}
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(in.U[off:]) }
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(in.U[off:]) }
	attach := func(t uint32) string {
		n, _ := program.AttachTypes.Name(t)
		return n
	}
	switch in.Type {
	case linkRawTracepoint:
		l.Target = "raw_tracepoint " + name
	case linkTracing:
		l.AttachType = u32(0)
		l.Target = fmt.Sprintf("%s btf_obj_id %d btf_id %d", attach(l.AttachType), u32(4), u32(8))
	case linkCgroup:
		l.AttachType = u32(8)
		l.Target = fmt.Sprintf("cgroup id %d %s", u64(0), attach(l.AttachType))
	case linkIter:
		l.Target = "iter " + name
	case linkNetns:
		l.AttachType = u32(4)
		l.Target = fmt.Sprintf("netns ino %d %s", u32(0), attach(l.AttachType))
	case linkXDP:
		l.Target = fmt.Sprintf("xdp ifindex %d", u32(0))
	case linkPerfEvent:
		kind, ok := perfEventKinds[u32(0)]
		if !ok {
			kind = fmt.Sprintf("perf event type %d", u32(0))
		}
		l.Target = kind
		if name != "" {
			l.Target += " " + name
		}
	case linkStructOps:
		l.Target = fmt.Sprintf("struct_ops map id %d", u32(0))
	case linkNetfilter:
		l.Target = fmt.Sprintf("netfilter pf %d hook %d prio %d", u32(0), u32(4), int32(u32(8)))
	case linkTCX, linkNetkit, linkSockmap:
		l.AttachType = u32(4)
		what := "ifindex"
		if in.Type == linkSockmap {
			what = "map id"
		}
		l.Target = fmt.Sprintf("%s %s %d %s", l.Type, what, u32(0), attach(l.AttachType))
	case linkKprobeMulti:
		l.Target = fmt.Sprintf("kprobe_multi %d functions", u32(8))
	case linkUprobeMulti:
		l.Target = fmt.Sprintf("uprobe_multi %d offsets", u32(36))
	}
	return l
}
