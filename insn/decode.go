package insn

import (
	"fmt"
	"slices"
	"strconv"
)

// Decode splits raw into instructions. It never fails: whatever is wrong (a
// trailing partial slot, a truncated ld_imm64, unknown opcodes, reserved fields
// set, registers above r10) is reported as a Problem at its slot index and byte
// offset, and decoding goes on with the next slot. Every input slot ends up in
// exactly one Instruction, so re-encoding the result reproduces the complete
// slots of raw byte for byte.
func Decode(raw []byte) ([]Instruction, []Problem) {
	ins, probs, _ := DecodeCapped(raw, -1)
	return ins, probs
}

// DecodeCapped is Decode keeping at most maxProblems problems (all when
// negative); total counts them all. A dump of garbage then costs memory in
// proportion to its size, not a message per slot.
func DecodeCapped(raw []byte, maxProblems int) (ins []Instruction, probs []Problem, total int) {
	return decodeAppend(make([]Instruction, 0, len(raw)/Size), raw, maxProblems)
}

// DecodeAppend is Decode appending the instructions to dst[:0], for a
// caller that decodes many programs and reuses one buffer (the agent
// decodes every load: a fresh slice per load was most of its garbage).
// The result aliases dst when it has room.
func DecodeAppend(dst []Instruction, raw []byte) ([]Instruction, []Problem) {
	ins, probs, _ := decodeAppend(dst[:0], raw, -1)
	return ins, probs
}

func decodeAppend(out []Instruction, raw []byte, maxProblems int) (ins []Instruction, probs []Problem, total int) {
	n := len(raw) / Size
	out = slices.Grow(out, n)
	var scratch []Problem
	keep := func(p []Problem) {
		total += len(p)
		for _, pr := range p {
			if maxProblems < 0 || len(probs) < maxProblems {
				probs = append(probs, pr)
			}
		}
	}
	for i := 0; i < n; i++ {
		ins := Instruction{Index: i, Slot: DecodeSlot(raw[i*Size:])}
		if ins.Code == OpLdImm64 {
			if i+1 < n {
				ins.Wide = true
				ins.Next = DecodeSlot(raw[(i+1)*Size:])
			} else {
				keep([]Problem{{Index: i, Offset: i * Size, Msg: "ld_imm64 truncated: second slot missing"}})
			}
		}
		scratch = ins.check(scratch[:0])
		keep(scratch)
		out = append(out, ins)
		if ins.Wide {
			i++
		}
	}
	if rem := len(raw) % Size; rem != 0 {
		keep([]Problem{{Index: -1, Offset: n * Size, Msg: "trailing partial instruction of " + strconv.Itoa(rem) + " bytes (length is not a multiple of 8)"}})
	}
	return out, probs, total
}

// OpLdImm64 is the opcode of the 16-byte load of a 64-bit immediate (BPF_LD|BPF_IMM|BPF_DW).
const OpLdImm64 = 0x18

// Check returns what is wrong with one instruction on its own: an encoding no
// kernel defines, reserved fields set, registers above r10. It applies the
// rules of the kernel's verifier that need no program context (not jump
// targets, register types or helper prototypes). Decode calls it for every
// instruction; nil means the instruction is well formed.
func (i Instruction) Check() []Problem { return i.check(nil) }

func (i Instruction) check(probs []Problem) []Problem {
	add := func(format string, args ...any) {
		probs = append(probs, Problem{Index: i.Index, Offset: i.Index * Size, Msg: fmt.Sprintf("(%02x) ", i.Code) + fmt.Sprintf(format, args...)})
	}
	k := i.Kind()
	if k == KindInvalid {
		add("unknown opcode: %s", describeInvalid(i))
		return probs
	}
	// Which fields carry meaning for this kind; everything else is reserved
	// and must be zero, as the verifier's check_* functions demand.
	dst, src, off, imm := true, true, true, true
	code := i.Code
	switch {
	case k == KindToLE || k == KindToBE || k == KindBswap:
		src, off = false, false
		if i.Imm != 16 && i.Imm != 32 && i.Imm != 64 {
			add("byte swap width %d (want 16, 32 or 64)", i.Imm)
		}
	case k == KindNeg:
		src, off, imm = false, false, false
	case k == KindMovSX:
		imm = false
	case k == KindAddrSpaceCast:
		if i.Imm != 1 && i.Imm != 1<<16 {
			add("addr_space_cast address spaces %d -> %d (want 1 -> 0 or 0 -> 1)", uint32(i.Imm)>>16, uint16(i.Imm))
		}
	case k == KindMovPercpu:
		imm = false
		add("kernel-internal per-CPU address move (only in translated programs)")
	case k == KindSDiv || k == KindSMod:
		if Source(code) == SrcX {
			imm = false
		} else {
			src = false
		}
	case k >= KindAdd && k <= KindArsh:
		off = false
		if Source(code) == SrcX {
			imm = false
		} else {
			src = false
			if k == KindLsh || k == KindRsh || k == KindArsh {
				width := int32(64)
				if Class(code) == ClassALU {
					width = 32
				}
				if i.Imm < 0 || i.Imm >= width {
					add("shift by %d out of range 0..%d", i.Imm, width-1)
				}
			}
		}
	case k == KindLdImm64:
		off = false
		src = false // src carries the pseudo source, checked here
		if i.Src > PseudoMapIdxValue {
			add("ld_imm64 with unknown pseudo source %d", i.Src)
		}
		if i.Wide {
			if n := i.Next; n.Code != 0 || n.Dst != 0 || n.Src != 0 || n.Off != 0 {
				probs = append(probs, Problem{Index: i.Index + 1, Offset: (i.Index + 1) * Size,
					Msg: fmt.Sprintf("second slot of ld_imm64 has reserved fields set (code %#02x dst %d src %d off %d)", n.Code, n.Dst, n.Src, n.Off)})
			}
			// For a BTF id the upper half names the BTF object's fd, and
			// map values carry their offset there.
			if (i.Src == PseudoMapFD || i.Src == PseudoMapIdx) && i.Next.Imm != 0 {
				add("ld_imm64 pseudo source %d with nonzero upper immediate %d", i.Src, i.Next.Imm)
			}
		}
	case k == KindLdAbs:
		dst, src, off = false, false, false
	case k == KindLdInd:
		dst, off = false, false
	case k == KindLdx || k == KindLdxSX:
		imm = false
	case k == KindSt:
		src = false
	case k == KindStx:
		imm = false
	case k == KindNospec:
		dst, src, off, imm = false, false, false, false
		add("kernel-internal nospec (only in translated programs)")
	case k.IsAtomic():
		// imm selects the operation and was validated by Kind.
	case k == KindJa:
		dst, src, imm = false, false, false
	case k == KindGotol:
		dst, src, off = false, false, false
	case k == KindMayGoto:
		dst, src, imm = false, false, false
	case k == KindCall:
		dst, src, off = false, false, false
	case k == KindCallLocal:
		dst, src, off = false, false, false
	case k == KindCallKfunc:
		// off selects the BTF object (0 = vmlinux, else an fd_array index).
		dst, src = false, false
	case k == KindExit:
		dst, src, off, imm = false, false, false, false
	default: // conditional jumps
		if Source(code) == SrcX {
			imm = false
		} else {
			src = false
		}
	}
	if !dst && i.Dst != 0 {
		add("reserved dst_reg field set to %d", i.Dst)
	}
	if !src && i.Src != 0 && k != KindLdImm64 && !k.IsCall() {
		add("reserved src_reg field set to %d", i.Src)
	}
	if !off && i.Off != 0 {
		add("reserved off field set to %d", i.Off)
	}
	if !imm && i.Imm != 0 {
		add("reserved imm field set to %d", i.Imm)
	}
	if dst && i.Dst > R10 {
		add("dst_reg r%d does not exist (max r10)", i.Dst)
	}
	if src && i.Src > R10 {
		add("src_reg r%d does not exist (max r10)", i.Src)
	}
	return probs
}

// describeInvalid says which part of an undefined encoding is unknown.
func describeInvalid(i Instruction) string {
	code := i.Code
	cls := ClassName(code)
	switch Class(code) {
	case ClassALU, ClassALU64:
		switch {
		case Op(code) >= 0xe0:
			return fmt.Sprintf("%s operation %#02x", cls, Op(code))
		case Op(code) == AluEND:
			return "alu64 byte swap with register source"
		case Op(code) == AluNEG:
			return cls + " neg with register source"
		}
	case ClassLD:
		if Mode(code) == ModeIMM && SizeOf(code) != SizeDW {
			return fmt.Sprintf("ld imm of size %s (only 64-bit ld_imm64 exists)", sizeName(code))
		}
		if (Mode(code) == ModeABS || Mode(code) == ModeIND) && SizeOf(code) == SizeDW {
			return "64-bit ld_abs/ld_ind"
		}
		return fmt.Sprintf("ld mode %#02x", Mode(code))
	case ClassLDX:
		if Mode(code) == ModeMEMSX {
			return "sign-extending 64-bit load"
		}
		return fmt.Sprintf("ldx mode %#02x", Mode(code))
	case ClassST:
		return fmt.Sprintf("st mode %#02x", Mode(code))
	case ClassSTX:
		if Mode(code) == ModeATOMIC {
			return fmt.Sprintf("atomic operation %#x on %s", i.Imm, sizeName(code))
		}
		return fmt.Sprintf("stx mode %#02x", Mode(code))
	default:
		switch op := Op(code); {
		case op == JmpCALL && Class(code) == ClassJMP && Source(code) == SrcK:
			return fmt.Sprintf("call with src_reg %d (want 0 helper, 1 sub-program, 2 kfunc)", i.Src)
		case op == JmpJCOND && Class(code) == ClassJMP && Source(code) == SrcK:
			return fmt.Sprintf("conditional pseudo-jump with src_reg %d (only 0, may_goto, exists)", i.Src)
		case op == JmpCALL || op == JmpEXIT || op == JmpJA || op == JmpJCOND:
			return fmt.Sprintf("%s %s with %s source", cls, jmpOpName(op), srcName(code))
		default:
			return fmt.Sprintf("%s operation %#02x", cls, op)
		}
	}
	return fmt.Sprintf("%#02x", code)
}

func sizeName(code uint8) string {
	return [4]string{"u32", "u16", "u8", "u64"}[SizeOf(code)>>3]
}

func srcName(code uint8) string {
	if Source(code) == SrcX {
		return "register"
	}
	return "immediate"
}

func jmpOpName(op uint8) string {
	switch op {
	case JmpCALL:
		return "call"
	case JmpEXIT:
		return "exit"
	case JmpJA:
		return "ja"
	}
	return "jcond"
}
