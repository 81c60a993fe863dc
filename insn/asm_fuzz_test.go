package insn

import (
	"bytes"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

// FuzzAssemble feeds arbitrary text to the assembler: it must never panic,
// and whatever it accepts must print as macros that assemble to the same bytes.
func FuzzAssemble(f *testing.F) {
	for _, tt := range macroCases {
		f.Add(tt.want)
	}
	f.Add("BPF_RAW_INSN(BPF_ALU64 | BPF_K | BPF_MOV, 1, 0, -(2+3), 1 << 4 | 0x0f & ~1)")
	f.Add("/* c */ BPF_EXIT_INSN(); // d\n BPF_LD_IMM64(BPF_REG_0, -0x8000000000000000),")
	f.Add("BPF_MOV64_IMM(BPF_REG_1, (((1)))")
	a := Assembler{Helpers: helper.Static()}
	mf := MacroFormatter{Helpers: helper.Static()}
	f.Fuzz(func(t *testing.T, text string) {
		raw, err := a.Assemble(text)
		if err != nil {
			if len(err.Error()) == 0 {
				t.Fatal("empty error message")
			}
			return
		}
		if len(raw)%Size != 0 {
			t.Fatalf("assembled %d bytes, not whole slots", len(raw))
		}
		insns, _ := Decode(raw)
		again, err := a.Assemble(string(mf.AppendListing(nil, insns)))
		if err != nil {
			t.Fatalf("re-formatted text does not assemble: %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("re-assembled % x, want % x", again, raw)
		}
	})
}

// FuzzMacroRoundTrip checks that any byte stream, written as macros,
// assembles back to itself.
func FuzzMacroRoundTrip(f *testing.F) {
	for _, tt := range macroCases {
		f.Add(macSlotBytes(tt.slots))
	}
	f.Add([]byte{0x18, 0x01, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		roundTrip(t, "fuzz input", raw)
	})
}
