package insn

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func slotBytes(slots ...Slot) []byte {
	var b []byte
	for _, s := range slots {
		b = s.Append(b)
	}
	return b
}

func TestDecodeReportsProblemsAndContinues(t *testing.T) {
	exit := Slot{Code: 0x95}
	tests := []struct {
		name    string
		raw     []byte
		insns   int      // instructions decoded
		want    []string // substrings of the problems, in order
		indexes []int    // slot index of each problem
	}{
		{"a clean program has no problems", slotBytes(Slot{Code: 0xb7}, exit), 2, nil, nil},
		{"an empty stream decodes to nothing", nil, 0, nil, nil},
		{"a trailing partial slot is reported at its byte offset", append(slotBytes(exit), 1, 2, 3), 1,
			[]string{"byte 8: trailing partial instruction of 3 bytes"}, []int{-1}},
		{"a truncated ld_imm64 is reported and kept as one slot", slotBytes(exit, Slot{Code: OpLdImm64, Dst: 1}), 2,
			[]string{"insn 1 (byte 8): ld_imm64 truncated"}, []int{1}},
		{"an unknown ALU operation is reported and the next instruction still decodes", slotBytes(Slot{Code: 0xe7}, exit), 2,
			[]string{"insn 0 (byte 0): (e7) unknown opcode: alu64 operation 0xe0"}, []int{0}},
		{"an unknown class-mode combination is reported", slotBytes(Slot{Code: 0x21}), 1,
			[]string{"(21) unknown opcode: ldx mode 0x20"}, []int{0}},
		{"a source register on an immediate ALU op is reserved", slotBytes(Slot{Code: 0x07, Dst: 1, Src: 2, Imm: 1}), 1,
			[]string{"reserved src_reg field set to 2"}, []int{0}},
		{"an immediate on a register ALU op is reserved", slotBytes(Slot{Code: 0x0f, Dst: 1, Src: 2, Imm: 1}), 1,
			[]string{"reserved imm field set to 1"}, []int{0}},
		{"an offset on a plain add is reserved", slotBytes(Slot{Code: 0x07, Dst: 1, Off: 3, Imm: 1}), 1,
			[]string{"reserved off field set to 3"}, []int{0}},
		{"an offset other than 1 on div is reserved", slotBytes(Slot{Code: 0x37, Dst: 1, Off: 2, Imm: 1}), 1,
			[]string{"reserved off field set to 2"}, []int{0}},
		{"movsx from 32 bits in the 32-bit class is reserved", slotBytes(Slot{Code: 0xbc, Dst: 1, Src: 2, Off: 32}), 1,
			[]string{"reserved off field set to 32"}, []int{0}},
		{"a register above r10 is reported", slotBytes(Slot{Code: 0xbf, Dst: 11, Src: 12}), 1,
			[]string{"dst_reg r11 does not exist", "src_reg r12 does not exist"}, []int{0, 0}},
		{"a second ld_imm64 slot with fields set is reported at that slot", slotBytes(Slot{Code: OpLdImm64, Dst: 1}, Slot{Code: 0x07, Dst: 2}, exit), 2,
			[]string{"insn 1 (byte 8): second slot of ld_imm64 has reserved fields set"}, []int{1}},
		{"an unknown ld_imm64 pseudo source is reported", slotBytes(Slot{Code: OpLdImm64, Dst: 1, Src: 7}, Slot{}), 1,
			[]string{"unknown pseudo source 7"}, []int{0}},
		{"a map fd with an upper immediate is reported", slotBytes(Slot{Code: OpLdImm64, Dst: 1, Src: PseudoMapFD, Imm: 3}, Slot{Imm: 1}), 1,
			[]string{"nonzero upper immediate 1"}, []int{0}},
		{"a byte swap of 8 bits is reported", slotBytes(Slot{Code: 0xd4, Dst: 1, Imm: 8}), 1,
			[]string{"byte swap width 8"}, []int{0}},
		{"a shift beyond the width is reported", slotBytes(Slot{Code: 0x64, Dst: 1, Imm: 32}), 1,
			[]string{"shift by 32 out of range 0..31"}, []int{0}},
		{"a call with an unknown pseudo source is reported", slotBytes(Slot{Code: 0x85, Src: 3, Imm: 1}), 1,
			[]string{"call with src_reg 3"}, []int{0}},
		{"a jmp32 call does not exist", slotBytes(Slot{Code: 0x86, Imm: 1}), 1,
			[]string{"jmp32 call with immediate source"}, []int{0}},
		{"exit with fields set is reported", slotBytes(Slot{Code: 0x95, Dst: 1, Imm: 2}), 1,
			[]string{"reserved dst_reg field set to 1", "reserved imm field set to 2"}, []int{0, 0}},
		{"goto with an immediate is reported", slotBytes(Slot{Code: 0x05, Off: 1, Imm: 4}), 1,
			[]string{"reserved imm field set to 4"}, []int{0}},
		{"gotol with an offset is reported", slotBytes(Slot{Code: 0x06, Off: 1, Imm: 4}), 1,
			[]string{"reserved off field set to 1"}, []int{0}},
		{"an 8-bit read-modify-write atomic does not exist", slotBytes(Slot{Code: 0xd3, Dst: 1, Src: 2}), 1,
			[]string{"atomic operation 0x0 on u8"}, []int{0}},
		{"an unknown atomic operation is reported", slotBytes(Slot{Code: 0xdb, Dst: 1, Src: 2, Imm: 0x42}), 1,
			[]string{"atomic operation 0x42 on u64"}, []int{0}},
		{"a 64-bit sign-extending load does not exist", slotBytes(Slot{Code: 0x99, Dst: 1, Src: 2}), 1,
			[]string{"sign-extending 64-bit load"}, []int{0}},
		{"a 64-bit ld_abs does not exist", slotBytes(Slot{Code: 0x38}), 1,
			[]string{"64-bit ld_abs/ld_ind"}, []int{0}},
		{"ld_abs with a destination register is reported", slotBytes(Slot{Code: 0x30, Dst: 3}), 1,
			[]string{"reserved dst_reg field set to 3"}, []int{0}},
		{"may_goto with an immediate is reported", slotBytes(Slot{Code: 0xe5, Off: 1, Imm: 9}), 1,
			[]string{"reserved imm field set to 9"}, []int{0}},
		{"a conditional pseudo-jump other than may_goto is unknown", slotBytes(Slot{Code: 0xe5, Src: 1, Off: 1}), 1,
			[]string{"conditional pseudo-jump with src_reg 1"}, []int{0}},
		{"an ALU64 byte swap with register source does not exist", slotBytes(Slot{Code: 0xdf, Dst: 1, Imm: 16}), 1,
			[]string{"alu64 byte swap with register source"}, []int{0}},
		{"neg with a source register is reported", slotBytes(Slot{Code: 0x87, Dst: 1, Src: 2}), 1,
			[]string{"reserved src_reg field set to 2"}, []int{0}},
		{"neg with the register-source bit does not exist", slotBytes(Slot{Code: 0x8f, Dst: 1}), 1,
			[]string{"alu64 neg with register source"}, []int{0}},
		{"nospec is kernel-internal", slotBytes(Slot{Code: 0xc2}), 1,
			[]string{"kernel-internal nospec"}, []int{0}},
		{"a per-CPU move is kernel-internal", slotBytes(Slot{Code: 0xbf, Off: -1}), 1,
			[]string{"kernel-internal per-CPU address move"}, []int{0}},
		{"a BTF id may name its BTF object's fd in the upper immediate", slotBytes(Slot{Code: OpLdImm64, Dst: 1, Src: PseudoBTFID, Imm: 3}, Slot{Imm: 7}), 1, nil, nil},
		{"a kfunc call may carry a BTF object index in off", slotBytes(Slot{Code: 0x85, Src: 2, Off: 1, Imm: 100}), 1, nil, nil},
		{"every slot of garbage is decoded and reported", bytes.Repeat([]byte{0xff}, 24), 3,
			[]string{"unknown opcode", "unknown opcode", "unknown opcode"}, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			insns, probs := Decode(tt.raw)
			if len(insns) != tt.insns {
				t.Errorf("decoded %d instructions, want %d", len(insns), tt.insns)
			}
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems %q, want %d matching %q", len(probs), probs, len(tt.want), tt.want)
			}
			for i, p := range probs {
				if !strings.Contains(p.Error(), tt.want[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, p.Error(), tt.want[i])
				}
				if p.Index != tt.indexes[i] {
					t.Errorf("problem %d at index %d, want %d", i, p.Index, tt.indexes[i])
				}
			}
			var back []byte
			for _, ins := range insns {
				back = ins.Append(back)
			}
			if whole := tt.raw[:len(tt.raw)/Size*Size]; !bytes.Equal(back, whole) {
				t.Errorf("re-encoded %x, want %x", back, whole)
			}
		})
	}
}

func TestKindNamesEveryInstruction(t *testing.T) {
	tests := []struct {
		name string
		ins  Instruction
		want string
	}{
		{"signed division has off 1", one(0x3f, 1, 2, 1, 0), "sdiv"},
		{"signed modulo has off 1", one(0x94, 1, 0, 1, 3), "smod"},
		{"unsigned division has off 0", one(0x3f, 1, 2, 0, 0), "div"},
		{"movsx has off 8", one(0xbf, 1, 2, 8, 0), "movsx"},
		{"a 32-bit movsx has off 16", one(0xbc, 1, 2, 16, 0), "movsx"},
		{"a 32-bit mov with off 32 is a plain mov", one(0xbc, 1, 2, 32, 0), "mov"},
		{"to-le is END with immediate source", one(0xd4, 1, 0, 0, 16), "le"},
		{"to-be is END with register source", one(0xdc, 1, 0, 0, 16), "be"},
		{"bswap is END in ALU64", one(0xd7, 1, 0, 0, 64), "bswap"},
		{"addr_space_cast is mov with off 1", one(0xbf, 1, 2, 1, 1), "addr_space_cast"},
		{"a per-CPU address move has off -1", one(0xbf, 1, 2, -1, 0), "mov_percpu_addr"},
		{"ld_imm64", wide(1, 0, 1, 0), "ld_imm64"},
		{"ld_abs", one(0x20, 0, 0, 0, 1), "ld_abs"},
		{"ld_ind", one(0x40, 0, 1, 0, 1), "ld_ind"},
		{"a sign-extending load", one(0x91, 1, 2, 0, 0), "ldxsx"},
		{"an atomic add without fetch", one(0xc3, 1, 2, 0, 0x00), "atomic_add"},
		{"an atomic xor with fetch", one(0xdb, 1, 2, 0, 0xa1), "atomic_fetch_xor"},
		{"xchg", one(0xdb, 1, 2, 0, 0xe1), "atomic_xchg"},
		{"cmpxchg", one(0xc3, 1, 2, 0, 0xf1), "atomic_cmpxchg"},
		{"an 8-bit load-acquire", one(0xd3, 1, 2, 0, 0x100), "load_acquire"},
		{"a 16-bit store-release", one(0xcb, 1, 2, 0, 0x110), "store_release"},
		{"goto", one(0x05, 0, 0, 1, 0), "ja"},
		{"gotol is JMP32 JA", one(0x06, 0, 0, 0, 1), "gotol"},
		{"may_goto is JCOND with src 0", one(0xe5, 0, 0, 1, 0), "may_goto"},
		{"a helper call", one(0x85, 0, 0, 0, 1), "call"},
		{"a sub-program call has src 1", one(0x85, 0, 1, 0, 1), "call_local"},
		{"a kfunc call has src 2", one(0x85, 0, 2, 0, 1), "call_kfunc"},
		{"a jmp32 signed compare", one(0xc6, 1, 0, 1, 1), "jslt"},
		{"nospec", one(0xc2, 0, 0, 0, 0), "nospec"},
		{"an ALU op 0xf0 is invalid", one(0xf7, 1, 0, 0, 1), "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ins.Kind().String(); got != tt.want {
				t.Errorf("Kind() = %q, want %q", got, tt.want)
			}
		})
	}
}

// Every one of the 256 opcodes either classifies or is reported, and the
// two agree: an instruction is KindInvalid exactly when Check says
// "unknown opcode".
func TestKindAndCheckAgreeOnAllOpcodes(t *testing.T) {
	for code := range 256 {
		for _, src := range []uint8{0, 1, 2} {
			ins := Instruction{Slot: Slot{Code: uint8(code), Src: src}}
			if ins.Code == OpLdImm64 {
				ins.Wide = true
			}
			unknown := false
			for _, p := range ins.Check() {
				if strings.Contains(p.Msg, "unknown opcode") {
					unknown = true
				}
			}
			if unknown != (ins.Kind() == KindInvalid) {
				t.Errorf("code %#02x src %d: Kind %v but Check unknown=%v", code, src, ins.Kind(), unknown)
			}
		}
	}
}

// DecodeAppend reuses the buffer it is given: a second program decoded
// into the first one's buffer takes no new array and keeps nothing of the
// first.
func TestDecodeAppendReusesTheBufferAndKeepsNothingOfTheLastProgram(t *testing.T) {
	first := []byte{
		0x18, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, // r1 = 0x200000001 ll
		0xb7, 0, 0, 0, 7, 0, 0, 0, // r0 = 7
		0x95, 0, 0, 0, 0, 0, 0, 0, // exit
	}
	second := []byte{
		0xb7, 0, 0, 0, 1, 0, 0, 0, // r0 = 1
		0x95, 0, 0, 0, 0, 0, 0, 0, // exit
	}
	buf, _ := DecodeAppend(nil, first)
	if len(buf) != 3 || !buf[0].Wide {
		t.Fatalf("first program: %+v", buf)
	}
	got, probs := DecodeAppend(buf, second)
	want, wantProbs := Decode(second)
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(probs, wantProbs) {
		t.Fatalf("second program into the first one's buffer:\n%+v\nwant\n%+v", got, want)
	}
	if &got[0] != &buf[0] {
		t.Error("DecodeAppend took a new array although the buffer had room")
	}
}
