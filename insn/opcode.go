package insn

// Instruction classes (low 3 bits of the opcode).
const (
	ClassLD    = 0x00
	ClassLDX   = 0x01
	ClassST    = 0x02
	ClassSTX   = 0x03
	ClassALU   = 0x04
	ClassJMP   = 0x05
	ClassJMP32 = 0x06
	ClassALU64 = 0x07
)

// Size field of load/store opcodes.
const (
	SizeW  = 0x00 // 32 bit
	SizeH  = 0x08 // 16 bit
	SizeB  = 0x10 // 8 bit
	SizeDW = 0x18 // 64 bit
)

// Mode field of load/store opcodes.
const (
	ModeIMM    = 0x00
	ModeABS    = 0x20
	ModeIND    = 0x40
	ModeMEM    = 0x60
	ModeMEMSX  = 0x80 // sign-extending load
	ModeATOMIC = 0xc0
)

// Source bit of ALU/JMP opcodes.
const (
	SrcK = 0x00 // immediate operand
	SrcX = 0x08 // register operand
)

// ALU operations (high 4 bits).
const (
	AluADD  = 0x00
	AluSUB  = 0x10
	AluMUL  = 0x20
	AluDIV  = 0x30
	AluOR   = 0x40
	AluAND  = 0x50
	AluLSH  = 0x60
	AluRSH  = 0x70
	AluNEG  = 0x80
	AluMOD  = 0x90
	AluXOR  = 0xa0
	AluMOV  = 0xb0
	AluARSH = 0xc0
	AluEND  = 0xd0 // byte swap; source bit selects to-le/to-be (ALU) or bswap (ALU64)
)

// Jump operations (high 4 bits).
const (
	JmpJA    = 0x00
	JmpJEQ   = 0x10
	JmpJGT   = 0x20
	JmpJGE   = 0x30
	JmpJSET  = 0x40
	JmpJNE   = 0x50
	JmpJSGT  = 0x60
	JmpJSGE  = 0x70
	JmpCALL  = 0x80
	JmpEXIT  = 0x90
	JmpJLT   = 0xa0
	JmpJLE   = 0xb0
	JmpJSLT  = 0xc0
	JmpJSLE  = 0xd0
	JmpJCOND = 0xe0 // may_goto (src_reg = BPF_MAY_GOTO)
)

// Atomic operations, in the imm field of BPF_STX|BPF_ATOMIC.
const (
	AtomicADD      = 0x00
	AtomicOR       = 0x40
	AtomicAND      = 0x50
	AtomicXOR      = 0xa0
	AtomicFETCH    = 0x01
	AtomicXCHG     = 0xe0 | AtomicFETCH
	AtomicCMPXCHG  = 0xf0 | AtomicFETCH
	AtomicLoadAcq  = 0x100
	AtomicStoreRel = 0x110
)

// Pseudo source registers of ld_imm64.
const (
	PseudoMapFD       = 1
	PseudoMapValue    = 2
	PseudoBTFID       = 3
	PseudoFunc        = 4
	PseudoMapIdx      = 5
	PseudoMapIdxValue = 6
)

// Pseudo source registers of BPF_CALL.
const (
	PseudoCall      = 1 // bpf-to-bpf call, imm is the relative slot offset
	PseudoKfuncCall = 2 // kernel function, imm is a BTF id
)

// MayGoto is the src_reg of a JCOND jump meaning may_goto.
const MayGoto = 0

// Register numbers.
const (
	R0  = 0
	R1  = 1
	R10 = 10 // frame pointer (read only)
)

// Class returns the instruction class of an opcode.
func Class(code uint8) uint8 { return code & 0x07 }
