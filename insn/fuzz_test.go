package insn

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x95, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x18, 0x21, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x18, 0x01, 0, 0, 1, 0, 0, 0})       // truncated ld_imm64
	f.Add([]byte{0xdb, 0xa1, 0xf8, 0xff, 0x01, 1, 0}) // partial slot
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	for _, tp := range []Instruction{
		one(0xbf, 1, 2, 8, 0), one(0x3f, 1, 2, 1, 0), one(0xd7, 1, 0, 0, 64), one(0x06, 0, 0, 0, 5),
		one(0xe5, 0, 0, 3, 0), one(0xd3, 1, 2, 0, 0x100), one(0x85, 0, 2, 1, 77), one(0x91, 1, 2, -4, 0),
	} {
		f.Add(tp.Append(nil))
	}
}

// FuzzDecode: any bytes decode without panicking, every whole slot is kept
// (re-encoding reproduces them exactly) and every problem points inside the
// input.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		insns, probs := Decode(raw)
		var back []byte
		next := 0
		for _, ins := range insns {
			if ins.Index != next {
				t.Fatalf("instruction index %d, want %d", ins.Index, next)
			}
			next += ins.Slots()
			back = ins.Append(back)
			_ = ins.Kind().String()
		}
		if whole := raw[:len(raw)/Size*Size]; !bytes.Equal(back, whole) {
			t.Fatalf("re-encoded\n%x\nwant\n%x", back, whole)
		}
		for _, p := range probs {
			if p.Offset < 0 || p.Offset >= len(raw) || p.Index >= len(raw)/Size || p.Msg == "" {
				t.Fatalf("problem outside the input of %d bytes: %+v", len(raw), p)
			}
		}
		// A reused buffer holding another program decodes to the same.
		dirty := make([]Instruction, 3, 64)
		for i := range dirty {
			dirty[i] = Instruction{Index: 99, Slot: Slot{Code: OpLdImm64, Imm: -1}, Wide: true}
		}
		again, probs2 := DecodeAppend(dirty, raw)
		if !reflect.DeepEqual(again, insns) && !(len(again) == 0 && len(insns) == 0) || !reflect.DeepEqual(probs2, probs) {
			t.Fatalf("DecodeAppend into a used buffer differs from Decode:\n%+v\n%+v", again, insns)
		}
	})
}

// FuzzFormatKernel: any bytes render in both dialects, with and without name
// hooks, one non-empty line per instruction.
func FuzzFormatKernel(f *testing.F) {
	fuzzSeeds(f)
	ks := &Kallsyms{byAddr: map[uint64]string{0x1000: "__bpf_call_base", 0x1001: "helper"}, callBase: 0x1000}
	formatters := []*KernelFormatter{
		{},
		{Dialect: DialectBpftool7, HidePointers: true},
		BpftoolXlated(ks, []uint64{0x1001, 0}, func(int32) string { return "bpf_x" }, DialectKernel),
		BpftoolXlated(nil, nil, nil, DialectBpftool7),
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		insns, _ := Decode(raw)
		for _, fm := range formatters {
			out := string(fm.AppendListing(nil, insns, ListingBpftool))
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(insns) == 0 {
				if out != "" {
					t.Fatalf("output for no instructions: %q", out)
				}
				continue
			}
			if len(lines) != len(insns) {
				t.Fatalf("%d lines for %d instructions:\n%s", len(lines), len(insns), out)
			}
			for i, l := range lines {
				if _, text, ok := strings.Cut(l, ": "); !ok || text == "" {
					t.Fatalf("line %d has no text: %q", i, l)
				}
			}
		}
	})
}
