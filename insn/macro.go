package insn

import (
	"strconv"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

// MacroFormatter renders instructions as the kernel's filter.h
// instruction-builder macros, one macro per instruction, with canonical
// register names:
//
//	BPF_MOV64_IMM(BPF_REG_1, 0)
//	BPF_LD_MAP_FD(BPF_REG_1, 5)
//	BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem)
//	BPF_EXIT_INSN()
//
// Every macro it prints expresses the instruction's bytes exactly: where no
// macro does (reserved fields set, unknown opcodes, registers above r10) it
// prints BPF_RAW_INSN(code, dst, src, off, imm), so any byte stream can be
// written as macros and assembled back (see Assemble) to the same bytes.
type MacroFormatter struct {
	// Helpers names helper calls (BPF_FUNC_…); nil means helper.Default().
	// Ids it does not know are printed as numbers.
	Helpers *helper.Table
	// Comment, when set, gives a note for an instruction that AppendListing
	// writes after its macro as a C comment (the assembler skips comments,
	// so the listing still assembles to the same bytes), e.g. the extern an
	// ld_imm64 loads. Comment text is sanitised: no "*/", only printable
	// ASCII.
	Comment func(ins Instruction) string
}

// FormatMacro renders one instruction with the default helper table.
func FormatMacro(ins Instruction) string {
	var f MacroFormatter
	return f.Format(ins)
}

// Format renders one instruction, without trailing comma or newline. The
// second slot of an ld_imm64 is part of its macro; an ld_imm64 whose second
// slot no macro can express becomes two BPF_RAW_INSN separated by ", ".
func (f *MacroFormatter) Format(ins Instruction) string {
	var buf [96]byte
	return string(f.Append(buf[:0], ins))
}

// AppendListing appends one line per instruction, each ending in ",\n", so
// the text can sit inside a C "struct bpf_insn prog[] = { … };" initializer.
func (f *MacroFormatter) AppendListing(dst []byte, insns []Instruction) []byte {
	for _, ins := range insns {
		dst = f.Append(dst, ins)
		dst = append(dst, ',')
		if f.Comment != nil {
			if c := f.Comment(ins); c != "" {
				dst = append(dst, " /* "...)
				dst = appendCommentText(dst, c)
				dst = append(dst, " */"...)
			}
		}
		dst = append(dst, '\n')
	}
	return dst
}

// appendCommentText keeps a C comment closed and on one line whatever the
// text (ELF symbol names are untrusted): bytes outside printable ASCII and
// the '*' of a "*/" become \xNN.
func appendCommentText(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '\\' || c == '*' && i+1 < len(s) && s[i+1] == '/' {
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

func (f *MacroFormatter) helpers() *helper.Table {
	if f.Helpers != nil {
		return f.Helpers
	}
	return helper.Default()
}

// Names of the opcode fields as filter.h and bpf_common.h spell them.
var (
	macClassNames = [8]string{"BPF_LD", "BPF_LDX", "BPF_ST", "BPF_STX", "BPF_ALU", "BPF_JMP", "BPF_JMP32", "BPF_ALU64"}
	macSizeNames  = [4]string{"BPF_W", "BPF_H", "BPF_B", "BPF_DW"}
	// Indexed by mode>>5; "" where no mode is defined.
	macModeNames = [8]string{"BPF_IMM", "BPF_ABS", "BPF_IND", "BPF_MEM", "BPF_MEMSX", "", "BPF_ATOMIC", ""}
	// Indexed by op>>4; "" for the undefined 0xe0 and 0xf0.
	macAluOpNames = [16]string{"BPF_ADD", "BPF_SUB", "BPF_MUL", "BPF_DIV", "BPF_OR", "BPF_AND", "BPF_LSH", "BPF_RSH",
		"BPF_NEG", "BPF_MOD", "BPF_XOR", "BPF_MOV", "BPF_ARSH", "BPF_END", "", ""}
	macJmpOpNames = [16]string{"BPF_JA", "BPF_JEQ", "BPF_JGT", "BPF_JGE", "BPF_JSET", "BPF_JNE", "BPF_JSGT", "BPF_JSGE",
		"BPF_CALL", "BPF_EXIT", "BPF_JLT", "BPF_JLE", "BPF_JSLT", "BPF_JSLE", "BPF_JCOND", ""}
	macPseudoLdNames = [7]string{"0", "BPF_PSEUDO_MAP_FD", "BPF_PSEUDO_MAP_VALUE", "BPF_PSEUDO_BTF_ID",
		"BPF_PSEUDO_FUNC", "BPF_PSEUDO_MAP_IDX", "BPF_PSEUDO_MAP_IDX_VALUE"}
	macRegNames = [11]string{"BPF_REG_0", "BPF_REG_1", "BPF_REG_2", "BPF_REG_3", "BPF_REG_4", "BPF_REG_5",
		"BPF_REG_6", "BPF_REG_7", "BPF_REG_8", "BPF_REG_9", "BPF_REG_10"}
)

// Append appends the macro text of one instruction.
func (f *MacroFormatter) Append(dst []byte, ins Instruction) []byte {
	if ins.Dst > R10 || ins.Src > R10 || (ins.Wide && ins.Code != OpLdImm64) {
		// The last case is no Decode output, but a hand-made Instruction must
		// not lose its second slot either.
		return f.appendRawPair(dst, ins)
	}
	code := ins.Code
	switch Class(code) {
	case ClassALU, ClassALU64:
		if out, ok := macALU(dst, ins); ok {
			return out
		}
	case ClassJMP, ClassJMP32:
		if out, ok := f.macJMP(dst, ins); ok {
			return out
		}
	case ClassLD:
		if out, ok := macLD(dst, ins); ok {
			return out
		}
	case ClassLDX:
		mode := Mode(code)
		if (mode == ModeMEM || mode == ModeMEMSX) && ins.Imm == 0 {
			name := "BPF_LDX_MEM("
			if mode == ModeMEMSX {
				name = "BPF_LDX_MEMSX("
			}
			return macMem(dst, name, code, ins.Dst, ins.Src, ins.Off)
		}
	case ClassST:
		switch {
		case Mode(code) == ModeMEM && ins.Src == 0:
			dst = append(dst, "BPF_ST_MEM("...)
			dst = append(dst, macSizeNames[SizeOf(code)>>3]...)
			dst = append(dst, ", "...)
			dst = append(dst, macRegNames[ins.Dst]...)
			dst = append(dst, ", "...)
			dst = strconv.AppendInt(dst, int64(ins.Off), 10)
			dst = append(dst, ", "...)
			dst = macAppendImm(dst, ins.Imm)
			return append(dst, ')')
		case code == ClassST|ModeATOMIC && ins.Dst == 0 && ins.Src == 0 && ins.Off == 0 && ins.Imm == 0:
			// The verifier's speculation barrier (BPF_ST | BPF_NOSPEC), seen in xlated dumps.
			return append(dst, "BPF_ST_NOSPEC()"...)
		}
	case ClassSTX:
		switch Mode(code) {
		case ModeMEM:
			if ins.Imm == 0 {
				return macMem(dst, "BPF_STX_MEM(", code, ins.Dst, ins.Src, ins.Off)
			}
		case ModeATOMIC:
			if op := macAtomicOp(ins.Imm); op != "" {
				dst = append(dst, "BPF_ATOMIC_OP("...)
				dst = append(dst, macSizeNames[SizeOf(code)>>3]...)
				dst = append(dst, ", "...)
				dst = append(dst, op...)
				dst = append(dst, ", "...)
				dst = append(dst, macRegNames[ins.Dst]...)
				dst = append(dst, ", "...)
				dst = append(dst, macRegNames[ins.Src]...)
				dst = append(dst, ", "...)
				dst = strconv.AppendInt(dst, int64(ins.Off), 10)
				return append(dst, ')')
			}
		}
	}
	return f.appendRawPair(dst, ins)
}

// macMem appends NAME(SIZE, DST, SRC, OFF) for the register load/store macros.
func macMem(dst []byte, name string, code, d, s uint8, off int16) []byte {
	dst = append(dst, name...)
	dst = append(dst, macSizeNames[SizeOf(code)>>3]...)
	dst = append(dst, ", "...)
	dst = append(dst, macRegNames[d]...)
	dst = append(dst, ", "...)
	dst = append(dst, macRegNames[s]...)
	dst = append(dst, ", "...)
	dst = strconv.AppendInt(dst, int64(off), 10)
	return append(dst, ')')
}

func macAtomicOp(imm int32) string {
	switch imm {
	case AtomicADD:
		return "BPF_ADD"
	case AtomicOR:
		return "BPF_OR"
	case AtomicAND:
		return "BPF_AND"
	case AtomicXOR:
		return "BPF_XOR"
	case AtomicADD | AtomicFETCH:
		return "BPF_ADD | BPF_FETCH"
	case AtomicOR | AtomicFETCH:
		return "BPF_OR | BPF_FETCH"
	case AtomicAND | AtomicFETCH:
		return "BPF_AND | BPF_FETCH"
	case AtomicXOR | AtomicFETCH:
		return "BPF_XOR | BPF_FETCH"
	case AtomicXCHG:
		return "BPF_XCHG"
	case AtomicCMPXCHG:
		return "BPF_CMPXCHG"
	case AtomicLoadAcq:
		return "BPF_LOAD_ACQ"
	case AtomicStoreRel:
		return "BPF_STORE_REL"
	}
	return ""
}

func macALU(dst []byte, ins Instruction) ([]byte, bool) {
	code := ins.Code
	alu64 := Class(code) == ClassALU64
	width := "32"
	if alu64 {
		width = "64"
	}
	op := Op(code)
	x := Source(code) == SrcX
	switch op {
	case AluEND:
		if ins.Src != 0 || ins.Off != 0 {
			return dst, false
		}
		if alu64 {
			if x {
				return dst, false // no BPF_ALU64 | BPF_END | BPF_X instruction exists
			}
			dst = append(dst, "BPF_BSWAP("...)
		} else {
			dst = append(dst, "BPF_ENDIAN("...)
			if x {
				dst = append(dst, "BPF_TO_BE, "...)
			} else {
				dst = append(dst, "BPF_TO_LE, "...)
			}
		}
		dst = append(dst, macRegNames[ins.Dst]...)
		dst = append(dst, ", "...)
		dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
		return append(dst, ')'), true
	case AluMOV:
		switch {
		case x && !alu64 && ins.Src == ins.Dst && ins.Off == 0 && ins.Imm == 1:
			// The verifier's explicit zero extension, seen in xlated dumps.
			dst = append(dst, "BPF_ZEXT_REG("...)
			dst = append(dst, macRegNames[ins.Dst]...)
			return append(dst, ')'), true
		case x && ins.Off == 0 && ins.Imm == 0:
			dst = append(dst, "BPF_MOV"...)
			dst = append(dst, width...)
			dst = append(dst, "_REG("...)
			dst = append(dst, macRegNames[ins.Dst]...)
			dst = append(dst, ", "...)
			dst = append(dst, macRegNames[ins.Src]...)
			return append(dst, ')'), true
		case x && (ins.Off == 8 || ins.Off == 16 || ins.Off == 32) && ins.Imm == 0:
			dst = append(dst, "BPF_MOVSX"...)
			dst = append(dst, width...)
			dst = append(dst, "_REG("...)
			dst = append(dst, macRegNames[ins.Dst]...)
			dst = append(dst, ", "...)
			dst = append(dst, macRegNames[ins.Src]...)
			dst = append(dst, ", "...)
			dst = strconv.AppendInt(dst, int64(ins.Off), 10)
			return append(dst, ')'), true
		case !x && ins.Src == 0 && ins.Off == 0:
			dst = append(dst, "BPF_MOV"...)
			dst = append(dst, width...)
			dst = append(dst, "_IMM("...)
			dst = append(dst, macRegNames[ins.Dst]...)
			dst = append(dst, ", "...)
			dst = macAppendImm(dst, ins.Imm)
			return append(dst, ')'), true
		case ins.Off == 0:
			// A register move with an immediate, or an immediate move with a
			// source register: reserved fields, but MOV*_RAW says them exactly.
			dst = append(dst, "BPF_MOV"...)
			dst = append(dst, width...)
			if x {
				dst = append(dst, "_RAW(BPF_X, "...)
			} else {
				dst = append(dst, "_RAW(BPF_K, "...)
			}
			dst = append(dst, macRegNames[ins.Dst]...)
			dst = append(dst, ", "...)
			dst = append(dst, macRegNames[ins.Src]...)
			dst = append(dst, ", "...)
			dst = macAppendImm(dst, ins.Imm)
			return append(dst, ')'), true
		}
		return dst, false
	}
	name := macAluOpNames[op>>4]
	if name == "" {
		return dst, false
	}
	if (x && ins.Imm != 0) || (!x && ins.Src != 0) {
		return dst, false
	}
	dst = append(dst, "BPF_ALU"...)
	dst = append(dst, width...)
	if x {
		dst = append(dst, "_REG"...)
	} else {
		dst = append(dst, "_IMM"...)
	}
	// off selects signed division/modulo (off 1); the _OFF variants carry it.
	if ins.Off != 0 {
		dst = append(dst, "_OFF"...)
	}
	dst = append(dst, '(')
	dst = append(dst, name...)
	dst = append(dst, ", "...)
	dst = append(dst, macRegNames[ins.Dst]...)
	dst = append(dst, ", "...)
	if x {
		dst = append(dst, macRegNames[ins.Src]...)
	} else {
		dst = macAppendImm(dst, ins.Imm)
	}
	if ins.Off != 0 {
		dst = append(dst, ", "...)
		dst = strconv.AppendInt(dst, int64(ins.Off), 10)
	}
	return append(dst, ')'), true
}

func (f *MacroFormatter) macJMP(dst []byte, ins Instruction) ([]byte, bool) {
	code := ins.Code
	jmp32 := Class(code) == ClassJMP32
	op := Op(code)
	x := Source(code) == SrcX
	switch op {
	case JmpJA:
		switch {
		case x || ins.Dst != 0 || ins.Src != 0:
			return dst, false
		case !jmp32 && ins.Imm == 0:
			dst = append(dst, "BPF_JMP_A("...)
			dst = strconv.AppendInt(dst, int64(ins.Off), 10)
			return append(dst, ')'), true
		case jmp32 && ins.Off == 0:
			dst = append(dst, "BPF_JMP32_A("...)
			dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
			return append(dst, ')'), true
		}
		return dst, false
	case JmpCALL:
		if jmp32 || x || ins.Dst != 0 || ins.Off != 0 {
			return dst, false
		}
		switch ins.Src {
		case 0:
			dst = append(dst, "BPF_EMIT_CALL("...)
			if name, ok := f.helpers().EnumName(ins.Imm); ok {
				dst = append(dst, name...)
			} else {
				dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
			}
			return append(dst, ')'), true
		case PseudoCall:
			dst = append(dst, "BPF_CALL_REL("...)
			dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
			return append(dst, ')'), true
		}
		return dst, false // kfunc calls have no macro; BPF_RAW_INSN names the pseudo source
	case JmpEXIT:
		if !jmp32 && !x && ins.Dst == 0 && ins.Src == 0 && ins.Off == 0 && ins.Imm == 0 {
			return append(dst, "BPF_EXIT_INSN()"...), true
		}
		return dst, false
	case JmpJCOND, 0xf0:
		return dst, false
	}
	if (x && ins.Imm != 0) || (!x && ins.Src != 0) {
		return dst, false
	}
	dst = append(dst, "BPF_JMP"...)
	if jmp32 {
		dst = append(dst, "32"...)
	}
	if x {
		dst = append(dst, "_REG("...)
	} else {
		dst = append(dst, "_IMM("...)
	}
	dst = append(dst, macJmpOpNames[op>>4]...)
	dst = append(dst, ", "...)
	dst = append(dst, macRegNames[ins.Dst]...)
	dst = append(dst, ", "...)
	if x {
		dst = append(dst, macRegNames[ins.Src]...)
	} else {
		dst = macAppendImm(dst, ins.Imm)
	}
	dst = append(dst, ", "...)
	dst = strconv.AppendInt(dst, int64(ins.Off), 10)
	return append(dst, ')'), true
}

func macLD(dst []byte, ins Instruction) ([]byte, bool) {
	code := ins.Code
	switch Mode(code) {
	case ModeABS, ModeIND:
		if ins.Dst != 0 || ins.Off != 0 || (Mode(code) == ModeABS && ins.Src != 0) {
			return dst, false
		}
		if Mode(code) == ModeABS {
			dst = append(dst, "BPF_LD_ABS("...)
			dst = append(dst, macSizeNames[SizeOf(code)>>3]...)
		} else {
			dst = append(dst, "BPF_LD_IND("...)
			dst = append(dst, macSizeNames[SizeOf(code)>>3]...)
			dst = append(dst, ", "...)
			dst = append(dst, macRegNames[ins.Src]...)
		}
		dst = append(dst, ", "...)
		dst = macAppendImm(dst, ins.Imm)
		return append(dst, ')'), true
	}
	if code != OpLdImm64 || !ins.Wide || ins.Next.Code != 0 || ins.Next.Dst != 0 || ins.Next.Src != 0 ||
		ins.Src > PseudoMapIdxValue {
		return dst, false
	}
	if ins.Off != 0 || ins.Next.Off != 0 || ins.Src == PseudoMapIdxValue {
		dst = append(dst, "BPF_LD_IMM64_RAW_FULL("...)
		dst = append(dst, macRegNames[ins.Dst]...)
		dst = append(dst, ", "...)
		dst = append(dst, macPseudoLdNames[ins.Src]...)
		dst = append(dst, ", "...)
		dst = strconv.AppendInt(dst, int64(ins.Off), 10)
		dst = append(dst, ", "...)
		dst = strconv.AppendInt(dst, int64(ins.Next.Off), 10)
		dst = append(dst, ", "...)
		dst = macAppendImm(dst, ins.Imm)
		dst = append(dst, ", "...)
		dst = macAppendImm(dst, ins.Next.Imm)
		return append(dst, ')'), true
	}
	switch {
	case ins.Src == 0:
		dst = append(dst, "BPF_LD_IMM64("...)
	case ins.Src == PseudoMapFD && ins.Next.Imm == 0:
		dst = append(dst, "BPF_LD_MAP_FD("...)
		dst = append(dst, macRegNames[ins.Dst]...)
		dst = append(dst, ", "...)
		dst = macAppendImm(dst, ins.Imm)
		return append(dst, ')'), true
	case ins.Src == PseudoMapValue:
		dst = append(dst, "BPF_LD_MAP_VALUE("...)
		dst = append(dst, macRegNames[ins.Dst]...)
		dst = append(dst, ", "...)
		dst = macAppendImm(dst, ins.Imm)
		dst = append(dst, ", "...)
		dst = macAppendImm(dst, ins.Next.Imm)
		return append(dst, ')'), true
	default:
		dst = append(dst, "BPF_LD_IMM64_RAW("...)
	}
	dst = append(dst, macRegNames[ins.Dst]...)
	dst = append(dst, ", "...)
	if ins.Src != 0 {
		dst = append(dst, macPseudoLdNames[ins.Src]...)
		dst = append(dst, ", "...)
	}
	dst = macAppendImm64(dst, ins.Imm64())
	return append(dst, ')'), true
}

// appendRawPair prints BPF_RAW_INSN for the first slot and, for an ld_imm64,
// a second one for the other slot.
func (f *MacroFormatter) appendRawPair(dst []byte, ins Instruction) []byte {
	dst = macAppendRaw(dst, ins.Slot)
	if ins.Wide {
		dst = append(dst, ", "...)
		dst = macAppendRaw(dst, ins.Next)
	}
	return dst
}

func macAppendRaw(dst []byte, s Slot) []byte {
	dst = append(dst, "BPF_RAW_INSN("...)
	dst = macAppendCode(dst, s.Code)
	dst = append(dst, ", "...)
	dst = macAppendReg(dst, s.Dst)
	dst = append(dst, ", "...)
	switch {
	case s.Code == OpLdImm64 && s.Src != 0 && s.Src <= PseudoMapIdxValue:
		dst = append(dst, macPseudoLdNames[s.Src]...)
	case s.Code == ClassJMP|JmpCALL && s.Src == PseudoCall:
		dst = append(dst, "BPF_PSEUDO_CALL"...)
	case s.Code == ClassJMP|JmpCALL && s.Src == PseudoKfuncCall:
		dst = append(dst, "BPF_PSEUDO_KFUNC_CALL"...)
	default:
		dst = macAppendReg(dst, s.Src)
	}
	dst = append(dst, ", "...)
	dst = strconv.AppendInt(dst, int64(s.Off), 10)
	dst = append(dst, ", "...)
	dst = macAppendImm(dst, s.Imm)
	return append(dst, ')')
}

// macAppendCode writes an opcode as its field names ("BPF_JMP | BPF_CALL"),
// or in hex when a field has no name.
func macAppendCode(dst []byte, code uint8) []byte {
	cls := Class(code)
	switch cls {
	case ClassLD, ClassLDX, ClassST, ClassSTX:
		mode := macModeNames[Mode(code)>>5]
		if mode == "" || code == 0 {
			break // code 0 is the second slot of an ld_imm64: plain 0 reads better
		}
		dst = append(dst, macClassNames[cls]...)
		dst = append(dst, " | "...)
		dst = append(dst, macSizeNames[SizeOf(code)>>3]...)
		dst = append(dst, " | "...)
		return append(dst, mode...)
	case ClassALU, ClassALU64:
		op := macAluOpNames[Op(code)>>4]
		if op == "" {
			break
		}
		dst = append(dst, macClassNames[cls]...)
		dst = append(dst, " | "...)
		dst = append(dst, op...)
		if Source(code) == SrcX {
			return append(dst, " | BPF_X"...)
		}
		return append(dst, " | BPF_K"...)
	default:
		op := Op(code)
		name := macJmpOpNames[op>>4]
		if name == "" {
			break
		}
		dst = append(dst, macClassNames[cls]...)
		dst = append(dst, " | "...)
		dst = append(dst, name...)
		switch {
		case Source(code) == SrcX:
			return append(dst, " | BPF_X"...)
		case op == JmpJA || op == JmpCALL || op == JmpEXIT || op == JmpJCOND:
			return dst // these never take a register operand; selftests omit BPF_K
		}
		return append(dst, " | BPF_K"...)
	}
	dst = append(dst, "0x"...)
	return append(dst, hexDigit(code>>4), hexDigit(code&15))
}

// macAppendReg names a register field of BPF_RAW_INSN; 0 stays 0 because in
// a raw instruction a zero field is more often unused than r0.
func macAppendReg(dst []byte, r uint8) []byte {
	if r != 0 && r <= R10 {
		return append(dst, macRegNames[r]...)
	}
	return strconv.AppendUint(dst, uint64(r), 10)
}

// macSmall bounds the immediates printed in decimal; larger ones are masks,
// addresses or packed characters, which read better in hex.
const macSmall = 4096

// macAppendImm writes a 32-bit immediate: decimal when small, else the hex of
// its 32-bit pattern (C converts it back to the same s32).
func macAppendImm(dst []byte, v int32) []byte {
	if v >= -macSmall && v <= macSmall {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	dst = append(dst, "0x"...)
	return strconv.AppendUint(dst, uint64(uint32(v)), 16)
}

// macAppendImm64 writes the 64-bit constant of an ld_imm64 the same way.
func macAppendImm64(dst []byte, v int64) []byte {
	if v >= -macSmall && v <= macSmall {
		return strconv.AppendInt(dst, v, 10)
	}
	dst = append(dst, "0x"...)
	return strconv.AppendUint(dst, uint64(v), 16)
}
