package analysis

import (
	"encoding/binary"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

var escapeRE = regexp.MustCompile(`\\x[0-9a-f]{2}`)

// FuzzStrings runs the string extractor (and the rest of Analyze) over
// arbitrary instruction bytes with arbitrary global data referenced from
// every ld_imm64: no panic, and every string is escaped, valid UTF-8.
func FuzzStrings(f *testing.F) {
	a := &asmb{}
	a.ld64(r1, 0, le("/etc/pas")).stx(8, r10, r1, -16).mov(r1, le32("swd")).stx(4, r10, r1, -8)
	a.movx(r1, r10).add(r1, -16).call(6)
	for i, c := range []byte("/etc/sudoers") {
		a.ldx(1, r2, r6, int16(i)).jneImm(r2, int32(c), 1)
	}
	a.ld64(r3, 2, 0).call(165).exit()
	f.Add(a.b, []byte("hello\x00world %d\n\x00"), int64(0))
	f.Add([]byte{0x18, 0x21, 0, 0, 0, 0, 0, 0}, []byte{}, int64(-5))
	f.Fuzz(func(t *testing.T, insns, data []byte, off int64) {
		p := &program.Program{Insns: insns, Data: map[string][]byte{".rodata": data}, Refs: map[int]program.Ref{}}
		if off&1 != 0 {
			p.Source = program.SourceKernel // translated: other call semantics
		}
		for i := 0; i+8 <= len(insns); i += 8 {
			if insns[i] == 0x18 {
				p.Refs[i/8] = program.Ref{Kind: program.RefData, Section: ".rodata", Offset: off + int64(binary.LittleEndian.Uint16(insns[i+2:]))}
			}
		}
		r := Analyze(p, nil)
		for _, s := range r.Strings {
			if !utf8.ValidString(s.Text) {
				t.Fatalf("invalid UTF-8: %q", s.Text)
			}
			for _, c := range []byte(s.Text) {
				if c < 0x20 || c >= 0x7f {
					t.Fatalf("unescaped byte %#x in %q", c, s.Text)
				}
			}
			if strings.Count(s.Text, `\`) != len(escapeRE.FindAllString(s.Text, -1)) {
				t.Fatalf("a backslash that does not start \\xNN in %q", s.Text)
			}
			if s.Insn < 0 || s.Insn >= r.InsnCount {
				t.Fatalf("string %q at insn %d of %d", s.Text, s.Insn, r.InsnCount)
			}
		}
	})
}
