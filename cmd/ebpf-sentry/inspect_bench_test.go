package main

import (
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// Inputs that once cost super-linear time or unbounded memory (issue 16),
// generated here rather than committed.

func rawSlot(b []byte, code, dst, src uint8, off int16, imm int32) []byte {
	b = append(b, code, dst|src<<4)
	b = binary.LittleEndian.AppendUint16(b, uint16(off))
	return binary.LittleEndian.AppendUint32(b, uint32(imm))
}

// rawMovs is n-1 "r0 = i" and an exit.
func rawMovs(n int) []byte {
	b := make([]byte, 0, n*insn.Size)
	for i := 0; i < n-1; i++ {
		b = rawSlot(b, 0xb7, 0, 0, 0, int32(i))
	}
	return rawSlot(b, 0x95, 0, 0, 0, 0)
}

// rawLdImm64 is n slots of ld_imm64 map references (the last two slots:
// r0 = 0; exit). distinct gives each its own map fd; otherwise all use fd 3.
func rawLdImm64(n int, distinct bool) []byte {
	b := make([]byte, 0, n*insn.Size)
	for i := 0; i < (n-2)/2; i++ {
		fd := int32(3)
		if distinct {
			fd = int32(i + 3)
		}
		b = rawSlot(b, 0x18, 1, 1, 0, fd)
		b = rawSlot(b, 0, 0, 0, 0, 0)
	}
	b = rawSlot(b, 0xb7, 0, 0, 0, 0)
	return rawSlot(b, 0x95, 0, 0, 0, 0)
}

// rawFF is n bytes of 0xff: every slot an invalid opcode.
func rawFF(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// tinyProgramsELF is a relocatable BPF object with n socket-filter programs
// of two instructions each (r0 = 0; exit) in one section, written field by
// field (Go has no ELF writer): what a many-program object costs per
// program, without clang in the loop.
func tinyProgramsELF(n int) []byte {
	le := binary.LittleEndian
	var text []byte
	for range n {
		text = rawSlot(text, 0xb7, 0, 0, 0, 0)
		text = rawSlot(text, 0x95, 0, 0, 0, 0)
	}
	strtab := []byte{0}
	symtab := make([]byte, 24) // symbol 0 is null
	for i := range n {
		name := len(strtab)
		strtab = append(strtab, "p"+strconv.Itoa(i)...)
		strtab = append(strtab, 0)
		var sym [24]byte
		le.PutUint32(sym[0:], uint32(name))
		sym[4] = byte(elf.STB_GLOBAL)<<4 | byte(elf.STT_FUNC)
		le.PutUint16(sym[6:], 1) // section 1: socket
		le.PutUint64(sym[8:], uint64(i*16))
		le.PutUint64(sym[16:], 16)
		symtab = append(symtab, sym[:]...)
	}
	shstrtab := []byte("\x00socket\x00.symtab\x00.strtab\x00.shstrtab\x00")
	type sec struct {
		name, typ  uint32
		flags      uint64
		data       []byte
		link, info uint32
		align, ent uint64
	}
	secs := []sec{
		{},
		{name: 1, typ: uint32(elf.SHT_PROGBITS), flags: uint64(elf.SHF_ALLOC | elf.SHF_EXECINSTR), data: text, align: 8},
		{name: 8, typ: uint32(elf.SHT_SYMTAB), data: symtab, link: 3, info: 1, align: 8, ent: 24},
		{name: 16, typ: uint32(elf.SHT_STRTAB), data: strtab, align: 1},
		{name: 24, typ: uint32(elf.SHT_STRTAB), data: shstrtab, align: 1},
	}
	out := make([]byte, 64)
	offs := make([]uint64, len(secs))
	for i, s := range secs {
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
		offs[i] = uint64(len(out))
		out = append(out, s.data...)
	}
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	shoff := uint64(len(out))
	for i, s := range secs {
		var sh [64]byte
		le.PutUint32(sh[0:], s.name)
		le.PutUint32(sh[4:], s.typ)
		le.PutUint64(sh[8:], s.flags)
		if i > 0 {
			le.PutUint64(sh[24:], offs[i])
		}
		le.PutUint64(sh[32:], uint64(len(s.data)))
		le.PutUint32(sh[40:], s.link)
		le.PutUint32(sh[44:], s.info)
		le.PutUint64(sh[48:], s.align)
		le.PutUint64(sh[56:], s.ent)
		out = append(out, sh[:]...)
	}
	copy(out, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le.PutUint16(out[16:], uint16(elf.ET_REL))
	le.PutUint16(out[18:], uint16(elf.EM_BPF))
	le.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(out[40:], shoff)
	le.PutUint16(out[52:], 64) // ehsize
	le.PutUint16(out[58:], 64) // shentsize
	le.PutUint16(out[60:], uint16(len(secs)))
	le.PutUint16(out[62:], 4) // shstrndx
	return out
}

// inspectInput is one of the inputs of issue 16 that once cost quadratic
// time or unbounded memory, with the inspect arguments that read it.
type inspectInput struct {
	name string
	file string
	gen  func() []byte
	args []string
}

func inspectInputs() []inspectInput {
	return []inspectInput{
		{"1M movs", "movs.raw", func() []byte { return rawMovs(1_000_000) }, []string{"--raw"}},
		{"1M slots of ld_imm64, one map", "ldimm.raw", func() []byte { return rawLdImm64(1_000_000, false) }, []string{"--raw"}},
		{"500k ld_imm64, each a different map", "ldmaps.raw", func() []byte { return rawLdImm64(1_000_000, true) }, []string{"--raw"}},
		{"8 MB of 0xff", "ff.raw", func() []byte { return rawFF(8 << 20) }, []string{"--raw"}},
		{"100k tiny programs", "tiny.o", func() []byte { return tinyProgramsELF(100_000) }, nil},
	}
}

var inspectFormats = [][]string{{"text"}, {"kernel"}, {"macro"}, {"json"}, {"json", "--insns"}}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return len(b), nil
}

// BenchmarkInspect times each input in each format, in-process, output
// discarded. The ratios in docs/PERFORMANCE.md compare the formats of one
// input (text is the baseline) and the inputs with each other, all from the
// same run.
func BenchmarkInspect(b *testing.B) {
	dir := b.TempDir()
	for _, in := range inspectInputs() {
		path := filepath.Join(dir, in.file)
		if err := os.WriteFile(path, in.gen(), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, f := range inspectFormats {
			b.Run(in.name+"/"+strings.Join(f, " "), func(b *testing.B) {
				args := append([]string{"inspect"}, append(in.args, path, "--format")...)
				args = append(args, f...)
				// One tree per case: every iteration runs the same arguments.
				root := newRootCmd()
				root.SetArgs(args)
				root.SetOut(io.Discard)
				root.SetErr(io.Discard)
				for b.Loop() {
					if err := root.Execute(); err != nil && in.file != "ff.raw" {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
