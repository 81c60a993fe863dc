package insn

import (
	"bytes"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

// macroCase is an instruction written out field by field from the encoding in
// include/uapi/linux/bpf.h, and the filter.h macro that builds those fields.
type macroCase struct {
	name  string
	slots []Slot
	want  string
}

func macLdImm64Slots(dst, src uint8, imm1, imm2 int32) []Slot {
	return []Slot{{Code: 0x18, Dst: dst, Src: src, Imm: imm1}, {Imm: imm2}}
}

var macroCases = []macroCase{
	{"a 64-bit move of an immediate", []Slot{{Code: 0xb7, Dst: 1}}, "BPF_MOV64_IMM(BPF_REG_1, 0)"},
	{"a 32-bit move of an immediate", []Slot{{Code: 0xb4, Dst: 0, Imm: -1}}, "BPF_MOV32_IMM(BPF_REG_0, -1)"},
	{"a register move", []Slot{{Code: 0xbf, Dst: 6, Src: 1}}, "BPF_MOV64_REG(BPF_REG_6, BPF_REG_1)"},
	{"a 32-bit register move", []Slot{{Code: 0xbc, Dst: 2, Src: 3}}, "BPF_MOV32_REG(BPF_REG_2, BPF_REG_3)"},
	{"packed characters print in hex", []Slot{{Code: 0xb7, Dst: 1, Imm: 0x636f7273}}, "BPF_MOV64_IMM(BPF_REG_1, 0x636f7273)"},
	{"a large negative immediate prints as its 32-bit pattern", []Slot{{Code: 0xb7, Dst: 1, Imm: -100000}}, "BPF_MOV64_IMM(BPF_REG_1, 0xfffe7960)"},
	{"a register add", []Slot{{Code: 0x0f, Dst: 1, Src: 2}}, "BPF_ALU64_REG(BPF_ADD, BPF_REG_1, BPF_REG_2)"},
	{"a 32-bit immediate xor", []Slot{{Code: 0xa4, Dst: 3, Imm: 7}}, "BPF_ALU32_IMM(BPF_XOR, BPF_REG_3, 7)"},
	{"a negation", []Slot{{Code: 0x87, Dst: 4}}, "BPF_ALU64_IMM(BPF_NEG, BPF_REG_4, 0)"},
	{"signed division of registers carries off 1", []Slot{{Code: 0x3f, Dst: 1, Src: 2, Off: 1}}, "BPF_ALU64_REG_OFF(BPF_DIV, BPF_REG_1, BPF_REG_2, 1)"},
	{"signed modulo by an immediate carries off 1", []Slot{{Code: 0x94, Dst: 1, Imm: 3, Off: 1}}, "BPF_ALU32_IMM_OFF(BPF_MOD, BPF_REG_1, 3, 1)"},
	{"a sign-extending move", []Slot{{Code: 0xbf, Dst: 1, Src: 2, Off: 8}}, "BPF_MOVSX64_REG(BPF_REG_1, BPF_REG_2, 8)"},
	{"a 32-bit sign-extending move", []Slot{{Code: 0xbc, Dst: 1, Src: 2, Off: 16}}, "BPF_MOVSX32_REG(BPF_REG_1, BPF_REG_2, 16)"},
	{"a byte swap to big endian", []Slot{{Code: 0xdc, Dst: 1, Imm: 16}}, "BPF_ENDIAN(BPF_TO_BE, BPF_REG_1, 16)"},
	{"a byte swap to little endian", []Slot{{Code: 0xd4, Dst: 1, Imm: 32}}, "BPF_ENDIAN(BPF_TO_LE, BPF_REG_1, 32)"},
	{"an unconditional byte swap", []Slot{{Code: 0xd7, Dst: 1, Imm: 64}}, "BPF_BSWAP(BPF_REG_1, 64)"},
	{"the verifier's zero extension", []Slot{{Code: 0xbc, Dst: 3, Src: 3, Imm: 1}}, "BPF_ZEXT_REG(BPF_REG_3)"},
	{"a word load", []Slot{{Code: 0x61, Dst: 0, Src: 1, Off: 4}}, "BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_1, 4)"},
	{"a sign-extending byte load", []Slot{{Code: 0x91, Dst: 2, Src: 1, Off: -3}}, "BPF_LDX_MEMSX(BPF_B, BPF_REG_2, BPF_REG_1, -3)"},
	{"a double-word register store", []Slot{{Code: 0x7b, Dst: 10, Src: 1, Off: -8}}, "BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_1, -8)"},
	{"an immediate store to the stack", []Slot{{Code: 0x7a, Dst: 10, Off: -16, Imm: 0}}, "BPF_ST_MEM(BPF_DW, BPF_REG_10, -16, 0)"},
	{"a half-word immediate store", []Slot{{Code: 0x6a, Dst: 10, Off: -2, Imm: 0x2f}}, "BPF_ST_MEM(BPF_H, BPF_REG_10, -2, 47)"},
	{"an atomic add", []Slot{{Code: 0xdb, Dst: 1, Src: 2, Off: 0, Imm: 0x00}}, "BPF_ATOMIC_OP(BPF_DW, BPF_ADD, BPF_REG_1, BPF_REG_2, 0)"},
	{"an atomic fetch-add", []Slot{{Code: 0xdb, Dst: 1, Src: 2, Off: -8, Imm: 0x01}}, "BPF_ATOMIC_OP(BPF_DW, BPF_ADD | BPF_FETCH, BPF_REG_1, BPF_REG_2, -8)"},
	{"a 32-bit atomic fetch-or", []Slot{{Code: 0xc3, Dst: 1, Src: 2, Imm: 0x41}}, "BPF_ATOMIC_OP(BPF_W, BPF_OR | BPF_FETCH, BPF_REG_1, BPF_REG_2, 0)"},
	{"an atomic exchange", []Slot{{Code: 0xdb, Dst: 1, Src: 2, Imm: 0xe1}}, "BPF_ATOMIC_OP(BPF_DW, BPF_XCHG, BPF_REG_1, BPF_REG_2, 0)"},
	{"an atomic compare-exchange", []Slot{{Code: 0xdb, Dst: 1, Src: 2, Imm: 0xf1}}, "BPF_ATOMIC_OP(BPF_DW, BPF_CMPXCHG, BPF_REG_1, BPF_REG_2, 0)"},
	{"a load-acquire", []Slot{{Code: 0xdb, Dst: 0, Src: 1, Imm: 0x100}}, "BPF_ATOMIC_OP(BPF_DW, BPF_LOAD_ACQ, BPF_REG_0, BPF_REG_1, 0)"},
	{"a store-release", []Slot{{Code: 0xcb, Dst: 1, Src: 2, Imm: 0x110}}, "BPF_ATOMIC_OP(BPF_H, BPF_STORE_REL, BPF_REG_1, BPF_REG_2, 0)"},
	{"a packet load by absolute offset", []Slot{{Code: 0x30, Imm: 23}}, "BPF_LD_ABS(BPF_B, 23)"},
	{"a packet load by register offset", []Slot{{Code: 0x40, Src: 2, Imm: 14}}, "BPF_LD_IND(BPF_W, BPF_REG_2, 14)"},
	{"a 64-bit constant", macLdImm64Slots(2, 0, 0x55667788, 0x11223344), "BPF_LD_IMM64(BPF_REG_2, 0x1122334455667788)"},
	{"a small 64-bit constant", macLdImm64Slots(2, 0, 7, 0), "BPF_LD_IMM64(BPF_REG_2, 7)"},
	{"minus one as a 64-bit constant", macLdImm64Slots(2, 0, -1, -1), "BPF_LD_IMM64(BPF_REG_2, -1)"},
	{"a map by file descriptor", macLdImm64Slots(1, 1, 5, 0), "BPF_LD_MAP_FD(BPF_REG_1, 5)"},
	{"a map value address", macLdImm64Slots(1, 2, 5, 16), "BPF_LD_MAP_VALUE(BPF_REG_1, 5, 16)"},
	{"a kernel variable by BTF id", macLdImm64Slots(1, 3, 123, 0), "BPF_LD_IMM64_RAW(BPF_REG_1, BPF_PSEUDO_BTF_ID, 123)"},
	{"a function address", macLdImm64Slots(2, 4, 9, 0), "BPF_LD_IMM64_RAW(BPF_REG_2, BPF_PSEUDO_FUNC, 9)"},
	{"a map by index", macLdImm64Slots(1, 5, 0, 0), "BPF_LD_IMM64_RAW(BPF_REG_1, BPF_PSEUDO_MAP_IDX, 0)"},
	{"a map value by index", macLdImm64Slots(1, 6, 2, 8), "BPF_LD_IMM64_RAW_FULL(BPF_REG_1, BPF_PSEUDO_MAP_IDX_VALUE, 0, 0, 2, 8)"},
	{"a map fd with a high word", macLdImm64Slots(1, 1, 5, 1), "BPF_LD_IMM64_RAW(BPF_REG_1, BPF_PSEUDO_MAP_FD, 0x100000005)"},
	{"an ld_imm64 with offsets set", []Slot{{Code: 0x18, Dst: 1, Off: 3, Imm: 1}, {Off: -4, Imm: 2}}, "BPF_LD_IMM64_RAW_FULL(BPF_REG_1, 0, 3, -4, 1, 2)"},
	{"an ld_imm64 whose second slot has an opcode", []Slot{{Code: 0x18, Dst: 1, Imm: 1}, {Code: 0x95}},
		"BPF_RAW_INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, 0, 0, 1), BPF_RAW_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)"},
	{"a helper call", []Slot{{Code: 0x85, Imm: 1}}, "BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem)"},
	{"a call of a helper the table lacks", []Slot{{Code: 0x85, Imm: 9999}}, "BPF_EMIT_CALL(9999)"},
	{"a sub-program call", []Slot{{Code: 0x85, Src: 1, Imm: 5}}, "BPF_CALL_REL(5)"},
	{"a kfunc call", []Slot{{Code: 0x85, Src: 2, Imm: 1234}}, "BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, 1234)"},
	{"a module kfunc call keeps its fd index", []Slot{{Code: 0x85, Src: 2, Off: 1, Imm: 77}}, "BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 1, 77)"},
	{"exit", []Slot{{Code: 0x95}}, "BPF_EXIT_INSN()"},
	{"a conditional jump on an immediate", []Slot{{Code: 0x15, Dst: 1, Off: 3}}, "BPF_JMP_IMM(BPF_JEQ, BPF_REG_1, 0, 3)"},
	{"a conditional jump on registers", []Slot{{Code: 0xad, Dst: 1, Src: 2, Off: -7}}, "BPF_JMP_REG(BPF_JLT, BPF_REG_1, BPF_REG_2, -7)"},
	{"a 32-bit signed comparison", []Slot{{Code: 0xc6, Dst: 1, Imm: -5, Off: 2}}, "BPF_JMP32_IMM(BPF_JSLT, BPF_REG_1, -5, 2)"},
	{"a 32-bit register comparison", []Slot{{Code: 0x5e, Dst: 1, Src: 9, Off: 2}}, "BPF_JMP32_REG(BPF_JNE, BPF_REG_1, BPF_REG_9, 2)"},
	{"a goto", []Slot{{Code: 0x05, Off: -1}}, "BPF_JMP_A(-1)"},
	{"a long goto", []Slot{{Code: 0x06, Imm: 100000}}, "BPF_JMP32_A(100000)"},
	{"a may_goto", []Slot{{Code: 0xe5, Off: 3}}, "BPF_RAW_INSN(BPF_JMP | BPF_JCOND, 0, 0, 3, 0)"},
	{"the verifier's speculation barrier", []Slot{{Code: 0xc2}}, "BPF_ST_NOSPEC()"},

	// Reserved fields, undefined opcodes and impossible registers.
	{"an immediate move with a source register", []Slot{{Code: 0xb7, Dst: 1, Src: 3, Imm: 4}}, "BPF_MOV64_RAW(BPF_K, BPF_REG_1, BPF_REG_3, 4)"},
	{"a register move with an immediate", []Slot{{Code: 0xbf, Dst: 1, Src: 3, Imm: 4}}, "BPF_MOV64_RAW(BPF_X, BPF_REG_1, BPF_REG_3, 4)"},
	{"an addr_space_cast has no macro", []Slot{{Code: 0xbf, Dst: 1, Src: 2, Off: 1, Imm: 1}}, "BPF_RAW_INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_2, 1, 1)"},
	{"a register add with an immediate", []Slot{{Code: 0x0f, Dst: 1, Src: 2, Imm: 5}}, "BPF_RAW_INSN(BPF_ALU64 | BPF_ADD | BPF_X, BPF_REG_1, BPF_REG_2, 0, 5)"},
	{"an undefined opcode", []Slot{{Code: 0xff, Dst: 15, Src: 15, Off: -1, Imm: -1}}, "BPF_RAW_INSN(0xff, 15, 15, -1, -1)"},
	{"a register above r10", []Slot{{Code: 0xb7, Dst: 11, Imm: 1}}, "BPF_RAW_INSN(BPF_ALU64 | BPF_MOV | BPF_K, 11, 0, 0, 1)"},
	{"an exit with an immediate", []Slot{{Code: 0x95, Imm: 1}}, "BPF_RAW_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 1)"},
	{"a goto with a register", []Slot{{Code: 0x05, Dst: 1, Off: 1}}, "BPF_RAW_INSN(BPF_JMP | BPF_JA, BPF_REG_1, 0, 1, 0)"},
	{"an undefined atomic operation", []Slot{{Code: 0xdb, Dst: 1, Src: 2, Imm: 0x20}}, "BPF_RAW_INSN(BPF_STX | BPF_DW | BPF_ATOMIC, BPF_REG_1, BPF_REG_2, 0, 32)"},
	{"a load with an immediate", []Slot{{Code: 0x61, Dst: 1, Src: 2, Imm: 9}}, "BPF_RAW_INSN(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_1, BPF_REG_2, 0, 9)"},
	{"a truncated ld_imm64", []Slot{{Code: 0x18, Dst: 1, Imm: 1}}, "BPF_RAW_INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, 0, 0, 1)"},
	{"an undefined ALU operation", []Slot{{Code: 0xe7, Dst: 1}}, "BPF_RAW_INSN(0xe7, BPF_REG_1, 0, 0, 0)"},
	{"a jump-32 call", []Slot{{Code: 0x86, Imm: 1}}, "BPF_RAW_INSN(BPF_JMP32 | BPF_CALL, 0, 0, 0, 1)"},
	{"an all-zero slot", []Slot{{}}, "BPF_RAW_INSN(0x00, 0, 0, 0, 0)"},
}

func macSlotBytes(slots []Slot) []byte {
	var b []byte
	for _, s := range slots {
		b = s.Append(b)
	}
	return b
}

func TestMacroFormat(t *testing.T) {
	f := MacroFormatter{Helpers: helper.Static()}
	for _, tt := range macroCases {
		t.Run(tt.name, func(t *testing.T) {
			raw := macSlotBytes(tt.slots)
			insns, _ := Decode(raw)
			if len(insns) == 0 {
				t.Fatal("decoded nothing")
			}
			var got []byte
			for i, ins := range insns {
				if i > 0 {
					got = append(got, ", "...)
				}
				got = f.Append(got, ins)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMacroTextAssemblesToTheSameFields(t *testing.T) {
	a := Assembler{Helpers: helper.Static()}
	for _, tt := range macroCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Assemble(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if want := macSlotBytes(tt.slots); !bytes.Equal(got, want) {
				t.Errorf("%s\nassembled to % x\nwant        % x", tt.want, got, want)
			}
		})
	}
}

func TestMacroFormatKeepsTheSecondSlotOfAHandMadeWideInstruction(t *testing.T) {
	ins := Instruction{Slot: Slot{Code: 0xb7, Dst: 1}, Wide: true, Next: Slot{Code: 0x95}}
	got := (&MacroFormatter{Helpers: helper.Static()}).Format(ins)
	want := "BPF_RAW_INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 0), BPF_RAW_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestMacroListingIsOneLinePerInstruction(t *testing.T) {
	raw := macSlotBytes(append(macLdImm64Slots(1, 1, 3, 0), Slot{Code: 0x85, Imm: 1}, Slot{Code: 0x95}))
	insns, _ := Decode(raw)
	f := MacroFormatter{Helpers: helper.Static()}
	got := string(f.AppendListing(nil, insns))
	want := "BPF_LD_MAP_FD(BPF_REG_1, 3),\nBPF_EMIT_CALL(BPF_FUNC_map_lookup_elem),\nBPF_EXIT_INSN(),\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func BenchmarkMacroFormat(b *testing.B) {
	// A mix of the common instructions, repeated to a 1,000,000-slot program.
	var unit []byte
	for _, tt := range macroCases[:40] {
		unit = append(unit, macSlotBytes(tt.slots)...)
	}
	raw := bytes.Repeat(unit, 1_000_000*Size/len(unit))
	insns, _ := Decode(raw)
	f := MacroFormatter{Helpers: helper.Static()}
	buf := make([]byte, 0, 64<<20)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu := macStartCPU(b)
	for b.Loop() {
		buf = f.AppendListing(buf[:0], insns)
	}
	cpu.report(len(insns))
}

// macCPU reports the process CPU time per instruction: on a shared machine
// wall time is mostly waiting for a core.
type macCPU struct {
	b     *testing.B
	start time.Duration
}

func macStartCPU(b *testing.B) macCPU { return macCPU{b, macProcessCPU(b)} }

func (c macCPU) report(insnsPerOp int) {
	used := macProcessCPU(c.b) - c.start
	c.b.ReportMetric(float64(used.Nanoseconds())/float64(c.b.N)/float64(insnsPerOp), "cpu-ns/insn")
}

func macProcessCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestMacroCommentStaysOneClosedComment(t *testing.T) {
	f := MacroFormatter{Comment: func(Instruction) string { return "ksym:evil*/ BPF_EXIT_INSN() /*\n" }}
	ins, _ := Decode([]byte{0xb7, 0, 0, 0, 0, 0, 0, 0})
	out := string(f.AppendListing(nil, ins))
	if want := "BPF_MOV64_IMM(BPF_REG_0, 0), /* ksym:evil\\x2a/ BPF_EXIT_INSN() /*\\x0a */\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	bin, err := Assemble(out)
	if err != nil || len(bin) != 8 {
		t.Fatalf("assembles to %d bytes, %v", len(bin), err)
	}
}
