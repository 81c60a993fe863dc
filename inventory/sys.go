package inventory

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpf(2) commands used here (linux/bpf.h enum bpf_cmd).
const (
	cmdObjGet          = 7
	cmdProgGetNextID   = 11
	cmdMapGetNextID    = 12
	cmdProgGetFDByID   = 13
	cmdMapGetFDByID    = 14
	cmdObjGetInfoByFD  = 15
	cmdLinkGetFDByID   = 30
	cmdLinkGetNextID   = 31
	attrGetIDSize      = 12 // start_id/prog_id, next_id, open_flags
	attrObjGetSize     = 16 // pathname, bpf_fd, file_flags
	attrGetInfoSize    = 16 // bpf_fd, info_len, info
	linkInfoUnionBytes = 48
	fRDOnly            = 1 << 3 // BPF_F_RDONLY: a scan only looks
)

// progInfo is struct bpf_prog_info (linux/bpf.h) up to attach_btf_id; a
// test checks the offsets against the UAPI header.
type progInfo struct {
	Type            uint32
	ID              uint32
	Tag             [8]byte
	JitedProgLen    uint32
	XlatedProgLen   uint32
	JitedProgInsns  uint64
	XlatedProgInsns uint64
	LoadTime        uint64
	CreatedByUID    uint32
	NrMapIDs        uint32
	MapIDs          uint64
	Name            [16]byte
	Ifindex         uint32
	GPLCompatible   uint32
	NetnsDev        uint64
	NetnsIno        uint64
	NrJitedKsyms    uint32
	NrJitedFuncLens uint32
	JitedKsyms      uint64
	JitedFuncLens   uint64
	BTFID           uint32
	FuncInfoRecSize uint32
	FuncInfo        uint64
	NrFuncInfo      uint32
	NrLineInfo      uint32
	LineInfo        uint64
	JitedLineInfo   uint64
	NrJitedLineInfo uint32
	LineInfoRecSize uint32
	JitedLineRecSz  uint32
	NrProgTags      uint32
	ProgTags        uint64
	RunTimeNs       uint64
	RunCnt          uint64
	RecursionMisses uint64
	VerifiedInsns   uint32
	AttachBTFObjID  uint32
	AttachBTFID     uint32
	_               uint32
}

// mapInfo is struct bpf_map_info up to name.
type mapInfo struct {
	Type       uint32
	ID         uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	MapFlags   uint32
	Name       [16]byte
}

// linkInfo is struct bpf_link_info: the common head and the per-type union.
type linkInfo struct {
	Type   uint32
	ID     uint32
	ProgID uint32
	_      uint32
	U      [linkInfoUnionBytes]byte
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	for range 5 {
		r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
		if errno == 0 {
			return r, nil
		}
		if !errors.Is(errno, unix.EAGAIN) {
			return 0, errno
		}
	}
	return 0, unix.EAGAIN
}

// nextID returns the id after start for a GET_NEXT_ID command; ENOENT ends
// the enumeration.
func nextID(cmd uintptr, start uint32) (uint32, error) {
	attr := [3]uint32{start}
	_, err := bpf(cmd, unsafe.Pointer(&attr), attrGetIDSize)
	return attr[1], err
}

func fdByID(cmd uintptr, id uint32) (int, error) {
	attr := [3]uint32{id}
	fd, err := bpf(cmd, unsafe.Pointer(&attr), attrGetIDSize)
	return int(fd), err
}

func objInfo(fd int, info unsafe.Pointer, size uint32) error {
	attr := struct {
		FD   uint32
		Len  uint32
		Info uint64
	}{uint32(fd), size, uint64(uintptr(info))}
	_, err := bpf(cmdObjGetInfoByFD, unsafe.Pointer(&attr), attrGetInfoSize)
	return err
}

// objGet opens a bpffs pin.
func objGet(path string) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := struct {
		Path  uint64
		FD    uint32
		Flags uint32
	}{Path: uint64(uintptr(unsafe.Pointer(p))), Flags: fRDOnly}
	fd, err := bpf(cmdObjGet, unsafe.Pointer(&attr), attrObjGetSize)
	runtime.KeepAlive(p)
	return int(fd), err
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
