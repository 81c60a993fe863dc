package insn

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// encodingJSON is what encoding/json writes for v with HTML escaping off.
func encodingJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendJSONWritesWhatEncodingJSONWrites(t *testing.T) {
	var raw []byte
	for _, tt := range macroCases {
		raw = append(raw, macSlotBytes(tt.slots)...)
	}
	rng := rand.New(rand.NewPCG(16, 16))
	for range 20000 {
		raw = append(raw, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()),
			byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()))
	}
	// Names come from the analysed object: untrusted bytes of every kind.
	hostile := []string{"", "a\"b\\c", "\x00\x01\b\f\n\r\t\x1f\x7f", "<script>&", "\xff\xfe", "ok\u2028\u2029é", "\xe2\x80"}
	f := testJSONFormatter()
	f.Kernel.CallName = func(in Instruction) string { return hostile[in.Index%len(hostile)] }
	f.Kernel.Imm64Text = func(in Instruction, _ uint64) string { return hostile[(in.Index+3)%len(hostile)] }
	insns, _ := Decode(raw)
	for _, in := range insns {
		want := encodingJSON(t, f.Instruction(in))
		if got := f.AppendJSON(nil, in); !bytes.Equal(got, want) {
			t.Fatalf("instruction %d:\n got %s\nwant %s", in.Index, got, want)
		}
	}
	for _, s := range hostile {
		if got, want := appendJSONString(nil, s), encodingJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("string %q: got %s, want %s", s, got, want)
		}
	}
}
