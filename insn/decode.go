package insn

// Decode splits raw into instructions. It never fails: whatever is wrong (a
// trailing partial slot, a truncated ld_imm64, unknown opcodes, reserved fields
// set) is reported as a Problem at its slot index and byte offset, and decoding
// goes on with the next slot.
func Decode(raw []byte) ([]Instruction, []Problem) {
	n := len(raw) / Size
	out := make([]Instruction, 0, n)
	var probs []Problem
	for i := 0; i < n; i++ {
		ins := Instruction{Index: i, Slot: DecodeSlot(raw[i*Size:])}
		if ins.Code == OpLdImm64 {
			if i+1 < n {
				ins.Wide = true
				ins.Next = DecodeSlot(raw[(i+1)*Size:])
			} else {
				probs = append(probs, Problem{Index: i, Offset: i * Size, Msg: "ld_imm64 truncated: second slot missing"})
			}
		}
		out = append(out, ins)
		if ins.Wide {
			i++
		}
	}
	if rem := len(raw) % Size; rem != 0 {
		probs = append(probs, Problem{Index: -1, Offset: n * Size, Msg: "trailing partial instruction of " + itoa(rem) + " bytes (length is not a multiple of 8)"})
	}
	return out, probs
}

// OpLdImm64 is the opcode of the 16-byte load of a 64-bit immediate (BPF_LD|BPF_IMM|BPF_DW).
const OpLdImm64 = 0x18

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
