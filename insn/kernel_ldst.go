package insn

import "strconv"

// Tables as in disasm.c; a missing entry prints "(null)" there because the
// kernel's vsnprintf renders a NULL %s that way.
var (
	ldstString = [4]string{"u32", "u16", "u8", "u64"}
	ldsxString = [4]string{"s32", "s16", "s8", "(null)"}
)

// appendSTX formats the STX class: stores from a register and the atomics.
func appendSTX(dst []byte, ins Instruction, modern bool) []byte {
	code := ins.Code
	size := ldstString[SizeOf(code)>>3]
	switch Mode(code) {
	case ModeMEM:
		dst = appendMem(dst, size, ins.Dst, ins.Off)
		dst = append(dst, " = "...)
		return appendReg(dst, 'r', ins.Src)
	case ModeATOMIC:
		if out, ok := appendAtomic(dst, ins, size, modern); ok {
			return out
		}
	}
	dst = append(dst[:len(dst)-5], "BUG_"...)
	return appendHex2(dst, code)
}

// appendAtomic formats the atomic operations of STX (lock add, fetch,
// cmpxchg, xchg, load-acquire and store-release); false for an atomic
// operation the kernel's disassembler does not know, dst unchanged.
func appendAtomic(dst []byte, ins Instruction, size string, modern bool) ([]byte, bool) {
	code := ins.Code
	switch {
	case ins.Imm == AtomicADD || ins.Imm == AtomicAND || ins.Imm == AtomicOR || ins.Imm == AtomicXOR:
		dst = append(dst, "lock "...)
		dst = appendMem(dst, size, ins.Dst, ins.Off)
		dst = append(dst, ' ')
		dst = append(dst, aluStrings[(ins.Imm&0xf0)>>4]...)
		dst = append(dst, ' ')
		return appendReg(dst, 'r', ins.Src), true
	case ins.Imm == AtomicADD|AtomicFETCH || ins.Imm == AtomicAND|AtomicFETCH ||
		ins.Imm == AtomicOR|AtomicFETCH || ins.Imm == AtomicXOR|AtomicFETCH:
		dst = appendReg(dst, 'r', ins.Src)
		dst = append(dst, " = atomic"...)
		if SizeOf(code) == SizeDW {
			dst = append(dst, "64"...)
		}
		dst = append(dst, "_fetch_"...)
		switch ins.Imm &^ AtomicFETCH {
		case AtomicADD:
			dst = append(dst, "add"...)
		case AtomicAND:
			dst = append(dst, "and"...)
		case AtomicOR:
			dst = append(dst, "or"...)
		default:
			dst = append(dst, "xor"...)
		}
		dst = append(dst, "(("...)
		dst = appendMemInner(dst, size, ins.Dst, ins.Off)
		dst = append(dst, ", "...)
		dst = appendReg(dst, 'r', ins.Src)
		return append(dst, ')'), true
	case ins.Imm == AtomicCMPXCHG:
		dst = append(dst, "r0 = atomic"...)
		if SizeOf(code) == SizeDW {
			dst = append(dst, "64"...)
		}
		dst = append(dst, "_cmpxchg(("...)
		dst = appendMemInner(dst, size, ins.Dst, ins.Off)
		dst = append(dst, ", r0, "...)
		dst = appendReg(dst, 'r', ins.Src)
		return append(dst, ')'), true
	case ins.Imm == AtomicXCHG:
		dst = appendReg(dst, 'r', ins.Src)
		dst = append(dst, " = atomic"...)
		if SizeOf(code) == SizeDW {
			dst = append(dst, "64"...)
		}
		dst = append(dst, "_xchg(("...)
		dst = appendMemInner(dst, size, ins.Dst, ins.Off)
		dst = append(dst, ", "...)
		dst = appendReg(dst, 'r', ins.Src)
		return append(dst, ')'), true
	case modern && ins.Imm == AtomicLoadAcq:
		dst = appendReg(dst, 'r', ins.Dst)
		dst = append(dst, " = load_acquire(("...)
		dst = appendMemInner(dst, size, ins.Src, ins.Off)
		return append(dst, ')'), true
	case modern && ins.Imm == AtomicStoreRel:
		dst = append(dst, "store_release(("...)
		dst = appendMemInner(dst, size, ins.Dst, ins.Off)
		dst = append(dst, ", "...)
		dst = appendReg(dst, 'r', ins.Src)
		return append(dst, ')'), true
	}
	return dst, false
}

// appendST formats the ST class: stores of an immediate (and nospec).
func appendST(dst []byte, ins Instruction, modern bool) []byte {
	code := ins.Code
	switch {
	case Mode(code) == ModeMEM:
		dst = appendMem(dst, ldstString[SizeOf(code)>>3], ins.Dst, ins.Off)
		dst = append(dst, " = "...)
		return strconv.AppendInt(dst, int64(ins.Imm), 10)
	case modern && Mode(code) == ModeATOMIC:
		return append(dst, "nospec"...)
	}
	dst = append(dst[:len(dst)-5], "BUG_st_"...)
	return appendHex2(dst, code)
}

// appendLDX formats the LDX class: loads, sign-extending or not.
func appendLDX(dst []byte, ins Instruction, modern bool) []byte {
	code := ins.Code
	var size string
	switch {
	case Mode(code) == ModeMEM:
		size = ldstString[SizeOf(code)>>3]
	case modern && Mode(code) == ModeMEMSX:
		size = ldsxString[SizeOf(code)>>3]
	default:
		dst = append(dst[:len(dst)-5], "BUG_ldx_"...)
		return appendHex2(dst, code)
	}
	dst = appendReg(dst, 'r', ins.Dst)
	dst = append(dst, " = "...)
	return appendMem(dst, size, ins.Src, ins.Off)
}

// appendLD formats the LD class: the legacy packet loads and the 64-bit
// immediate (with its map and BTF pseudo sources, through Imm64Text).
func (f *KernelFormatter) appendLD(dst []byte, ins Instruction) []byte {
	code := ins.Code
	size := ldstString[SizeOf(code)>>3]
	switch {
	case Mode(code) == ModeABS:
		dst = append(dst, "r0 = *("...)
		dst = append(dst, size...)
		dst = append(dst, " *)skb["...)
		dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
		return append(dst, ']')
	case Mode(code) == ModeIND:
		dst = append(dst, "r0 = *("...)
		dst = append(dst, size...)
		dst = append(dst, " *)skb["...)
		dst = appendReg(dst, 'r', ins.Src)
		dst = append(dst, " + "...)
		dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
		return append(dst, ']')
	case code == OpLdImm64:
		imm := uint64(ins.Imm64())
		if f.HidePointers && (ins.Src == PseudoMapFD || ins.Src == PseudoMapValue) {
			imm = 0
		}
		dst = appendReg(dst, 'r', ins.Dst)
		dst = append(dst, " = "...)
		if f.Imm64Text != nil {
			if s := f.Imm64Text(ins, imm); s != "" {
				return append(dst, s...)
			}
		}
		dst = append(dst, "0x"...)
		return strconv.AppendUint(dst, imm, 16)
	}
	dst = append(dst[:len(dst)-5], "BUG_ld_"...)
	return appendHex2(dst, code)
}

// appendMem appends "*(u32 *)(r1 -8)".
func appendMem(dst []byte, size string, reg uint8, off int16) []byte {
	dst = append(dst, "*("...)
	return appendMemInner(dst, size, reg, off)
}

// appendMemInner appends "u32 *)(r1 -8)", the part after the opening "(" of
// the cast, shared by plain accesses and atomics.
func appendMemInner(dst []byte, size string, reg uint8, off int16) []byte {
	dst = append(dst, size...)
	dst = append(dst, " *)("...)
	dst = appendReg(dst, 'r', reg)
	dst = append(dst, ' ')
	dst = appendSigned(dst, int64(off))
	return append(dst, ')')
}
