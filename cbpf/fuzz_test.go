package cbpf

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]Instruction{{0x28, 0, 0, 12}, {0x15, 0, 1, 0x800}, {0x6, 0, 0, 262144}, {0x6, 0, 0, 0}}))
	f.Add(Encode([]Instruction{{0x30, 0, 0, 0xfffff030}, {0xffff, 255, 255, 0xffffffff}, {0x05, 0, 0, 0xffffffff}}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ins, err := Decode(raw)
		if err != nil {
			return
		}
		a := Analyze(ins)
		for _, m := range a.Magic {
			if m.Insn < 0 || m.Insn >= len(ins) || m.Field != "payload" {
				t.Fatalf("magic %+v", m)
			}
		}
		out := Disassemble(ins)
		if n := strings.Count(out, "\n"); n != len(ins) {
			t.Fatalf("%d lines for %d instructions", n, len(ins))
		}
		if !bytes.Equal(Encode(ins), raw) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

func FuzzParseDDD(f *testing.F) {
	f.Add("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n")
	f.Add("1\n6 0 0 99999999999\n")
	f.Add("-1\n")
	f.Fuzz(func(t *testing.T, text string) {
		ins, err := ParseDDD(strings.NewReader(text))
		if err == nil && len(ins) > MaxInsns {
			t.Fatalf("%d instructions accepted", len(ins))
		}
	})
}
