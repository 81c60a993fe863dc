package analysis

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// fingerprintByAppend is Fingerprint written the plain way: copy each
// instruction, zero what the loader or the kernel fills, re-encode it with
// insn.Instruction.Append and hash the result. Fingerprint must give the
// same digest for every stream.
func fingerprintByAppend(ins []insn.Instruction) string {
	var b []byte
	for _, in := range ins {
		switch {
		case in.Wide && in.Code == insn.OpLdImm64:
			switch in.Src {
			case insn.PseudoMapFD, insn.PseudoMapValue, insn.PseudoMapIdx, insn.PseudoMapIdxValue:
				in.Imm = 0
			case insn.PseudoBTFID:
				in.Imm, in.Next.Imm = 0, 0
			}
		case in.Code == insn.ClassJMP|insn.JmpCALL && in.Src == insn.PseudoKfuncCall:
			in.Imm, in.Off = 0, 0
		}
		b = in.Append(b)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// FuzzFingerprintIsTheHashOfTheNormalisedSlots decodes any bytes and checks
// Fingerprint against the plain re-encoding, across its buffer's flush
// boundary too (the seeds include programs of 2,047 to 2,049 wide loads).
func FuzzFingerprintIsTheHashOfTheNormalisedSlots(f *testing.F) {
	slot := func(code, regs byte, off int16, imm int32) []byte {
		b := []byte{code, regs, 0, 0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint16(b[2:], uint16(off))
		binary.LittleEndian.PutUint32(b[4:], uint32(imm))
		return b
	}
	var mixed []byte
	for _, src := range []byte{insn.PseudoMapFD, insn.PseudoMapValue, insn.PseudoMapIdx, insn.PseudoMapIdxValue, insn.PseudoBTFID, insn.PseudoFunc, 0} {
		mixed = append(mixed, slot(insn.OpLdImm64, 1|src<<4, 0, 7)...)
		mixed = append(mixed, slot(0, 0, 0, 9)...)
	}
	mixed = append(mixed, slot(insn.ClassJMP|insn.JmpCALL, insn.PseudoKfuncCall<<4, 3, 1234)...)
	mixed = append(mixed, slot(insn.ClassJMP|insn.JmpCALL, 0, 0, 6)...)
	mixed = append(mixed, slot(0x95, 0, 0, 0)...)
	f.Add(mixed)
	for _, n := range []int{2047, 2048, 2049} {
		var big []byte
		for i := range n {
			big = append(big, slot(insn.OpLdImm64, 1|insn.PseudoMapFD<<4, 0, int32(i))...)
			big = append(big, slot(0, 0, 0, int32(i))...)
		}
		f.Add(big)
	}
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 8*5000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	f.Add(random)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ins, _ := insn.Decode(raw)
		if got, want := Fingerprint(ins), fingerprintByAppend(ins); got != want {
			t.Fatalf("Fingerprint of %d instructions = %s, the plain re-encoding hashes to %s", len(ins), got, want)
		}
	})
}
