package testprogs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

func TestEveryCommittedObjectIsListedAndEveryListedObjectExists(t *testing.T) {
	found, err := filepath.Glob(filepath.Join(Dir(), "*.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk, listed []string
	for _, f := range found {
		onDisk = append(onDisk, filepath.Base(f))
	}
	for _, o := range Objects {
		listed = append(listed, o.File)
	}
	listed = append(listed, ObjectLoaderRefuses...)
	slices.Sort(onDisk)
	slices.Sort(listed)
	if !slices.Equal(onDisk, listed) {
		t.Fatalf("testdata objects %v, listed %v", onDisk, listed)
	}
	if len(Benign()) == 0 || len(Malicious()) == 0 || len(Benign())+len(Malicious()) != len(Objects) {
		t.Fatalf("Benign() %d + Malicious() %d objects, want both non-empty and %d in all",
			len(Benign()), len(Malicious()), len(Objects))
	}
}

func TestTheObjectLoaderRefusesTheObjectsListedAsRefused(t *testing.T) {
	for _, f := range ObjectLoaderRefuses {
		spec, err := ebpf.LoadCollectionSpec(Path(f))
		if err != nil {
			continue
		}
		// Some are refused only when the loader links the instructions.
		refused := false
		for _, ps := range spec.Programs {
			if err := ps.Instructions.Marshal(io.Discard, binary.LittleEndian); err != nil {
				refused = true
			}
		}
		if !refused {
			t.Errorf("%s: cilium/ebpf reads it: move it to Objects", f)
		}
	}
}

func TestEveryListedProgramMatchesItsObject(t *testing.T) {
	for _, o := range Objects {
		t.Run(o.File, func(t *testing.T) {
			spec, err := ebpf.LoadCollectionSpec(o.Path())
			if err != nil {
				t.Fatalf("parse %s: %v", o.File, err)
			}
			names := slices.Sorted(maps.Keys(spec.Programs))
			var want []string
			for _, p := range o.Programs {
				want = append(want, p.Name)
			}
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Fatalf("programs %v, listed %v", names, want)
			}
			for _, p := range o.Programs {
				checkProgram(t, p, spec.Programs[p.Name], o.License)
				checkStrings(t, o, p, spec.Programs[p.Name].Instructions)
			}
			checkSections(t, o)
		})
	}
}

func checkProgram(t *testing.T, want Program, got *ebpf.ProgramSpec, license string) {
	t.Helper()
	if got.SectionName != want.Section {
		t.Errorf("%s: section %q, listed %q", want.Name, got.SectionName, want.Section)
	}
	if got.Type != want.Type {
		t.Errorf("%s: type %v, listed %v", want.Name, got.Type, want.Type)
	}
	if got.License != license {
		t.Errorf("%s: license %q, listed %q", want.Name, got.License, license)
	}
	if n := int(got.Instructions.Size() / asm.InstructionSize); n != want.Insns {
		t.Errorf("%s: %d instruction slots, listed %d", want.Name, n, want.Insns)
	}
	helpers := map[asm.BuiltinFunc]int{}
	kfuncs := map[string]int{}
	for _, ins := range got.Instructions {
		switch {
		case ins.IsBuiltinCall():
			helpers[asm.BuiltinFunc(ins.Constant)]++
		case ins.IsKfuncCall():
			kfuncs[ins.Reference()]++
		}
	}
	if !maps.Equal(helpers, want.Helpers) {
		t.Errorf("%s: helper calls %v, listed %v", want.Name, helpers, want.Helpers)
	}
	if len(kfuncs) == 0 {
		kfuncs = nil
	}
	if !maps.Equal(kfuncs, want.Kfuncs) {
		t.Errorf("%s: kfunc calls %v, listed %v", want.Name, kfuncs, want.Kfuncs)
	}
	if want.Loads == (want.RefusedFor != "") {
		t.Errorf("%s: Loads %v with RefusedFor %q: exactly one must say how the kernel treats it",
			want.Name, want.Loads, want.RefusedFor)
	}
}

// checkSections reads the ELF directly rather than trusting the library the
// rest of the test uses.
func checkSections(t *testing.T, o Object) {
	t.Helper()
	f, err := elf.Open(o.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	has := func(name string) bool { return f.Section(name) != nil }
	if has(".BTF") != o.BTF || has(".BTF.ext") != o.BTF {
		t.Errorf(".BTF present %v, .BTF.ext present %v, listed BTF %v", has(".BTF"), has(".BTF.ext"), o.BTF)
	}
	if has("license") != (o.License != "") {
		t.Errorf("license section present %v, listed license %q", has("license"), o.License)
	}
	if has("maps") != o.LegacyMaps {
		t.Errorf("legacy maps section present %v, listed %v", has("maps"), o.LegacyMaps)
	}
}

// checkStrings confirms each listed string is where its kind says, with
// just enough decoding to tell: this is a check of the list, not an analyser.
func checkStrings(t *testing.T, o Object, p Program, insns asm.Instructions) {
	t.Helper()
	for _, s := range p.Strings {
		var ok bool
		switch s.Kind {
		case "data", "format":
			ok = inDataSections(t, o, s.Text)
		case "compare":
			ok = bytes.Contains(comparedBytes(insns), []byte(s.Text))
		case "stack":
			ok = bytes.Contains(stackImage(insns), []byte(s.Text))
		default:
			t.Errorf("%s: string %q has unknown kind %q", p.Name, s.Text, s.Kind)
			continue
		}
		if !ok {
			t.Errorf("%s: no %s string %q", p.Name, s.Kind, s.Text)
		}
	}
}

func inDataSections(t *testing.T, o Object, text string) bool {
	f, err := elf.Open(o.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{".rodata", ".data"} {
		if sec := f.Section(name); sec != nil {
			data, err := sec.Data()
			if err != nil {
				t.Fatalf("%s: read %s: %v", o.File, name, err)
			}
			if bytes.Contains(data, append([]byte(text), 0)) {
				return true
			}
		}
	}
	return false
}

// comparedBytes lists, in order, the immediates that conditional jumps
// compare a register with for equality, as a byte-compare chain does.
func comparedBytes(insns asm.Instructions) []byte {
	var out []byte
	for _, ins := range insns {
		op := ins.OpCode
		if op.Class().IsJump() && op.Source() == asm.ImmSource &&
			(op.JumpOp() == asm.JNE || op.JumpOp() == asm.JEq) && ins.Constant >= 0 && ins.Constant < 256 {
			out = append(out, byte(ins.Constant))
		}
	}
	return out
}

// stackImage replays immediate moves and stores to r10 over a 512-byte
// stack, ignoring everything else.
func stackImage(insns asm.Instructions) []byte {
	stack := make([]byte, 512)
	var regs [11]*int64
	for _, ins := range insns {
		op := ins.OpCode
		switch {
		case op.IsDWordLoad() && ins.Reference() == "":
			v := ins.Constant
			regs[ins.Dst] = &v
		case op.Class().IsALU() && op.ALUOp() == asm.Mov && op.Source() == asm.ImmSource:
			v := ins.Constant
			regs[ins.Dst] = &v
		case op.Class() == asm.StXClass && op.Mode() == asm.MemMode && ins.Dst == asm.R10 && regs[ins.Src] != nil:
			writeStack(stack, int(ins.Offset), op.Size().Sizeof(), *regs[ins.Src])
		case op.Class() == asm.StClass && op.Mode() == asm.MemMode && ins.Dst == asm.R10:
			writeStack(stack, int(ins.Offset), op.Size().Sizeof(), ins.Constant)
		case op.Class().IsALU() || op.Class() == asm.LdXClass || op.IsDWordLoad():
			regs[ins.Dst] = nil
		case op.JumpOp() == asm.Call:
			for r := asm.R0; r <= asm.R5; r++ {
				regs[r] = nil
			}
		}
	}
	return stack
}

func writeStack(stack []byte, off, size int, v int64) {
	at := len(stack) + off
	if at < 0 || at+size > len(stack) {
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	copy(stack[at:at+size], b[:size])
}

func TestKernelNameKeepsTheFirstFifteenBytes(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"execsnoop_enter", "execsnoop_enter"},
		{"handle_execve_enter1", "handle_execve_e"},
		{"det_pam_get_authtok", "det_pam_get_aut"},
	} {
		if got := (Program{Name: tc.name}).KernelName(); got != tc.want {
			t.Errorf("KernelName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// kernelProgName asks the kernel for the name it stored. cilium/ebpf's
// ProgramInfo.Name is no use here: it restores a truncated name from BTF.
func kernelProgName(fd int) (string, error) {
	// struct bpf_prog_info up to and including name[16], at offset 64.
	var info [80]byte
	var attr struct {
		fd, infoLen uint32
		info        uint64
	}
	attr.fd, attr.infoLen = uint32(fd), uint32(len(info))
	attr.info = uint64(uintptr(unsafe.Pointer(&info[0])))
	const objGetInfoByFD = 15
	_, _, errno := unix.Syscall(unix.SYS_BPF, objGetInfoByFD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(&info)
	if errno != 0 {
		return "", fmt.Errorf("BPF_OBJ_GET_INFO_BY_FD on fd %d: %w", fd, errno)
	}
	name := info[64:80]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name), nil
}

// loadSpec loads the named programs of o and nothing else.
func loadSpec(t *testing.T, o Object, keep func(Program) bool) (*ebpf.Collection, error) {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(o.Path())
	if err != nil {
		t.Fatalf("parse %s: %v", o.File, err)
	}
	for _, p := range o.Programs {
		if !keep(p) {
			delete(spec.Programs, p.Name)
		}
	}
	return ebpf.NewCollection(spec)
}

func TestLoadableProgramsLoadAndTheOthersAreRefusedForTheListedReason(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs")
	for _, o := range Objects {
		t.Run(o.File, func(t *testing.T) {
			if o.File == "big.bpf.o" && testing.Short() {
				t.Skip("verifying 100,000 instructions takes seconds")
			}
			coll, err := loadSpec(t, o, func(p Program) bool { return p.Loads })
			if err != nil {
				t.Fatalf("load the programs marked loadable: %v", err)
			}
			defer coll.Close()
			for _, p := range o.Programs {
				if !p.Loads {
					continue
				}
				name, err := kernelProgName(coll.Programs[p.Name].FD())
				if err != nil {
					t.Fatalf("%s: %v", p.Name, err)
				}
				if name != p.KernelName() {
					t.Errorf("%s: kernel name %q, want %q", p.Name, name, p.KernelName())
				}
			}
			for _, p := range o.Programs {
				if p.Loads {
					continue
				}
				c, err := loadSpec(t, o, func(q Program) bool { return q.Name == p.Name })
				if err == nil {
					c.Close()
					t.Errorf("%s loaded, listed as refused for %s", p.Name, p.RefusedFor)
					continue
				}
				// %+v includes the verifier log, where refused helpers are named.
				if !strings.Contains(fmt.Sprintf("%+v", err), p.RefusedFor) {
					t.Errorf("%s refused, but the error does not name %s: %+v", p.Name, p.RefusedFor, err)
				}
			}
		})
	}
}

// The expected values are worked out by hand in atomics.bpf.c's comments.
func TestAtomicsLeaveTheDocumentedValues(t *testing.T) {
	testutils.RequireRoot(t, "running a BPF program")
	o, _ := Lookup("atomics.bpf.o")
	coll, err := loadSpec(t, o, func(Program) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	if _, err := coll.Programs["atomics_all"].Run(&ebpf.RunOptions{}); err != nil {
		t.Fatalf("run: %v", err)
	}
	for name, want := range map[string]uint64{
		"a64": 0x17, "a32": 0x17, "f64": 0x1a, "f32": 0x1a, "x64": 7, "x32": 7, "c64": 9, "c32": 9,
		"old_add64": 0x10, "old_and64": 0x1f, "old_or64": 0x1b, "old_xor64": 0x1b, "old_xchg64": 1, "old_cmpxchg64": 3,
		"old_add32": 0x10, "old_and32": 0x1f, "old_or32": 0x1b, "old_xor32": 0x1b, "old_xchg32": 1, "old_cmpxchg32": 3,
	} {
		v := coll.Variables[name]
		if v == nil {
			t.Errorf("no variable %s", name)
			continue
		}
		var got uint64
		if v.Size() == 4 {
			var g32 uint32
			err = v.Get(&g32)
			got = uint64(g32)
		} else {
			err = v.Get(&got)
		}
		if err != nil {
			t.Errorf("read %s: %v", name, err)
		} else if got != want {
			t.Errorf("%s = %#x, want %#x", name, got, want)
		}
	}
}

func TestLoadAcquireStoreReleaseCopyEverySize(t *testing.T) {
	testutils.RequireRoot(t, "running a BPF program")
	o, _ := Lookup("acqrel.bpf.o")
	coll, err := loadSpec(t, o, func(Program) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	if _, err := coll.Programs["acqrel_all"].Run(&ebpf.RunOptions{}); err != nil {
		t.Fatalf("run: %v", err)
	}
	// Mirrors rel_dst in acqrel.bpf.c.
	var got struct {
		D64 uint64
		W32 uint32
		_   uint32
		H16 uint16
		_   [3]uint16
		B8  uint8
		_   [7]uint8
	}
	if err := coll.Variables["rel_dst"].Get(&got); err != nil {
		t.Fatal(err)
	}
	var src uint64 = 0x1122334455667788
	if got.D64 != src || got.W32 != uint32(src) || got.H16 != uint16(src) || got.B8 != uint8(src) {
		t.Errorf("rel_dst = %#x %#x %#x %#x, want the low 8, 4, 2, 1 bytes of %#x", got.D64, got.W32, got.H16, got.B8, src)
	}
}

// v4Input and v4Output mirror struct v4_input and struct v4_output in cpuv4.bpf.c.
type v4Input struct {
	B    int8
	_    int8
	H    int16
	W    int32
	Num  int64
	Den  int64
	Swap uint64
}

type v4Output struct {
	Movsx8, Movsx16, Movsx32 int64
	Ldsx8, Ldsx16, Ldsx32    int64
	Quot, Rem                int64
	Quot32, Rem32            int32
	Bswap16, Bswap32         uint64
	Bswap64                  uint64
	Jumped, Loops            uint64
}

func TestCPUv4InstructionsComputeWhatGoComputes(t *testing.T) {
	testutils.RequireRoot(t, "running a BPF program")
	o, _ := Lookup("cpuv4.bpf.o")
	coll, err := loadSpec(t, o, func(Program) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	for _, tc := range []struct {
		name string
		in   v4Input
	}{
		{"negative values sign-extend and divide toward zero", v4Input{B: -5, H: -300, W: -70000, Num: -98559, Den: 7, Swap: 0x0102030405060708}},
		{"positive values with a negative divisor jump over the gotol", v4Input{B: 6, H: 300, W: 70000, Num: 0x180ff, Den: -2, Swap: 0xfedcba9876543210}},
		{"a zero divisor skips the division", v4Input{B: 0, H: -1, W: 1, Num: 0x7f80, Den: 0, Swap: 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := make([]byte, binary.Size(tc.in))
			if _, err := binary.Encode(ctx, binary.LittleEndian, tc.in); err != nil {
				t.Fatal(err)
			}
			if _, err := coll.Programs["cpuv4_all"].Run(&ebpf.RunOptions{Context: ctx}); err != nil {
				t.Fatalf("run: %v", err)
			}
			// Reset between cases: the division results persist when Den is 0.
			defer coll.Variables["v4_out"].Set(v4Output{})
			var got v4Output
			if err := coll.Variables["v4_out"].Get(&got); err != nil {
				t.Fatal(err)
			}
			in := tc.in
			want := v4Output{
				Movsx8: int64(int8(in.Num)), Movsx16: int64(int16(in.Num)), Movsx32: int64(int32(in.Num)),
				Ldsx8: int64(in.B), Ldsx16: int64(in.H), Ldsx32: int64(in.W),
				Bswap16: uint64(bits.ReverseBytes16(uint16(in.Swap))),
				Bswap32: uint64(bits.ReverseBytes32(uint32(in.Swap))),
				Bswap64: bits.ReverseBytes64(in.Swap),
				Jumped:  1, Loops: 5,
			}
			if in.B > 5 {
				want.Jumped = 2
			}
			if in.Den != 0 {
				want.Quot, want.Rem = in.Num/in.Den, in.Num%in.Den
				want.Quot32, want.Rem32 = int32(in.Num)/int32(in.Den), int32(in.Num)%int32(in.Den)
			}
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestTheReadmeTableHasARowForEveryProgram(t *testing.T) {
	readme, err := os.ReadFile(Path("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range Objects {
		for _, p := range o.Programs {
			row := "| " + o.File + " | " + p.Name
			if p.KernelName() != p.Name {
				row += " [" + p.KernelName() + "]"
			}
			if !bytes.Contains(readme, []byte(row+" | "+p.Section+" | ")) {
				t.Errorf("testdata/README.md has no row starting %q", row+" | "+p.Section+" | ")
			}
		}
	}
}
