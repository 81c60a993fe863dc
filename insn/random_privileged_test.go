package insn

import (
	"math/rand/v2"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// randomInstruction draws one instruction with random fields from the
// opcodes the kernel's opcode table knows, keeping only what its early
// passes (control-flow and ld_imm64/ldx checks, which run before anything
// is printed) need: jumps go to the next instruction, calls are helper
// calls, ld_imm64 loads a constant, ldx has no immediate. Reserved fields, odd offsets and immediates,
// registers above r10 and helper ids the kernel does not have all stay, so
// most programs are rejected later — after the verifier has printed every
// instruction in its register-liveness listing.
func randomInstruction(r *rand.Rand) []Slot {
	reg := func() uint8 {
		if r.IntN(20) == 0 {
			return uint8(11 + r.IntN(5))
		}
		return uint8(r.IntN(11))
	}
	imm := func() int32 {
		switch r.IntN(4) {
		case 0:
			return int32(r.IntN(64))
		case 1:
			return -int32(r.IntN(64))
		default:
			return int32(r.Uint32())
		}
	}
	off := func() int16 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return []int16{1, 8, 16, 32, -1}[r.IntN(5)]
		default:
			return int16(r.Uint32())
		}
	}
	for {
		code := uint8(r.IntN(256))
		s := Slot{Code: code, Dst: reg(), Src: reg(), Off: off(), Imm: imm()}
		ins := Instruction{Slot: s}
		switch k := ins.Kind(); {
		case k == KindInvalid, k == KindNospec, k == KindExit:
			continue
		case k == KindLdImm64:
			s.Src = 0
			s.Off = 0
			return []Slot{s, {Imm: imm()}}
		case k.IsCall():
			s.Src = 0
			s.Imm = int32(r.IntN(240))
		case k == KindJa || k == KindMayGoto:
			s.Off = 0
		case k == KindGotol:
			s.Imm = 0
		case k.IsJump():
			s.Off = 0
		case Class(code) == ClassLDX:
			s.Imm = 0 // checked together with ld_imm64, before printing
		case Class(code) == ClassSTX && Mode(code) == ModeATOMIC:
			s.Imm = []int32{0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, 0xe1, 0xf1, 0x100, 0x110}[r.IntN(12)]
		case Class(code) == ClassALU || Class(code) == ClassALU64:
			if Op(code) == AluEND {
				s.Imm = []int32{16, 32, 64, s.Imm}[r.IntN(4)]
			}
		}
		return []Slot{s}
	}
}

// TestKernelTextMatchesVerifierForRandomInstructions submits programs of
// random instructions and compares every line the verifier prints about
// them with our text.
func TestKernelTextMatchesVerifierForRandomInstructions(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs with a verifier log")
	kn := loadKernelNames(t)
	f := verifierFormatter(kn)
	programs, size := 20, 400
	if testing.Short() {
		programs = 4
	}
	r := rand.New(rand.NewPCG(2026, 11))
	total := 0
	for i := range programs {
		p := &testProg{}
		for p.len() < size {
			p.slots = append(p.slots, randomInstruction(r)...)
		}
		p.op(ClassJMP|JmpEXIT, 0, 0, 0, 0)
		insns, _ := Decode(p.bytes())
		res, _ := tryLoadProg(t, "random", progTypeSocketFilter, 0, p)
		seen := compareWithVerifierLog(t, f, insns, res.log)
		if seen < len(insns) {
			t.Errorf("program %d: the verifier printed %d of %d instructions; log:\n%s", i, seen, len(insns), tail(res.log))
		}
		total += seen
	}
	t.Logf("%d random instructions compared with the verifier log", total)
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}
