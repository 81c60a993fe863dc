package insn

import (
	"sync/atomic"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestCheckAgreesWithTheVerifier uses this kernel's verifier as the oracle
// for Instruction.Check: each case places one instruction (reachable, with
// every register and the stack initialised) in a socket filter, and states
// by hand whether it is well formed. Check must find problems exactly when
// the case is malformed, and the kernel must load the program exactly when
// it is well formed.
func TestCheckAgreesWithTheVerifier(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs")
	mapFD := int32(createMap(t, mapTypeArray, 4, 8, 1))
	kn := loadKernelNames(t)
	var printedCases atomic.Int64
	defer func() { t.Logf("the verifier log printed the instruction under test in %d cases", printedCases.Load()) }()
	s := func(code, dst, src uint8, off int16, imm int32) []Slot {
		return []Slot{{Code: code, Dst: dst, Src: src, Off: off, Imm: imm}}
	}
	ld := func(first, second Slot) []Slot { return []Slot{first, second} }
	tests := []struct {
		name       string
		slots      []Slot
		wellFormed bool
	}{
		{"add of an immediate", s(0x07, 1, 0, 0, 5), true},
		{"add of a register", s(0x0f, 1, 2, 0, 0), true},
		{"sdiv by an immediate", s(0x37, 1, 0, 1, -3), true},
		{"32-bit smod by a register", s(0x9c, 1, 2, 1, 0), true},
		{"movsx from 32 bits", s(0xbf, 1, 2, 32, 0), true},
		{"32-bit movsx from 8 bits", s(0xbc, 1, 2, 8, 0), true},
		{"le16", s(0xd4, 1, 0, 0, 16), true},
		{"be64", s(0xdc, 1, 0, 0, 64), true},
		{"bswap32", s(0xd7, 1, 0, 0, 32), true},
		{"neg", s(0x87, 1, 0, 0, 0), true},
		{"32-bit shift by 31", s(0x64, 1, 0, 0, 31), true},
		{"mov of -1", s(0xb7, 1, 0, 0, -1), true},
		{"ld_imm64 of a 64-bit constant", ld(Slot{Code: OpLdImm64, Dst: 1, Imm: 1}, Slot{Imm: 2}), true},
		{"byte store of a register", s(0x73, 10, 1, -8, 0), true},
		{"half-word store of an immediate", s(0x6a, 10, 0, -8, 3), true},
		{"word load", s(0x61, 1, 10, -8, 0), true},
		{"sign-extending half-word load", s(0x89, 1, 10, -8, 0), true},
		{"atomic fetch-add", s(0xdb, 10, 1, -8, 1), true},
		{"32-bit xchg", s(0xc3, 10, 1, -16, 0xe1), true},
		{"cmpxchg", s(0xdb, 10, 1, -8, 0xf1), true},
		{"byte load-acquire", s(0xd3, 1, 10, -8, 0x100), true},
		{"half-word store-release", s(0xcb, 10, 1, -8, 0x110), true},
		{"jeq against an immediate", s(0x15, 1, 0, 0, 5), true},
		{"32-bit jset against a register", s(0x4e, 1, 2, 0, 0), true},
		{"goto +0", s(0x05, 0, 0, 0, 0), true},
		{"gotol +0", s(0x06, 0, 0, 0, 0), true},
		{"a helper call", s(0x85, 0, 0, 0, 7), true},
		{"ld_abs of a byte", s(0x30, 0, 0, 0, 0), true},
		{"ld_ind of a half-word", s(0x48, 0, 2, 0, 0), true},
		{"ld_imm64 of a map fd", ld(Slot{Code: OpLdImm64, Dst: 1, Src: PseudoMapFD, Imm: mapFD}, Slot{}), true},

		{"add of an immediate with a source register", s(0x07, 1, 2, 0, 1), false},
		{"add of a register with an immediate", s(0x0f, 1, 2, 0, 1), false},
		{"add with an offset", s(0x07, 1, 0, 3, 1), false},
		{"div with offset 2", s(0x37, 1, 0, 2, 1), false},
		{"32-bit movsx from 32 bits", s(0xbc, 1, 2, 32, 0), false},
		{"mov from r11", s(0xbf, 1, 11, 0, 0), false},
		{"mov to r12", s(0xb7, 12, 0, 0, 0), false},
		{"ld_imm64 whose second slot has an opcode", ld(Slot{Code: OpLdImm64, Dst: 1}, Slot{Code: 0x07}), false},
		{"ld_imm64 with pseudo source 7", ld(Slot{Code: OpLdImm64, Dst: 1, Src: 7}, Slot{}), false},
		{"ld_imm64 of a map fd with an upper immediate", ld(Slot{Code: OpLdImm64, Dst: 1, Src: PseudoMapFD, Imm: mapFD}, Slot{Imm: 1}), false},
		{"le8", s(0xd4, 1, 0, 0, 8), false},
		{"32-bit shift by 32", s(0x64, 1, 0, 0, 32), false},
		{"shift by -1", s(0x67, 1, 0, 0, -1), false},
		{"call with pseudo source 3", s(0x85, 0, 3, 0, 1), false},
		{"jmp32 call", s(0x86, 0, 0, 0, 7), false},
		{"exit with a destination register", s(0x95, 1, 0, 0, 0), false},
		{"goto with an immediate", s(0x05, 0, 0, 0, 4), false},
		{"gotol with an offset", s(0x06, 0, 0, 1, 0), false},
		{"byte atomic add", s(0xd3, 10, 1, -8, 0), false},
		{"atomic operation 0x42", s(0xdb, 10, 1, -8, 0x42), false},
		{"sign-extending 64-bit load", s(0x99, 1, 10, -8, 0), false},
		{"64-bit ld_abs", s(0x38, 0, 0, 0, 0), false},
		{"ld_abs into r3", s(0x30, 3, 0, 0, 0), false},
		{"may_goto with an immediate", s(0xe5, 0, 0, 0, 9), false},
		{"conditional pseudo-jump with source 1", s(0xe5, 0, 1, 0, 0), false},
		{"alu64 byte swap with register source", s(0xdf, 1, 0, 0, 16), false},
		{"neg with the register-source bit", s(0x8f, 1, 0, 0, 0), false},
		{"neg with a source register", s(0x87, 1, 2, 0, 0), false},
		{"nospec", s(0xc2, 0, 0, 0, 0), false},
		{"per-CPU address move", s(0xbf, 1, 2, -1, 0), false},
		{"register store with an immediate", s(0x7b, 10, 1, -8, 1), false},
		{"immediate store with a source register", s(0x7a, 10, 1, -8, 1), false},
		{"load with an immediate", s(0x79, 1, 10, -8, 1), false},
		{"ldx in abs mode", s(0x21, 1, 10, -8, 0), false},
		{"jeq against a register with an immediate", s(0x1d, 1, 2, 0, 1), false},
		{"jeq against an immediate with a source register", s(0x15, 1, 2, 0, 1), false},
		{"helper call with an offset", s(0x85, 0, 0, 1, 7), false},
		{"helper call with a destination register", s(0x85, 1, 0, 0, 7), false},
		{"goto with register source", s(0x0d, 0, 0, 0, 0), false},
		{"jmp32 exit", s(0x96, 0, 0, 0, 0), false},
		{"alu op 0xe0", s(0xe7, 1, 0, 0, 1), false},
		{"jmp op 0xf0", s(0xf5, 1, 0, 0, 1), false},
		{"32-bit ld imm", s(0x00, 1, 0, 0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &testProg{}
			p.op(ClassALU64|AluMOV|SrcX, 6, 1, 0, 0) // ctx for ld_abs/ld_ind
			for _, r := range []uint8{0, 1, 2, 3, 4, 5, 7, 8, 9} {
				p.movImm(r, int32(r)+1)
			}
			p.op(ClassST|ModeMEM|SizeDW, R10, 0, -8, 0)
			p.op(ClassST|ModeMEM|SizeDW, R10, 0, -16, 0)
			at := p.len()
			p.slots = append(p.slots, tt.slots...)
			p.exit0()

			insns, _ := Decode(p.bytes())
			var probs []Problem
			for _, ins := range insns {
				if ins.Index == at {
					probs = ins.Check()
				}
			}
			if tt.wellFormed && len(probs) > 0 {
				t.Errorf("Check reports problems in a well-formed instruction: %v", probs)
			}
			if !tt.wellFormed && len(probs) == 0 {
				t.Errorf("Check finds nothing wrong with a malformed instruction %+v", tt.slots)
			}
			res, err := tryLoadProg(t, "check", progTypeSocketFilter, 0, p)
			// Where the verifier printed the instruction (always when it
			// loads; before rejecting it in the checking pass otherwise),
			// the text must be ours too.
			printedAt := 0
			if len(verifierInsns(res.log)[at]) > 0 {
				printedAt = 1
			}
			compareWithVerifierLog(t, verifierFormatter(kn), insns, res.log)
			printedCases.Add(int64(printedAt))
			if printedAt == 1 && !tt.wellFormed {
				t.Logf("malformed and printed: %s", verifierInsns(res.log)[at][0])
			}
			if tt.wellFormed && err != nil {
				t.Errorf("the kernel rejects the well-formed case: %v", err)
			}
			if !tt.wellFormed && err == nil {
				t.Errorf("the kernel accepts the case marked malformed")
			}
		})
	}
}
