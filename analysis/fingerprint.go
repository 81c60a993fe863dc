package analysis

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// Fingerprint is the sha256 (hex) of the instructions with every field that
// the loader or the kernel fills per load set to zero, so the same program
// gets the same fingerprint whether it comes from its ELF object (relocations
// unfilled) or is captured at load time with real fds and ids:
//
//   - ld_imm64 of a map (BPF_PSEUDO_MAP_FD, _MAP_VALUE, _MAP_IDX,
//     _MAP_IDX_VALUE): the first slot's imm (fd or fd_array index). The value
//     offset in the second slot is kept.
//   - ld_imm64 of a kernel variable (BPF_PSEUDO_BTF_ID): both imms (BTF id,
//     BTF object fd).
//   - kfunc calls (BPF_PSEUDO_KFUNC_CALL): imm (BTF id) and off (fd_array
//     index); the Kfuncs list of the Report names them instead.
//
// Everything else, including helper ids and bpf-to-bpf call offsets, is
// hashed as is, one 8-byte little-endian slot after another. Trailing bytes
// that do not fill a slot are not hashed.
func Fingerprint(ins []insn.Instruction) string {
	h := sha256.New()
	// Slots are put into a fixed buffer in place: no copy of each
	// Instruction (40 bytes) and no append growth checks, which were most of
	// the fingerprint's cost on a program of a thousand instructions.
	var buf [16 * 1024]byte
	n := 0
	for i := range ins {
		in := &ins[i]
		imm, off := in.Imm, in.Off
		var nextImm int32
		if in.Wide {
			nextImm = in.Next.Imm
		}
		switch {
		case in.Wide && in.Code == insn.OpLdImm64:
			switch in.Src {
			case insn.PseudoMapFD, insn.PseudoMapValue, insn.PseudoMapIdx, insn.PseudoMapIdxValue:
				imm = 0
			case insn.PseudoBTFID:
				imm, nextImm = 0, 0
			}
		case in.Code == insn.ClassJMP|insn.JmpCALL && in.Src == insn.PseudoKfuncCall:
			imm, off = 0, 0
		}
		putSlot(buf[n:n+8], in.Code, in.Dst, in.Src, off, imm)
		n += 8
		if in.Wide {
			putSlot(buf[n:n+8], in.Next.Code, in.Next.Dst, in.Next.Src, in.Next.Off, nextImm)
			n += 8
		}
		if n > len(buf)-16 {
			h.Write(buf[:n])
			n = 0
		}
	}
	h.Write(buf[:n])
	return hex.EncodeToString(h.Sum(nil))
}

// putSlot encodes one slot as insn.Slot.Append does, into b[:8].
func putSlot(b []byte, code, dst, src uint8, off int16, imm int32) {
	_ = b[7]
	b[0] = code
	b[1] = dst&0x0f | src<<4
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
}
