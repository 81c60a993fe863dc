package insn

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

func testJSONFormatter() *JSONFormatter {
	return &JSONFormatter{
		Macro:  &MacroFormatter{Helpers: helper.Static()},
		Kernel: &KernelFormatter{HelperName: HelperNamer(helper.Static())},
	}
}

func TestJSONLinesCarryEveryFieldOfEveryInstruction(t *testing.T) {
	var raw []byte
	for _, tt := range macroCases {
		raw = append(raw, macSlotBytes(tt.slots)...)
	}
	insns, _ := Decode(raw)
	var out bytes.Buffer
	if err := testJSONFormatter().WriteLines(&out, insns); err != nil {
		t.Fatal(err)
	}
	// Rebuild the byte stream from nothing but the JSON raw fields.
	var rebuilt []byte
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		var j JSONInstruction
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("line %d: %v: %s", n+1, err, sc.Bytes())
		}
		if j.Index != len(rebuilt)/Size {
			t.Errorf("line %d: index %d, want %d", n+1, j.Index, len(rebuilt)/Size)
		}
		start := len(rebuilt)
		rebuilt = Slot(j.JSONSlot).Append(rebuilt)
		if j.Next != nil {
			rebuilt = Slot(*j.Next).Append(rebuilt)
		}
		if h := hex.EncodeToString(rebuilt[start:]); h != j.Raw {
			t.Errorf("line %d: raw %s, fields say %s", n+1, j.Raw, h)
		}
		if asm, err := (&Assembler{Helpers: helper.Static()}).Assemble(j.Macro); err != nil || !bytes.Equal(asm, rebuilt[start:]) {
			t.Errorf("line %d: macro %q assembles to % x (%v), want % x", n+1, j.Macro, asm, err, rebuilt[start:])
		}
		if j.Class == "" || j.Op == "" || j.Kernel == "" {
			t.Errorf("line %d: empty class, op or kernel text: %s", n+1, sc.Bytes())
		}
		n++
	}
	if n != len(insns) {
		t.Fatalf("%d lines for %d instructions", n, len(insns))
	}
	if !bytes.Equal(rebuilt, raw) {
		t.Fatal("the JSON raw fields do not reproduce the input bytes")
	}
}

func TestJSONInstruction(t *testing.T) {
	tests := []struct {
		name  string
		slots []Slot
		want  string
	}{
		{"a helper call names the helper in both text forms", []Slot{{Code: 0x85, Imm: 1}},
			`{"index":0,"code":133,"dst":0,"src":0,"off":0,"imm":1,"raw":"8500000001000000","class":"jmp","op":"call",` +
				`"macro":"BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem)","kernel":"(85) call bpf_map_lookup_elem#1"}`},
		{"an ld_imm64 carries its second slot and the 64-bit constant", macLdImm64Slots(2, 0, 0x55667788, 0x11223344),
			`{"index":0,"code":24,"dst":2,"src":0,"off":0,"imm":1432778632,"next":{"code":0,"dst":0,"src":0,"off":0,"imm":287454020},` +
				`"imm64":"0x1122334455667788","raw":"18020000887766550000000044332211","class":"ld","op":"ld_imm64",` +
				`"macro":"BPF_LD_IMM64(BPF_REG_2, 0x1122334455667788)","kernel":"(18) r2 = 0x1122334455667788"}`},
		{"comparison operators are not HTML-escaped", []Slot{{Code: 0xad, Dst: 1, Src: 2, Off: -7}},
			`{"index":0,"code":173,"dst":1,"src":2,"off":-7,"imm":0,"raw":"ad21f9ff00000000","class":"jmp","op":"jlt",` +
				`"macro":"BPF_JMP_REG(BPF_JLT, BPF_REG_1, BPF_REG_2, -7)","kernel":"(ad) if r1 < r2 goto pc-7"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			insns, _ := Decode(macSlotBytes(tt.slots))
			got, err := testJSONFormatter().Marshal(insns)
			if err != nil {
				t.Fatal(err)
			}
			if want := "[" + tt.want + "]"; string(got) != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestJSONInstructionWithDefaultFormatters(t *testing.T) {
	var f JSONFormatter
	j := f.Instruction(Instruction{Slot: Slot{Code: 0x95}})
	if j.Macro != "BPF_EXIT_INSN()" || !strings.Contains(j.Kernel, "exit") || j.Op != "exit" {
		t.Errorf("got %+v", j)
	}
}

func BenchmarkJSONLines(b *testing.B) {
	var unit []byte
	for _, tt := range macroCases {
		unit = append(unit, macSlotBytes(tt.slots)...)
	}
	insns, _ := Decode(bytes.Repeat(unit, 100_000*Size/len(unit)))
	f := testJSONFormatter()
	var out bytes.Buffer
	b.ReportAllocs()
	cpu := macStartCPU(b)
	for b.Loop() {
		out.Reset()
		if err := f.WriteLines(&out, insns); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(len(insns))
}
