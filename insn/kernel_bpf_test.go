package insn

// Raw bpf(2) calls for the privileged formatter tests. They go through the
// syscall directly rather than a library so that the kernel sees exactly the
// instruction bytes the test compares against.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

const (
	progTypeSocketFilter = 1
	progTypeKprobe       = 2
	progTypeTracepoint   = 5
	progTypeSyscall      = 31

	mapTypeArray     = 2
	mapTypeProgArray = 3
	mapTypeArena     = 33

	mapFlagMmapable = 1 << 10
)

func bpfSyscall(cmd uintptr, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// loadResult is a loaded program: its fd (closed by the test cleanup), the
// verifier log at level 2, and the kernel-side id.
type loadResult struct {
	fd  int
	log string
	id  uint32
}

// loadProg loads a test program with the verifier log at level 2 (every
// processed instruction is printed). A rejection fails the test with the
// log's tail.
func loadProg(t *testing.T, name string, progType uint32, flags uint32, p *testProg) loadResult {
	t.Helper()
	res, err := tryLoadProg(t, name, progType, flags, p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tryLoadProg is loadProg returning the rejection (with the log's tail) as
// an error.
func tryLoadProg(t *testing.T, name string, progType uint32, flags uint32, p *testProg) (loadResult, error) {
	t.Helper()
	raw := p.bytes()
	license := []byte("GPL\x00")
	logBuf := make([]byte, 64<<20)
	attr := rawbpf.ProgLoadAttr{
		ProgType:  progType,
		InsnCnt:   uint32(len(raw) / Size),
		Insns:     uint64(uintptr(unsafe.Pointer(&raw[0]))),
		License:   uint64(uintptr(unsafe.Pointer(&license[0]))),
		LogLevel:  2,
		LogSize:   uint32(len(logBuf)),
		LogBuf:    uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
		ProgFlags: flags,
	}
	attr.SetName(name)
	var funcInfo []byte
	if len(p.funcs) > 0 {
		b, err := btf.NewBuilder(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range p.funcs {
			id, err := b.Add(f.fn)
			if err != nil {
				t.Fatalf("BTF for %s: %v", f.fn.Name, err)
			}
			funcInfo = binary.LittleEndian.AppendUint32(funcInfo, uint32(f.insn))
			funcInfo = binary.LittleEndian.AppendUint32(funcInfo, uint32(id))
		}
		h, err := btf.NewHandle(b)
		if err != nil {
			t.Fatalf("load BTF: %v", err)
		}
		t.Cleanup(func() { h.Close() })
		attr.ProgBTFFD = uint32(h.FD())
		attr.FuncInfoRecSize = 8
		attr.FuncInfo = uint64(uintptr(unsafe.Pointer(&funcInfo[0])))
		attr.FuncInfoCnt = uint32(len(p.funcs))
	}
	if len(p.fdArray) > 0 {
		attr.FdArray = uint64(uintptr(unsafe.Pointer(&p.fdArray[0])))
	}
	fd, err := rawbpf.Load(&attr)
	runtime.KeepAlive(p.fdArray)
	runtime.KeepAlive(raw)
	runtime.KeepAlive(license)
	runtime.KeepAlive(funcInfo)
	log := string(logBuf[:max(0, bytes.IndexByte(logBuf, 0))])
	if err != nil {
		tail := log
		if len(tail) > 4000 {
			tail = "…" + tail[len(tail)-4000:]
		}
		return loadResult{log: log}, fmt.Errorf("load %s: %w\nverifier log:\n%s", name, err, tail)
	}
	t.Cleanup(func() { unix.Close(int(fd)) })
	info := progInfo(t, int(fd), nil, nil)
	return loadResult{fd: int(fd), log: log, id: info.id}, nil
}

type progInfoResult struct {
	id         uint32
	xlatedLen  uint32
	nrKsyms    uint32
	xlated     []byte
	jitedKsyms []uint64
}

// progInfo calls BPF_OBJ_GET_INFO_BY_FD; with buffers it also fetches the
// translated instructions and the JITed sub-program addresses.
func progInfo(t *testing.T, fd int, xlated []byte, ksyms []uint64) progInfoResult {
	t.Helper()
	var info [128]byte
	le := binary.LittleEndian
	if xlated != nil {
		le.PutUint32(info[20:], uint32(len(xlated)))
		le.PutUint64(info[32:], uint64(uintptr(unsafe.Pointer(&xlated[0]))))
	}
	if len(ksyms) > 0 {
		le.PutUint32(info[104:], uint32(len(ksyms)))
		le.PutUint64(info[112:], uint64(uintptr(unsafe.Pointer(&ksyms[0]))))
	}
	attr := struct {
		FD      uint32
		InfoLen uint32
		Info    uint64
	}{uint32(fd), uint32(len(info)), uint64(uintptr(unsafe.Pointer(&info[0])))}
	if _, err := bpfSyscall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		t.Fatalf("BPF_OBJ_GET_INFO_BY_FD: %v", err)
	}
	runtime.KeepAlive(xlated)
	runtime.KeepAlive(ksyms)
	return progInfoResult{
		id:         le.Uint32(info[4:]),
		xlatedLen:  le.Uint32(info[20:]),
		nrKsyms:    le.Uint32(info[104:]),
		xlated:     xlated,
		jitedKsyms: ksyms,
	}
}

// fetchXlated returns the translated instructions and jited_ksyms of a
// loaded program.
func fetchXlated(t *testing.T, fd int) ([]byte, []uint64) {
	t.Helper()
	first := progInfo(t, fd, nil, nil)
	if first.xlatedLen == 0 {
		t.Fatalf("prog %d has no translated instructions (kernel.kptr_restrict or bpf_dump_raw_ok?)", first.id)
	}
	xl := make([]byte, first.xlatedLen)
	var ks []uint64
	if first.nrKsyms > 0 {
		ks = make([]uint64, first.nrKsyms)
	}
	got := progInfo(t, fd, xl, ks)
	return got.xlated, got.jitedKsyms
}

// createMap creates a map for the test and returns its fd.
func createMap(t *testing.T, mapType, keySize, valueSize, maxEntries uint32) int {
	t.Helper()
	return createMapFlags(t, mapType, keySize, valueSize, maxEntries, 0, 0)
}

// createMapFlags creates a map with map_flags and map_extra set.
func createMapFlags(t *testing.T, mapType, keySize, valueSize, maxEntries, flags uint32, extra uint64) int {
	t.Helper()
	attr := struct {
		MapType         uint32
		KeySize         uint32
		ValueSize       uint32
		MaxEntries      uint32
		MapFlags        uint32
		InnerMapFD      uint32
		NumaNode        uint32
		MapName         [16]byte
		MapIfindex      uint32
		BTFFD           uint32
		BTFKeyTypeID    uint32
		BTFValueTypeID  uint32
		BTFVmlinuxValue uint32
		MapExtra        uint64
	}{MapType: mapType, KeySize: keySize, ValueSize: valueSize, MaxEntries: maxEntries, MapFlags: flags, MapExtra: extra}
	fd, err := bpfSyscall(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		t.Fatalf("create map type %d: %v", mapType, err)
	}
	t.Cleanup(func() { unix.Close(int(fd)) })
	return int(fd)
}

// kernelNames holds names read from the running kernel, independently of
// the code under test: helper names from BTF's enum bpf_func_id (what the
// kernel's own func_id_str table holds) and BTF ids of kfuncs and variables.
type kernelNames struct {
	spec    *btf.Spec
	helpers map[int32]string
}

var (
	kernelNamesOnce sync.Once
	kernelNamesVal  *kernelNames
	kernelNamesErr  error
)

func loadKernelNames(t *testing.T) *kernelNames {
	t.Helper()
	kernelNamesOnce.Do(func() {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			kernelNamesErr = fmt.Errorf("load kernel BTF: %w", err)
			return
		}
		var enum *btf.Enum
		if err := spec.TypeByName("bpf_func_id", &enum); err != nil {
			kernelNamesErr = fmt.Errorf("enum bpf_func_id in kernel BTF: %w", err)
			return
		}
		kn := &kernelNames{spec: spec, helpers: map[int32]string{}}
		for _, v := range enum.Values {
			if name, ok := strings.CutPrefix(v.Name, "BPF_FUNC_"); ok && v.Name != "__BPF_FUNC_MAX_ID" {
				kn.helpers[int32(v.Value)] = "bpf_" + name
			}
		}
		kernelNamesVal = kn
	})
	if kernelNamesErr != nil {
		t.Fatal(kernelNamesErr)
	}
	return kernelNamesVal
}

// btfID returns the vmlinux BTF id of the named type (kfunc or variable).
func (k *kernelNames) btfID(t *testing.T, name string) int32 {
	t.Helper()
	typ, err := k.spec.AnyTypeByName(name)
	if err != nil {
		t.Fatalf("BTF type %s: %v", name, err)
	}
	id, err := k.spec.TypeID(typ)
	if err != nil {
		t.Fatalf("BTF id of %s: %v", name, err)
	}
	return int32(id)
}

// btfName names a vmlinux BTF id, as the verifier's disasm_kfunc_name does.
func (k *kernelNames) btfName(id int32) string {
	typ, err := k.spec.TypeByID(btf.TypeID(id))
	if err != nil {
		return ""
	}
	return typ.TypeName()
}

func (k *kernelNames) helperName(id int32) string { return k.helpers[id] }

var (
	// "12: (61) r3 = *(u32 *)(r1 +0)         ; R1=map_value(…)"
	verifierLine = regexp.MustCompile(`^(\d+): (\([0-9a-f]{2}\) .*?)\s*(?:;.*)?$`)
	// "     12: .123456... (61) r3 = *(u32 *)(r1 +0)" in the liveness table
	// the verifier prints before checking, one line per instruction.
	liveRegsLine = regexp.MustCompile(`^ +(\d+): [.0-9]{10} (\([0-9a-f]{2}\) .*)$`)
)

// verifierInsns collects the instruction lines of a level-2 verifier log by
// instruction index: those of the register-liveness table (every
// instruction, reachable or not, on kernels that print it) and those printed
// while checking (each visit on each path). All prints are kept so that any
// disagreement shows.
func verifierInsns(log string) map[int][]string {
	out := map[int][]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<24)
	for sc.Scan() {
		m := verifierLine.FindStringSubmatch(sc.Text())
		if m == nil {
			m = liveRegsLine.FindStringSubmatch(sc.Text())
		}
		if m == nil {
			continue
		}
		idx, _ := strconv.Atoi(m[1])
		out[idx] = append(out[idx], m[2])
	}
	return out
}

// readKallsyms reads /proc/kallsyms afresh: the JITed images of programs
// loaded since the last read are only listed from then on.
func readKallsyms(t *testing.T) *Kallsyms {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ks, err := ReadKallsyms(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ks.CallBase(); !ok {
		testutils.SkipOrFail(t, "/proc/kallsyms has no __bpf_call_base address (kptr_restrict)")
	}
	return ks
}

// bpftoolXlated runs "bpftool prog dump xlated id N" and returns its
// instruction lines, exactly as printed, by index (source-line and
// function-header lines that bpftool adds from BTF are dropped).
func bpftoolXlated(t *testing.T, id uint32) map[int]string {
	t.Helper()
	out, err := exec.Command("bpftool", "prog", "dump", "xlated", "id", strconv.Itoa(int(id))).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("bpftool prog dump xlated id %d: %v: %s", id, err, ee.Stderr)
		}
		t.Fatalf("bpftool prog dump xlated id %d: %v", id, err)
	}
	lines := map[int]string{}
	for _, line := range strings.Split(string(out), "\n") {
		head, _, ok := strings.Cut(strings.TrimLeft(line, " "), ": ")
		if !ok {
			continue
		}
		idx, err := strconv.Atoi(head)
		if err != nil {
			continue
		}
		lines[idx] = line
	}
	return lines
}
