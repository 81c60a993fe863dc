// Package rawbpf issues bpf(BPF_PROG_LOAD) directly, for tests and test
// loaders that must submit exactly the bytes they hold (no library rewriting).
package rawbpf

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxAttempts bounds the retries on EAGAIN, as libbpf does.
const maxAttempts = 10

// ProgLoadAttr is the BPF_PROG_LOAD member of union bpf_attr
// (linux/bpf.h), from prog_type up to fd_array, at the kernel's offsets
// (TestProgLoadAttrMatchesTheKernelHeader checks them). Pointer fields hold
// user addresses: whoever fills them keeps the memory alive until the load
// returns. Unused fields stay zero, which the kernel reads as absent, so the
// struct may be passed whole to kernels that know fewer fields.
type ProgLoadAttr struct {
	ProgType           uint32 // enum bpf_prog_type
	InsnCnt            uint32 // instructions, 8 bytes each
	Insns              uint64 // address of the instructions
	License            uint64 // address of a NUL-terminated license
	LogLevel           uint32
	LogSize            uint32
	LogBuf             uint64
	KernVersion        uint32
	ProgFlags          uint32
	ProgName           [16]byte // NUL-terminated; see SetName
	ProgIfindex        uint32
	ExpectedAttachType uint32
	ProgBTFFD          uint32
	FuncInfoRecSize    uint32
	FuncInfo           uint64
	FuncInfoCnt        uint32
	LineInfoRecSize    uint32
	LineInfo           uint64
	LineInfoCnt        uint32
	AttachBTFID        uint32
	AttachProgFD       uint32 // a union with attach_btf_obj_fd
	CoreReloCnt        uint32
	FdArray            uint64
}

// SetName sets prog_name to the first 15 bytes of name and NUL-pads the
// rest: the kernel refuses a name without a NUL in its 16 bytes.
func (a *ProgLoadAttr) SetName(name string) {
	a.ProgName = [16]byte{}
	copy(a.ProgName[:len(a.ProgName)-1], name)
}

// Load runs BPF_PROG_LOAD with a (all of it, see ProgLoad) and returns the
// new program's fd.
func Load(a *ProgLoadAttr) (int, error) {
	fd, err := ProgLoad(unsafe.Pointer(a), unsafe.Sizeof(*a))
	runtime.KeepAlive(a)
	return fd, err
}

// ProgLoad runs BPF_PROG_LOAD with the attr at attr (size bytes) and
// returns the new program's fd. The verifier gives up with EAGAIN whenever
// a signal is pending for the loading thread (the Go runtime sends some), so
// EAGAIN is retried; any other error is returned as the kernel's errno.
// The caller keeps every buffer attr points to alive until it returns.
func ProgLoad(attr unsafe.Pointer, size uintptr) (int, error) {
	var err error
	for range maxAttempts {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(attr), size)
		if errno == 0 {
			return int(fd), nil
		}
		err = errno
		if !errors.Is(errno, unix.EAGAIN) {
			break
		}
	}
	return -1, err
}

// ProgLoadAttrFull is the BPF_PROG_LOAD attr up to keyring_id (6.18): the
// token fd (6.9+) and the signature fields (6.18+) follow ProgLoadAttr.
type ProgLoadAttrFull struct {
	ProgLoadAttr
	CoreRelos       uint64
	CoreReloRecSize uint32
	LogTrueSize     uint32
	ProgTokenFD     int32 // with BPF_F_TOKEN_FD in ProgFlags
	FdArrayCnt      uint32
	Signature       uint64 // address of a PKCS#7 signature of the instructions
	SignatureSize   uint32
	KeyringID       int32 // 0..2 system keyrings, KEY_SPEC_* or a key serial
}

// BPFFTokenFD is BPF_F_TOKEN_FD (prog_flags, map_flags): the token fd field is set.
const BPFFTokenFD = 1 << 16

// LoadFull runs BPF_PROG_LOAD with all of a (168 bytes).
func LoadFull(a *ProgLoadAttrFull) (int, error) {
	fd, err := ProgLoad(unsafe.Pointer(a), unsafe.Sizeof(*a))
	runtime.KeepAlive(a)
	return fd, err
}
