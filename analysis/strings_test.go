package analysis

import (
	"reflect"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

const r0, r1, r2, r3, r4, r5, r6, r10 = 0, 1, 2, 3, 4, 5, 6, 10

func TestStrings(t *testing.T) {
	tests := []struct {
		name  string
		build func(a *asmb) *program.Program
		want  []String
	}{
		{"a path built with ld_imm64 and two stores is one stack string", func(a *asmb) *program.Program {
			a.ld64(r1, 0, le("/etc/pas")).stx(8, r10, r1, -16) // slots 0-1, 2
			a.mov(r1, le32("swd")).stx(4, r10, r1, -8)         // 3, 4
			return a.exit().prog()
		}, []String{{2, "/etc/passwd", StringStack}}},
		{"halves stored in reverse order are reassembled by address", func(a *asmb) *program.Program {
			a.mov(r1, le32("swd")).stx(4, r10, r1, -8)         // 0, 1
			a.ld64(r1, 0, le("/etc/pas")).stx(8, r10, r1, -16) // 2-3, 4
			return a.exit().prog()
		}, []String{{1, "/etc/passwd", StringStack}}},
		{"a string split across two registers is joined", func(a *asmb) *program.Program {
			a.mov(r1, le32("/bin")).mov(r2, le32("/sh")) // 0, 1
			a.stx(4, r10, r2, -4).stx(4, r10, r1, -8)    // 2, 3
			return a.exit().prog()
		}, []String{{2, "/bin/sh", StringStack}}},
		{"immediate stores (ST) build strings too", func(a *asmb) *program.Program {
			a.st(4, r10, -12, le32("evil")).st(4, r10, -8, le32("root")).st(4, r10, -4, 0)
			return a.exit().prog()
		}, []String{{0, "evilroot", StringStack}}},
		{"a 64-bit constant assembled with shift and or is followed", func(a *asmb) *program.Program {
			a.mov32(r1, le32("abcd")).mov32(r2, le32("efgh")).lsh(r2, 32).orx(r1, r2) // 0-3
			a.stx(8, r10, r1, -16).st(1, r10, -8, 0)                                  // 4, 5
			return a.exit().prog()
		}, []String{{4, "abcdefgh", StringStack}}},
		{"stores through a copy of the frame pointer land on the stack", func(a *asmb) *program.Program {
			a.movx(r6, r10).add(r6, -32)              // 0, 1
			a.mov(r1, le32("kill")).stx(4, r6, r1, 0) // 2, 3
			a.mov(r1, le32("-9 1")).stx(4, r6, r1, 4) // 4, 5
			return a.st(1, r6, 8, 0).exit().prog()    // 6, 7
		}, []String{{3, "kill-9 1", StringStack}}},
		{"strings shorter than four bytes are not reported", func(a *asmb) *program.Program {
			return a.st(4, r10, -8, le32("abc")).exit().prog()
		}, nil},
		{"a non-printable byte splits a stack run", func(a *asmb) *program.Program {
			a.ld64(r1, 0, le("abc\x01efgh")).stx(8, r10, r1, -16) // 0-1, 2
			a.ld64(r1, 0, le("ijklmnop")).stx(8, r10, r1, -8)     // 3-4, 5
			return a.exit().prog()
		}, []String{{2, "efghijklmnop", StringStack}}},
		{"a short run without a terminating NUL is noise", func(a *asmb) *program.Program {
			return a.st(4, r10, -8, le32("AT-0")).st(4, r10, -4, -1).exit().prog()
		}, nil},
		{"a long run needs no NUL", func(a *asmb) *program.Program {
			return a.ld64(r1, 0, le("/proc/se")).stx(8, r10, r1, -8).exit().prog()
		}, []String{{2, "/proc/se", StringStack}}},
		{"strings built before a helper call survive reuse of the slot", func(a *asmb) *program.Program {
			a.st(4, r10, -8, le32("one1")).st(4, r10, -4, 0).call(14) // 0, 1, 2
			a.st(4, r10, -8, le32("two2")).exit()                     // 3, 4
			return a.prog()
		}, []String{{0, "one1", StringStack}, {3, "two2", StringStack}}},
		{"a byte-compare chain spells the compared path", func(a *asmb) *program.Program {
			for i, c := range []byte("/etc/sudoers") {
				a.ldx(1, r2, r6, int16(i)).jneImm(r2, int32(c), 100)
			}
			return a.exit().prog()
		}, []String{{0, "/etc/sudoers", StringCompare}}},
		{"compares in scrambled offset order are sorted by address", func(a *asmb) *program.Program {
			for _, i := range []int{3, 0, 2, 1} {
				a.ldx(1, r2, r6, int16(i)).jeqImm(r2, int32("abcd"[i]), 100)
			}
			return a.exit().prog()
		}, []String{{0, "abcd", StringCompare}}}, // the earliest compare of the chain
		{"wide loads compared with a 64-bit register and a 32-bit immediate", func(a *asmb) *program.Program {
			a.ldx(8, r2, r6, 0).ld64(r3, 0, le("/etc/sud")).jneX(r2, r3, 100) // 0, 1-2, 3
			a.ldx(4, r2, r6, 8).jneImm(r2, le32("oers"), 100)                 // 4, 5
			return a.exit().prog()
		}, []String{{0, "/etc/sudoers", StringCompare}}},
		{"a sign-extended byte still counts as compared", func(a *asmb) *program.Program {
			for i, c := range []byte("root") {
				a.ldx(1, r2, r6, int16(i)).lsh(r2, 56).slot(0xc7, r2, 0, 0, 56).jneImm(r2, int32(int8(c)), 100)
			}
			return a.exit().prog()
		}, []String{{0, "root", StringCompare}}},
		{"compares against two different pointers are two chains", func(a *asmb) *program.Program {
			for i, c := range []byte("abcd") {
				a.ldx(1, r2, r6, int16(i)).jneImm(r2, int32(c), 100)
			}
			a.mov(r6, 0) // r6 now points elsewhere
			for i, c := range []byte("wxyz") {
				a.ldx(1, r2, r6, int16(i)).jneImm(r2, int32(c), 100)
			}
			return a.exit().prog()
		}, []String{{0, "abcd", StringCompare}, {9, "wxyz", StringCompare}}},
		{"two names compared against one stack buffer are two strings", func(a *asmb) *program.Program {
			for i, c := range []byte("/tmp/.implant") {
				a.ldx(1, r2, r10, int16(-16+i)).jneImm(r2, int32(c), 100) // 0..25
			}
			for i, c := range []byte("/proc/modules") {
				a.ldx(1, r2, r10, int16(-16+i)).jneImm(r2, int32(c), 100) // 26..51
			}
			return a.exit().prog()
		}, []String{{0, "/tmp/.implant", StringCompare}, {26, "/proc/modules", StringCompare}}},
		{"bytes loaded once, spilled and reloaded still compare as their buffer", func(a *asmb) *program.Program {
			a.ldx(1, r1, r10, -16).stx(8, r10, r1, -40) // 0, 1: spill of buffer[0]
			a.ldx(1, r2, r10, -15).ldx(1, r3, r10, -14) // 2, 3
			a.ldx(1, r4, r10, -13)                      // 4
			a.ldx(8, r5, r10, -40).jneImm(r5, 'r', 100) // 5, 6: fill
			a.jneImm(r2, 'o', 100).jneImm(r3, 'o', 100).jneImm(r4, 't', 100)
			return a.exit().prog()
		}, []String{{0, "root", StringCompare}}},
		{"a buffer overwritten between two compares ends the first chain", func(a *asmb) *program.Program {
			for i, c := range []byte("ab") {
				a.ldx(1, r2, r10, int16(-16+i)).jneImm(r2, int32(c), 100) // 0..3
			}
			a.st(8, r10, -16, 0) // 4: a new value in the buffer
			for i, c := range []byte("cdef") {
				a.ldx(1, r2, r10, int16(-14+i)).jneImm(r2, int32(c), 100) // 5..12
			}
			return a.exit().prog()
		}, []String{{5, "cdef", StringCompare}}},
		{"a printk format built on the stack is a format string", func(a *asmb) *program.Program {
			a.ld64(r1, 0, le("pid %d\n")).stx(8, r10, r1, -8) // 0-1, 2
			a.movx(r1, r10).add(r1, -8).mov(r2, 8).call(6)    // 3..6
			return a.exit().prog()
		}, []String{{2, `pid %d\x0a`, StringFormat}}},
		{"a short format is reported and escaped", func(a *asmb) *program.Program {
			a.st(4, r10, -8, le32("%d\x01")).movx(r1, r10).add(r1, -8).call(6)
			return a.exit().prog()
		}, []String{{0, `%d\x01`, StringFormat}}},
		{"a backslash is escaped so the text is unambiguous", func(a *asmb) *program.Program {
			a.ld64(r1, 0, le(`a\x41b`)).stx(8, r10, r1, -8)
			return a.exit().prog()
		}, []String{{2, `a\x5cx41b`, StringStack}}},
		{"strings of two sub-programs at the same stack offsets are both found", func(a *asmb) *program.Program {
			a.slot(0x85, 0, 1, 0, 3)                         // 0: call pc+3 → 4
			a.st(4, r10, -8, le32("main")).st(4, r10, -4, 0) // 1, 2
			a.exit()                                         // 3
			a.st(4, r10, -8, le32("subr")).st(4, r10, -4, 0) // 4, 5
			return a.exit().prog()
		}, []String{{1, "main", StringStack}, {4, "subr", StringStack}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.build(&asmb{})
			ins, _ := p.Decode()
			got := Strings(p, ins, 0)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestStringsFromGlobalData(t *testing.T) {
	rodata := []byte("\x01\x02\x03\x04/etc/ld.so.preload\x00x=%d\n\x00")
	build := func(fmtHelper int32, fmtReg uint8) *program.Program {
		a := &asmb{}
		a.ld64(r6, 2, 0)         // 0-1: .rodata+4 (relocation in Refs)
		a.ld64(fmtReg, 2, 0)     // 2-3: .rodata+23
		a.call(fmtHelper).exit() // 4, 5
		p := a.prog()
		p.Data = map[string][]byte{".rodata": rodata}
		p.Refs = map[int]program.Ref{
			0: {Kind: program.RefData, Name: ".rodata", Section: ".rodata", Offset: 4},
			2: {Kind: program.RefData, Name: ".rodata", Section: ".rodata", Offset: 23},
		}
		return p
	}
	tests := []struct {
		name   string
		helper int32
		reg    uint8
	}{
		{"bpf_trace_printk takes its format in r1", 6, r1},
		{"bpf_seq_printf takes its format in r2", 126, r2},
		{"bpf_snprintf takes its format in r3", 165, r3},
		{"bpf_trace_vprintk takes its format in r1", 177, r1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(tt.helper, tt.reg)
			ins, _ := p.Decode()
			got := Strings(p, ins, 0)
			want := []String{{0, "/etc/ld.so.preload", StringData}, {2, `x=%d\x0a`, StringFormat}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"printable ASCII stays as is", "Hello, world! ~", "Hello, world! ~"},
		{"control bytes become \\xNN", "a\x00b\n\x7f", `a\x00b\x0a\x7f`},
		{"bytes above 0x7f become \\xNN, never raw UTF-8", "é", `\xc3\xa9`},
		{"a backslash is escaped", `\x41`, `\x5cx41`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape([]byte(tt.in)); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
