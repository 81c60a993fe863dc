package insn

import (
	"encoding/binary"
	"fmt"
)

// Size is the size in bytes of one instruction slot.
const Size = 8

// MaxInstructions is the kernel's limit on instruction slots per program
// (BPF_COMPLEXITY_LIMIT_INSNS).
const MaxInstructions = 1_000_000

// Slot is one 8-byte instruction slot exactly as encoded (little-endian).
type Slot struct {
	Code uint8
	Dst  uint8 // low nibble of the register byte
	Src  uint8 // high nibble of the register byte
	Off  int16
	Imm  int32
}

// DecodeSlot reads one little-endian slot from b, which must hold at least Size bytes.
func DecodeSlot(b []byte) Slot {
	return Slot{
		Code: b[0],
		Dst:  b[1] & 0x0f,
		Src:  b[1] >> 4,
		Off:  int16(binary.LittleEndian.Uint16(b[2:4])),
		Imm:  int32(binary.LittleEndian.Uint32(b[4:8])),
	}
}

// Append encodes s in little-endian order and appends it to b.
func (s Slot) Append(b []byte) []byte {
	b = append(b, s.Code, s.Dst&0x0f|s.Src<<4)
	b = binary.LittleEndian.AppendUint16(b, uint16(s.Off))
	return binary.LittleEndian.AppendUint32(b, uint32(s.Imm))
}

// Instruction is one decoded instruction. A 16-byte ld_imm64 is one Instruction
// whose Wide flag is set and whose second slot is in Next.
type Instruction struct {
	Index int  // slot index of the first slot in the stream
	Slot       // first (or only) slot
	Wide  bool // ld_imm64: Next holds the second slot
	Next  Slot
}

// Imm64 is the 64-bit constant of an ld_imm64 (low 32 bits from the first slot,
// high 32 bits from the second); for other instructions the sign-extended Imm.
func (i Instruction) Imm64() int64 {
	if i.Wide {
		return int64(uint64(uint32(i.Imm)) | uint64(uint32(i.Next.Imm))<<32)
	}
	return int64(i.Imm)
}

// Slots is the number of 8-byte slots the instruction occupies.
func (i Instruction) Slots() int {
	if i.Wide {
		return 2
	}
	return 1
}

// Append encodes the instruction (one or two slots) and appends it to b.
func (i Instruction) Append(b []byte) []byte {
	b = i.Slot.Append(b)
	if i.Wide {
		b = i.Next.Append(b)
	}
	return b
}

// Problem is something wrong found while decoding; decoding continues past it.
type Problem struct {
	Index  int // instruction slot index (-1 when only the byte offset is meaningful)
	Offset int // byte offset in the stream
	Msg    string
}

func (p Problem) Error() string {
	if p.Index < 0 {
		return fmt.Sprintf("byte %d: %s", p.Offset, p.Msg)
	}
	return fmt.Sprintf("insn %d (byte %d): %s", p.Index, p.Offset, p.Msg)
}
