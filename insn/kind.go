package insn

//go:generate go tool stringer -type=Kind -linecomment -output=kind_string.go

// Kind is what an instruction does, decided from all of its fields (opcode,
// src_reg, off and imm), the way the kernel tells e.g. sdiv from div (off=1)
// or a kfunc call from a helper call (src_reg=2). Names are the short
// mnemonics used by the JSON form and the analysis.
type Kind uint8

const (
	KindInvalid Kind = iota // invalid

	// ALU and ALU64 (the class tells the width).
	KindAdd           // add
	KindSub           // sub
	KindMul           // mul
	KindDiv           // div
	KindSDiv          // sdiv
	KindOr            // or
	KindAnd           // and
	KindLsh           // lsh
	KindRsh           // rsh
	KindNeg           // neg
	KindMod           // mod
	KindSMod          // smod
	KindXor           // xor
	KindMov           // mov
	KindMovSX         // movsx
	KindArsh          // arsh
	KindToLE          // le
	KindToBE          // be
	KindBswap         // bswap
	KindAddrSpaceCast // addr_space_cast
	// KindMovPercpu only appears in translated programs: the kernel
	// inlines per-CPU helpers with it.
	KindMovPercpu // mov_percpu_addr

	// Loads and stores.
	KindLdImm64 // ld_imm64
	KindLdAbs   // ld_abs
	KindLdInd   // ld_ind
	KindLdx     // ldx
	KindLdxSX   // ldxsx
	KindSt      // st
	KindStx     // stx
	// KindNospec only appears in translated programs (a speculation
	// barrier the verifier inserts).
	KindNospec // nospec

	// Atomics (BPF_STX | BPF_ATOMIC, operation in imm).
	KindAtomicAdd      // atomic_add
	KindAtomicOr       // atomic_or
	KindAtomicAnd      // atomic_and
	KindAtomicXor      // atomic_xor
	KindAtomicFetchAdd // atomic_fetch_add
	KindAtomicFetchOr  // atomic_fetch_or
	KindAtomicFetchAnd // atomic_fetch_and
	KindAtomicFetchXor // atomic_fetch_xor
	KindAtomicXchg     // atomic_xchg
	KindAtomicCmpxchg  // atomic_cmpxchg
	KindLoadAcquire    // load_acquire
	KindStoreRelease   // store_release

	// Jumps and calls (JMP and JMP32).
	KindJa             // ja
	KindGotol          // gotol
	KindJeq            // jeq
	KindJgt            // jgt
	KindJge            // jge
	KindJset           // jset
	KindJne            // jne
	KindJsgt           // jsgt
	KindJsge           // jsge
	KindJlt            // jlt
	KindJle            // jle
	KindJslt           // jslt
	KindJsle           // jsle
	KindCall           // call
	KindCallLocal      // call_local
	KindCallKfunc      // call_kfunc
	KindExit           // exit
	KindMayGoto        // may_goto
	numKinds      Kind = iota
)

// IsJump reports whether the instruction may transfer control within the
// program (conditional and unconditional jumps, may_goto; not calls or exit).
func (k Kind) IsJump() bool {
	return k == KindJa || k == KindGotol || k == KindMayGoto || (k >= KindJeq && k <= KindJsle)
}

// IsCall reports whether the instruction is a call of any kind.
func (k Kind) IsCall() bool { return k == KindCall || k == KindCallLocal || k == KindCallKfunc }

// IsAtomic reports whether the instruction is a BPF_ATOMIC operation.
func (k Kind) IsAtomic() bool { return k >= KindAtomicAdd && k <= KindStoreRelease }

var aluKinds = [16]Kind{
	AluADD >> 4: KindAdd, AluSUB >> 4: KindSub, AluMUL >> 4: KindMul, AluDIV >> 4: KindDiv,
	AluOR >> 4: KindOr, AluAND >> 4: KindAnd, AluLSH >> 4: KindLsh, AluRSH >> 4: KindRsh,
	AluNEG >> 4: KindNeg, AluMOD >> 4: KindMod, AluXOR >> 4: KindXor, AluMOV >> 4: KindMov,
	AluARSH >> 4: KindArsh,
}

var jmpKinds = [16]Kind{
	JmpJEQ >> 4: KindJeq, JmpJGT >> 4: KindJgt, JmpJGE >> 4: KindJge, JmpJSET >> 4: KindJset,
	JmpJNE >> 4: KindJne, JmpJSGT >> 4: KindJsgt, JmpJSGE >> 4: KindJsge, JmpJLT >> 4: KindJlt,
	JmpJLE >> 4: KindJle, JmpJSLT >> 4: KindJslt, JmpJSLE >> 4: KindJsle,
}

// Op returns the BPF_OP bits (high nibble) of an ALU or JMP opcode.
func Op(code uint8) uint8 { return code & 0xf0 }

// Mode returns the BPF_MODE bits of a load/store opcode.
func Mode(code uint8) uint8 { return code & 0xe0 }

// SizeOf returns the BPF_SIZE bits of a load/store opcode.
func SizeOf(code uint8) uint8 { return code & 0x18 }

// Source returns the BPF_SRC bit of an ALU or JMP opcode (SrcK or SrcX).
func Source(code uint8) uint8 { return code & 0x08 }

// Kind classifies the instruction. It does not check reserved fields (Decode
// reports those); an encoding no kernel defines is KindInvalid.
func (i Instruction) Kind() Kind {
	code := i.Code
	switch Class(code) {
	case ClassALU, ClassALU64:
		op := Op(code)
		alu64 := Class(code) == ClassALU64
		switch op {
		case AluEND:
			if alu64 {
				if Source(code) == SrcK {
					return KindBswap
				}
				return KindInvalid
			}
			if Source(code) == SrcX {
				return KindToBE
			}
			return KindToLE
		case AluDIV, AluMOD:
			if i.Off == 1 {
				if op == AluDIV {
					return KindSDiv
				}
				return KindSMod
			}
		case AluMOV:
			if Source(code) == SrcX {
				switch {
				case i.Off == 8 || i.Off == 16 || (i.Off == 32 && alu64):
					return KindMovSX
				case alu64 && i.Off == 1:
					return KindAddrSpaceCast
				case alu64 && i.Off == -1:
					return KindMovPercpu
				}
			}
		case AluNEG:
			if Source(code) == SrcX {
				return KindInvalid
			}
		case 0xe0, 0xf0:
			return KindInvalid
		}
		return aluKinds[op>>4]
	case ClassLD:
		switch Mode(code) {
		case ModeIMM:
			if SizeOf(code) == SizeDW {
				return KindLdImm64
			}
		case ModeABS:
			if SizeOf(code) != SizeDW {
				return KindLdAbs
			}
		case ModeIND:
			if SizeOf(code) != SizeDW {
				return KindLdInd
			}
		}
		return KindInvalid
	case ClassLDX:
		switch Mode(code) {
		case ModeMEM:
			return KindLdx
		case ModeMEMSX:
			if SizeOf(code) != SizeDW {
				return KindLdxSX
			}
		}
		return KindInvalid
	case ClassST:
		switch Mode(code) {
		case ModeMEM:
			return KindSt
		case ModeATOMIC: // BPF_NOSPEC shares the mode bits; only the kernel emits it
			return KindNospec
		}
		return KindInvalid
	case ClassSTX:
		switch Mode(code) {
		case ModeMEM:
			return KindStx
		case ModeATOMIC:
			return atomicKind(code, i.Imm)
		}
		return KindInvalid
	default: // ClassJMP, ClassJMP32
		jmp32 := Class(code) == ClassJMP32
		switch op := Op(code); op {
		case JmpJA:
			if Source(code) == SrcX {
				return KindInvalid
			}
			if jmp32 {
				return KindGotol
			}
			return KindJa
		case JmpCALL:
			if jmp32 || Source(code) == SrcX {
				return KindInvalid
			}
			switch i.Src {
			case 0:
				return KindCall
			case PseudoCall:
				return KindCallLocal
			case PseudoKfuncCall:
				return KindCallKfunc
			}
			return KindInvalid
		case JmpEXIT:
			if jmp32 || Source(code) == SrcX {
				return KindInvalid
			}
			return KindExit
		case JmpJCOND:
			if !jmp32 && Source(code) == SrcK && i.Src == MayGoto {
				return KindMayGoto
			}
			return KindInvalid
		case 0xf0:
			return KindInvalid
		default:
			return jmpKinds[op>>4]
		}
	}
}

func atomicKind(code uint8, imm int32) Kind {
	size := SizeOf(code)
	switch imm {
	case AtomicLoadAcq:
		return KindLoadAcquire
	case AtomicStoreRel:
		return KindStoreRelease
	}
	// Read-modify-write atomics exist for 32 and 64 bits only.
	if size != SizeW && size != SizeDW {
		return KindInvalid
	}
	switch imm {
	case AtomicADD:
		return KindAtomicAdd
	case AtomicOR:
		return KindAtomicOr
	case AtomicAND:
		return KindAtomicAnd
	case AtomicXOR:
		return KindAtomicXor
	case AtomicADD | AtomicFETCH:
		return KindAtomicFetchAdd
	case AtomicOR | AtomicFETCH:
		return KindAtomicFetchOr
	case AtomicAND | AtomicFETCH:
		return KindAtomicFetchAnd
	case AtomicXOR | AtomicFETCH:
		return KindAtomicFetchXor
	case AtomicXCHG:
		return KindAtomicXchg
	case AtomicCMPXCHG:
		return KindAtomicCmpxchg
	}
	return KindInvalid
}

var classNames = [8]string{"ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64"}

// ClassName is the kernel's name of the instruction class ("alu64", "jmp32", …).
func ClassName(code uint8) string { return classNames[Class(code)] }
