package insn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestAssembledMacrosRunInTheKernel is the independent check of what the
// macros mean: programs written by hand in filter.h macros, the way kernel
// selftests write them, are assembled, loaded into this kernel as socket
// filters and run; their return value and map writes must be what the C
// semantics of the macros say.
func TestAssembledMacrosRunInTheKernel(t *testing.T) {
	testutils.RequireRoot(t, "loading and running BPF programs")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		testutils.SkipOrFail(t, fmt.Sprintf("create array map: %v", err))
	}
	defer m.Close()

	tests := []struct {
		name string
		text string
		want uint32
		// wantMap, if set, is the value map[0] must hold afterwards.
		wantMap uint64
	}{
		{"a constant return", `BPF_MOV64_IMM(BPF_REG_0, 42), BPF_EXIT_INSN()`, 42, 0},
		{"a stack-built string read back byte by byte", `
			BPF_MOV64_IMM(BPF_REG_1, 0x636f7273),          /* "sroc" little-endian */
			BPF_STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, -4),
			BPF_LDX_MEM(BPF_B, BPF_REG_0, BPF_REG_10, -3), /* 'r' */
			BPF_ALU64_IMM(BPF_ADD, BPF_REG_0, 1),
			BPF_EXIT_INSN(),`, 'r' + 1, 0},
		{"jumps, 32-bit ALU and byte swap", `
			BPF_MOV64_IMM(BPF_REG_0, 0),
			BPF_MOV32_IMM(BPF_REG_1, -1),                  /* w1 = 0xffffffff, upper half zero */
			BPF_ALU64_IMM(BPF_RSH, BPF_REG_1, 16),          /* 0xffff */
			BPF_JMP_IMM(BPF_JNE, BPF_REG_1, 0xffff, 3),
			BPF_MOV64_IMM(BPF_REG_2, 0x1234),
			BPF_ENDIAN(BPF_TO_BE, BPF_REG_2, 16),           /* 0x3412 on little-endian hosts */
			BPF_MOV64_REG(BPF_REG_0, BPF_REG_2),
			BPF_EXIT_INSN(),`, 0x3412, 0},
		{"a 64-bit constant and an arithmetic shift", `
			BPF_LD_IMM64(BPF_REG_0, -0x100000000),
			BPF_ALU64_IMM(BPF_ARSH, BPF_REG_0, 32),         /* -1 */
			BPF_ALU64_IMM(BPF_AND, BPF_REG_0, 0x7f),
			BPF_EXIT_INSN(),`, 0x7f, 0},
		{"a helper call and an atomic add into a map value", `
			BPF_ST_MEM(BPF_W, BPF_REG_10, -4, 0),           /* key 0 */
			BPF_MOV64_REG(BPF_REG_2, BPF_REG_10),
			BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -4),
			BPF_LD_MAP_FD(BPF_REG_1, MAPFD),
			BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem),
			BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 4),
			BPF_MOV64_IMM(BPF_REG_1, 5),
			BPF_ATOMIC_OP(BPF_DW, BPF_ADD | BPF_FETCH, BPF_REG_0, BPF_REG_1, 0),
			BPF_MOV64_REG(BPF_REG_0, BPF_REG_1),            /* the old value */
			BPF_EXIT_INSN(),
			BPF_MOV64_IMM(BPF_REG_0, 99),
			BPF_EXIT_INSN(),`, 0, 5},
	}
	a := Assembler{Helpers: helper.Static()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Put(uint32(0), uint64(0)); err != nil {
				t.Fatal(err)
			}
			text := bytes.ReplaceAll([]byte(tt.text), []byte("MAPFD"), []byte(fmt.Sprint(m.FD())))
			raw, err := a.Assemble(string(text))
			if err != nil {
				t.Fatal(err)
			}
			insns, err := asm.AppendInstructions(nil, bytes.NewReader(raw), binary.LittleEndian, "linux")
			if err != nil {
				t.Fatal(err)
			}
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
			if err != nil {
				t.Fatalf("the kernel refused the assembled program: %v", err)
			}
			defer prog.Close()
			xlatedRoundTrip(t, prog)
			got, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("returned %#x, want %#x", got, tt.want)
			}
			var v uint64
			if err := m.Lookup(uint32(0), &v); err != nil {
				t.Fatal(err)
			}
			if v != tt.wantMap {
				t.Errorf("map[0] = %d, want %d", v, tt.wantMap)
			}
		})
	}
}

// xlatedRoundTrip dumps the kernel's translated form of prog with bpftool
// (which carries kernel-internal rewrites: inlined map lookups, helper calls
// by address, zero extensions) and checks that it too round-trips as macros.
func xlatedRoundTrip(t *testing.T, prog *ebpf.Program) {
	t.Helper()
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		testutils.SkipOrFail(t, "bpftool not installed: "+err.Error())
	}
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("the kernel gave the program no id")
	}
	file := filepath.Join(t.TempDir(), "xlated.bin")
	if out, err := exec.Command(bpftool, "prog", "dump", "xlated", "id", fmt.Sprint(id), "file", file).CombinedOutput(); err != nil {
		t.Fatalf("bpftool prog dump xlated id %d: %v: %s", id, err, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("bpftool wrote an empty dump")
	}
	roundTrip(t, fmt.Sprintf("xlated program %d", id), raw)
}
