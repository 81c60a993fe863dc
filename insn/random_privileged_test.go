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

// randomValidProgram draws a program the verifier accepts: random ALU/ALU64
// operations (both forms, sdiv/smod, movsx, neg, byte swaps) on scalar
// registers r0–r9 with random values, stack stores, loads,
// sign-extending loads and atomics at random aligned slots, and
// conditional jumps to the next instruction.
func randomValidProgram(r *rand.Rand, n int) *testProg {
	p := &testProg{}
	for reg := uint8(0); reg <= 9; reg++ {
		p.movImm(reg, int32(r.Uint32()))
	}
	for off := int16(-8); off >= -64; off -= 8 {
		p.op(ClassST|ModeMEM|SizeDW, R10, 0, off, int32(r.Uint32()))
	}
	reg := func() uint8 { return uint8(r.IntN(10)) }
	slot := func(size uint8) int16 {
		width := map[uint8]int{SizeB: 1, SizeH: 2, SizeW: 4, SizeDW: 8}[size]
		return int16(-64 + width*r.IntN(64/width))
	}
	sizes := []uint8{SizeB, SizeH, SizeW, SizeDW}
	for p.len() < n {
		switch r.IntN(10) {
		case 0, 1, 2, 3:
			cls := []uint8{ClassALU, ClassALU64}[r.IntN(2)]
			op := aluOps[r.IntN(len(aluOps))]
			width := int32(32)
			if cls == ClassALU64 {
				width = 64
			}
			if r.IntN(2) == 0 {
				imm := int32(r.Uint32())
				var off int16
				switch op {
				case AluLSH, AluRSH, AluARSH:
					imm = r.Int32N(width)
				case AluDIV, AluMOD:
					if imm == 0 {
						imm = 7
					}
					off = int16(r.IntN(2))
				}
				p.op(cls|op|SrcK, reg(), 0, off, imm)
			} else {
				var off int16
				switch op {
				case AluDIV, AluMOD:
					off = int16(r.IntN(2))
				case AluMOV:
					offs := []int16{0, 8, 16, 32}
					if cls == ClassALU {
						offs = offs[:3]
					}
					off = offs[r.IntN(len(offs))]
				}
				p.op(cls|op|SrcX, reg(), reg(), off, 0)
			}
		case 4:
			switch r.IntN(3) {
			case 0:
				p.op([]uint8{ClassALU, ClassALU64}[r.IntN(2)]|AluNEG, reg(), 0, 0, 0)
			case 1:
				p.op(ClassALU|AluEND|[]uint8{SrcK, SrcX}[r.IntN(2)], reg(), 0, 0, []int32{16, 32, 64}[r.IntN(3)])
			default:
				p.op(ClassALU64|AluEND, reg(), 0, 0, []int32{16, 32, 64}[r.IntN(3)])
			}
		case 5:
			sz := sizes[r.IntN(4)]
			if r.IntN(2) == 0 {
				p.op(ClassST|ModeMEM|sz, R10, 0, slot(sz), int32(r.Uint32()))
			} else {
				p.op(ClassSTX|ModeMEM|sz, R10, reg(), slot(sz), 0)
			}
		case 6:
			sz := sizes[r.IntN(4)]
			mode := uint8(ModeMEM)
			if sz != SizeDW && r.IntN(2) == 0 {
				mode = ModeMEMSX
			}
			p.op(ClassLDX|mode|sz, reg(), R10, slot(sz), 0)
		case 7:
			sz := []uint8{SizeW, SizeDW}[r.IntN(2)]
			imm := []int32{0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, 0xe1, 0xf1}[r.IntN(10)]
			p.op(ClassSTX|ModeATOMIC|sz, R10, reg(), slot(sz), imm)
		default:
			cls := []uint8{ClassJMP, ClassJMP32}[r.IntN(2)]
			op := jmpOps[r.IntN(len(jmpOps))]
			if r.IntN(2) == 0 {
				p.op(cls|op|SrcK, reg(), 0, 0, int32(r.Uint32()))
			} else {
				p.op(cls|op|SrcX, reg(), reg(), 0, 0)
			}
		}
	}
	return p.exit0()
}

// TestKernelTextMatchesBpftoolForRandomPrograms loads random programs the
// verifier accepts, compares our text of the submitted instructions with
// the verifier log and our listing of the translated instructions with
// bpftool's, line by line.
func TestKernelTextMatchesBpftoolForRandomPrograms(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs and reading them back with bpftool")
	kn := loadKernelNames(t)
	programs := 5
	if testing.Short() {
		programs = 1
	}
	r := rand.New(rand.NewPCG(2026, 12))
	type loaded struct {
		id     uint32
		xlated []byte
		jited  []uint64
	}
	var progs []loaded
	f := verifierFormatter(kn)
	for range programs {
		prog := randomValidProgram(r, 400)
		res := loadProg(t, "random_valid", progTypeSocketFilter, 0, prog)
		submitted, _ := Decode(prog.bytes())
		compareWithVerifierLog(t, f, submitted, res.log) // the kernel dialect, before translation
		xl, jited := fetchXlated(t, res.fd)
		progs = append(progs, loaded{res.id, xl, jited})
	}
	ks := readKallsyms(t)
	lines := 0
	for _, p := range progs {
		insns, _ := Decode(p.xlated)
		compareWithBpftool(t, p.id, BpftoolXlated(ks, p.jited, kn.helperName, DialectBpftool7), insns)
		lines += len(insns)
	}
	t.Logf("%d translated instructions of %d random programs compared with bpftool", lines, len(progs))
}
