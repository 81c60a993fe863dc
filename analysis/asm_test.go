package analysis

import (
	"encoding/binary"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// A tiny assembler for hand-built test programs; the encodings follow
// include/uapi/linux/bpf.h, not our decoder.
type asmb struct{ b []byte }

func (a *asmb) slot(code, dst, src uint8, off int16, imm int32) *asmb {
	a.b = insn.Slot{Code: code, Dst: dst, Src: src, Off: off, Imm: imm}.Append(a.b)
	return a
}

func (a *asmb) n() int { return len(a.b) / 8 }

func (a *asmb) mov(dst uint8, imm int32) *asmb   { return a.slot(0xb7, dst, 0, 0, imm) } // r = imm (64)
func (a *asmb) mov32(dst uint8, imm int32) *asmb { return a.slot(0xb4, dst, 0, 0, imm) } // w = imm
func (a *asmb) movx(dst, src uint8) *asmb        { return a.slot(0xbf, dst, src, 0, 0) }
func (a *asmb) add(dst uint8, imm int32) *asmb   { return a.slot(0x07, dst, 0, 0, imm) }
func (a *asmb) lsh(dst uint8, imm int32) *asmb   { return a.slot(0x67, dst, 0, 0, imm) }
func (a *asmb) orx(dst, src uint8) *asmb         { return a.slot(0x4f, dst, src, 0, 0) }
func (a *asmb) call(id int32) *asmb              { return a.slot(0x85, 0, 0, 0, id) }
func (a *asmb) exit() *asmb                      { return a.slot(0x95, 0, 0, 0, 0) }

func (a *asmb) ld64(dst, src uint8, v uint64) *asmb {
	a.slot(0x18, dst, src, 0, int32(uint32(v)))
	return a.slot(0, 0, 0, 0, int32(uint32(v>>32)))
}

// sizes: 1, 2, 4, 8 → BPF_B, BPF_H, BPF_W, BPF_DW
func sz(n int) uint8 { return map[int]uint8{1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}[n] }

func (a *asmb) stx(n int, dst, src uint8, off int16) *asmb {
	return a.slot(0x63|sz(n), dst, src, off, 0)
}
func (a *asmb) st(n int, dst uint8, off int16, imm int32) *asmb {
	return a.slot(0x62|sz(n), dst, 0, off, imm)
}
func (a *asmb) ldx(n int, dst, src uint8, off int16) *asmb {
	return a.slot(0x61|sz(n), dst, src, off, 0)
}
func (a *asmb) jneImm(dst uint8, imm int32, off int16) *asmb { return a.slot(0x55, dst, 0, off, imm) }
func (a *asmb) jeqImm(dst uint8, imm int32, off int16) *asmb { return a.slot(0x15, dst, 0, off, imm) }
func (a *asmb) jneX(dst, src uint8, off int16) *asmb         { return a.slot(0x5d, dst, src, off, 0) }

// le returns the little-endian integer of up to 8 bytes of s.
func le(s string) uint64 {
	var b [8]byte
	copy(b[:], s)
	return binary.LittleEndian.Uint64(b[:])
}

func le32(s string) int32 { return int32(uint32(le(s))) }

func (a *asmb) prog() *program.Program {
	return &program.Program{Source: program.SourceRaw, Insns: a.b, InsnCnt: uint32(a.n())}
}
