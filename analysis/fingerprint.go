package analysis

import (
	"crypto/sha256"
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
	buf := make([]byte, 0, 16*1024)
	for _, in := range ins {
		in = normalise(in)
		buf = in.Append(buf)
		if len(buf) >= cap(buf)-16 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}

func normalise(in insn.Instruction) insn.Instruction {
	switch {
	case in.Wide && in.Code == insn.OpLdImm64:
		switch in.Src {
		case insn.PseudoMapFD, insn.PseudoMapValue, insn.PseudoMapIdx, insn.PseudoMapIdxValue:
			in.Imm = 0
		case insn.PseudoBTFID:
			in.Imm = 0
			in.Next.Imm = 0
		}
	case in.Code == insn.ClassJMP|insn.JmpCALL && in.Src == insn.PseudoKfuncCall:
		in.Imm = 0
		in.Off = 0
	}
	return in
}
