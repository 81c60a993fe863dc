package insn

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

func TestAssembleAcceptsHandWrittenC(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []Slot
	}{
		{"a C initializer body with comments", `
			/* open the map */
			BPF_LD_MAP_FD(BPF_REG_1, 3),   // r1 = map
			BPF_MOV64_REG(BPF_REG_2, BPF_REG_FP),
			BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -8),
			BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem),
			BPF_EXIT_INSN(),`,
			[]Slot{{Code: 0x18, Dst: 1, Src: 1, Imm: 3}, {}, {Code: 0xbf, Dst: 2, Src: 10}, {Code: 0x07, Dst: 2, Imm: -8},
				{Code: 0x85, Imm: 1}, {Code: 0x95}}},
		{"helper names in all three spellings", "BPF_EMIT_CALL(BPF_FUNC_trace_printk) BPF_EMIT_CALL(6)",
			[]Slot{{Code: 0x85, Imm: 6}, {Code: 0x85, Imm: 6}}},
		{"the legacy atomic add alias", "BPF_STX_XADD(BPF_W, BPF_REG_1, BPF_REG_2, 4)",
			[]Slot{{Code: 0xc3, Dst: 1, Src: 2, Off: 4}}},
		{"register aliases of filter.h", "BPF_MOV64_REG(BPF_REG_CTX, BPF_REG_ARG1)",
			[]Slot{{Code: 0xbf, Dst: 6, Src: 1}}},
		{"the from-endian spelling", "BPF_ENDIAN(BPF_FROM_BE, BPF_REG_0, 32)",
			[]Slot{{Code: 0xdc, Imm: 32}}},
		{"constant expressions with C precedence", "BPF_RAW_INSN(BPF_ALU64 | BPF_K | BPF_MOV, 1, 0, -(2+3), 1 << 4 | 0x0f & ~1)",
			[]Slot{{Code: 0xb7, Dst: 1, Off: -5, Imm: 16 | (0x0f &^ 1)}}},
		{"octal and upper-case hex", "BPF_MOV32_IMM(BPF_REG_1, 010) BPF_MOV32_IMM(BPF_REG_1, 0XFF)",
			[]Slot{{Code: 0xb4, Dst: 1, Imm: 8}, {Code: 0xb4, Dst: 1, Imm: 255}}},
		{"an unsigned 32-bit immediate wraps like C", "BPF_MOV64_IMM(BPF_REG_1, 0xffffffff)",
			[]Slot{{Code: 0xb7, Dst: 1, Imm: -1}}},
		{"an unsigned 16-bit offset wraps like C", "BPF_JMP_A(0xffff)",
			[]Slot{{Code: 0x05, Off: -1}}},
		{"a full 64-bit unsigned constant", "BPF_LD_IMM64(BPF_REG_0, 0xffffffffffffffff)",
			[]Slot{{Code: 0x18, Imm: -1}, {Imm: -1}}},
		{"the most negative 64-bit constant", "BPF_LD_IMM64(BPF_REG_0, -0x8000000000000000)",
			[]Slot{{Code: 0x18}, {Imm: -1 << 31}}},
		{"semicolons separate too", "BPF_EXIT_INSN(); BPF_EXIT_INSN();",
			[]Slot{{Code: 0x95}, {Code: 0x95}}},
		{"nothing at all", " \n// only a comment\n", nil},
	}
	a := Assembler{Helpers: helper.Static()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Assemble(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if want := macSlotBytes(tt.want); !bytes.Equal(got, want) {
				t.Errorf("got  % x\nwant % x", got, want)
			}
		})
	}
}

func TestAssembleErrorsNameLineColumnAndWhat(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // the full error text
	}{
		{"an unknown macro gets a suggestion", "BPF_EXIT_INSN()\n  BPF_MOV64_IMX(BPF_REG_1, 0)",
			"2:3: unknown macro BPF_MOV64_IMX, did you mean BPF_MOV64_IMM?"},
		{"an unknown helper gets a suggestion", "BPF_EMIT_CALL(BPF_FUNC_map_lookup_elm)",
			"1:15: unknown helper BPF_FUNC_map_lookup_elm (helper table: static table (libbpf bpf_helper_defs.h)), did you mean BPF_FUNC_map_lookup_elem?"},
		{"a register beyond the 4-bit field", "BPF_MOV64_REG(BPF_REG_1, 16)",
			"1:26: BPF_MOV64_REG argument 2 (SRC): 16 is not a register (BPF_REG_0..BPF_REG_10; the field holds 0..15)"},
		{"a non-existent register name", "BPF_MOV64_REG(BPF_REG_11, BPF_REG_1)",
			"1:15: unknown name BPF_REG_11, did you mean BPF_REG_1?"},
		{"an immediate too wide for 32 bits", "BPF_MOV64_IMM(BPF_REG_1, 0x100000000)",
			"1:26: BPF_MOV64_IMM argument 2 (IMM): 4294967296 does not fit in the 32-bit immediate"},
		{"an offset too wide for 16 bits", "BPF_JMP_A(-32769)",
			"1:11: BPF_JMP_A argument 1 (OFF): -32769 does not fit in the 16-bit offset"},
		{"a size that is not one", "BPF_LDX_MEM(3, BPF_REG_0, BPF_REG_1, 0)",
			"1:13: BPF_LDX_MEM argument 1 (SIZE): 3 is not a size (BPF_W, BPF_H, BPF_B or BPF_DW)"},
		{"an operation that is not one", "BPF_ALU64_IMM(BPF_REG_1, BPF_REG_1, 0)",
			"1:15: BPF_ALU64_IMM argument 1 (OP): 0x1 is not an operation (BPF_ADD, BPF_JEQ, …: a multiple of 0x10 up to 0xf0)"},
		{"too few arguments", "BPF_MOV64_IMM(BPF_REG_1)",
			"1:1: BPF_MOV64_IMM takes 2 arguments (register, immediate), got 1"},
		{"arguments to a macro without parameters", "BPF_EXIT_INSN(0)",
			"1:1: BPF_EXIT_INSN takes 0 arguments (none), got 1"},
		{"a missing parenthesis", "BPF_EXIT_INSN",
			"1:14: expected ( after BPF_EXIT_INSN"},
		{"an unclosed argument list", "BPF_MOV64_IMM(BPF_REG_1, 0",
			"1:27: expected , or ) in the arguments of BPF_MOV64_IMM, found end of text"},
		{"a stray number", "BPF_EXIT_INSN() 42",
			"1:17: expected a BPF_ macro, found the number 42"},
		{"a stray character", "BPF_EXIT_INSN() {",
			"1:17: unexpected character '{'"},
		{"a number too big for 64 bits", "BPF_LD_IMM64(BPF_REG_1, 0x10000000000000000)",
			"1:25: number 0x10000000000000000 does not fit in 64 bits"},
		{"a malformed number", "BPF_MOV64_IMM(BPF_REG_1, 12ab)",
			"1:26: malformed number 12ab"},
		{"an unclosed comment", "BPF_EXIT_INSN() /* oops",
			"1:17: comment opened here is never closed"},
		{"a shift out of range", "BPF_MOV64_IMM(BPF_REG_1, 1 << 64)",
			"1:28: shift count 64 out of range 0..63"},
		{"several errors are all reported", "BPF_MOV64_IMM(BPF_REG_1, 0x100000000)\nBPF_FOO()\nBPF_EXIT_INSN()\nBPF_JMP_A(1, 2)",
			"1:26: BPF_MOV64_IMM argument 2 (IMM): 4294967296 does not fit in the 32-bit immediate\n" +
				"2:1: unknown macro BPF_FOO\n" +
				"4:1: BPF_JMP_A takes 1 arguments (offset), got 2"},
		{"deeply nested parentheses are refused, not a stack overflow", "BPF_JMP_A(" + strings.Repeat("(", 100000),
			"1:111: expression nested more than 100 deep"},
		{"long chains of unary minus are refused too", "BPF_JMP_A(" + strings.Repeat("-", 100000) + "1)",
			"1:111: expression nested more than 100 deep"},
		{"a tab counts as one column", "\tBPF_EXIT_INSN(1)", "1:2: BPF_EXIT_INSN takes 0 arguments (none), got 1"},
	}
	a := Assembler{Helpers: helper.Static()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Assemble(tt.text)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err.Error(), tt.want)
			}
			var list AsmErrors
			if !errors.As(err, &list) || len(list) == 0 {
				t.Errorf("error %T is not a non-empty AsmErrors", err)
			}
		})
	}
}

func TestAssembleStopsReportingAfterTwentyErrors(t *testing.T) {
	text := strings.Repeat("BPF_FOO()\n", 50)
	_, err := (&Assembler{Helpers: helper.Static()}).Assemble(text)
	var list AsmErrors
	if !errors.As(err, &list) || len(list) != asmMaxErrors {
		t.Fatalf("got %d errors, want %d", len(list), asmMaxErrors)
	}
}

func TestParseMacrosDecodesWhatItAssembled(t *testing.T) {
	insns, err := (&Assembler{Helpers: helper.Static()}).Parse("BPF_LD_IMM64(BPF_REG_1, 1)\nBPF_EXIT_INSN()")
	if err != nil {
		t.Fatal(err)
	}
	if len(insns) != 2 || !insns[0].Wide || insns[0].Index != 0 || insns[1].Index != 2 || insns[1].Code != 0x95 {
		t.Fatalf("got %+v", insns)
	}
}

func BenchmarkAssemble(b *testing.B) {
	var unit []byte
	for _, tt := range macroCases {
		unit = append(unit, macSlotBytes(tt.slots)...)
	}
	insns, _ := Decode(bytes.Repeat(unit, 100_000*Size/len(unit)))
	f := MacroFormatter{Helpers: helper.Static()}
	text := string(f.AppendListing(nil, insns))
	a := Assembler{Helpers: helper.Static()}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	cpu := macStartCPU(b)
	for b.Loop() {
		if _, err := a.Assemble(text); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(len(insns))
}
