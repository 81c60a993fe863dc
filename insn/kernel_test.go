package insn

import (
	"fmt"
	"strings"
	"testing"
)

func one(code, dst, src uint8, off int16, imm int32) Instruction {
	return Instruction{Slot: Slot{Code: code, Dst: dst, Src: src, Off: off, Imm: imm}}
}

func wide(dst, src uint8, lo, hi int32) Instruction {
	return Instruction{Slot: Slot{Code: OpLdImm64, Dst: dst, Src: src, Imm: lo}, Wide: true, Next: Slot{Imm: hi}}
}

// Expected lines below were written by hand from the format strings of
// print_bpf_insn in kernel/bpf/disasm.c, for instructions this kernel's
// verifier will not accept (so the privileged tests cannot print them) and
// for the fallbacks without name hooks.
func TestFormatKernelFollowsDisasmC(t *testing.T) {
	tests := []struct {
		name string
		ins  Instruction
		want string
	}{
		{"a helper call without a name hook prints unknown", one(0x85, 0, 0, 0, 14), "(85) call unknown#14"},
		{"a kfunc call without a name hook prints kernel-function", one(0x85, 0, 2, 0, 12345), "(85) call kernel-function#12345"},
		{"a sub-program call without a hook prints the signed offset", one(0x85, 0, 1, 0, -7), "(85) call pc-7"},
		{"a call with an unknown pseudo source prints unknown", one(0x85, 0, 3, 0, 1), "(85) call unknown#1"},
		{"a JMP32 call is printed like a call", one(0x86, 0, 0, 0, 5), "(86) call unknown#5"},
		{"ld_imm64 of a map fd prints the fd in hex", wide(1, 1, 5, 0), "(18) r1 = 0x5"},
		{"ld_imm64 of a 64-bit constant joins both halves", wide(2, 0, -1, 0x12345678), "(18) r2 = 0x12345678ffffffff"},
		{"ld_imm64 of a BTF id prints the id", wide(3, 3, 1234, 0), "(18) r3 = 0x4d2"},
		{"ld_imm64 of a map index prints the index", wide(1, 5, 2, 0), "(18) r1 = 0x2"},
		{"ld_imm64 of a map index value joins index and offset", wide(1, 6, 2, 16), "(18) r1 = 0x1000000002"},
		{"addr_space_cast prints both address spaces", one(0xbf, 1, 2, 1, 1), "(bf) r1 = addr_space_cast(r2, 0, 1)"},
		{"addr_space_cast to arena prints as unsigned", one(0xbf, 1, 2, 1, 1<<16), "(bf) r1 = addr_space_cast(r2, 1, 0)"},
		{"a per-CPU address move prints the percpu cast", one(0xbf, 0, 0, -1, 0), "(bf) r0 = &(void __percpu *)(r0)"},
		{"nospec is a bare word", one(0xc2, 0, 0, 0, 0), "(c2) nospec"},
		{"an unknown ALU operation prints a NULL operator", one(0xe7, 1, 0, 0, 3), "(e7) r1 (null) 3"},
		{"a register-source alu64 byte swap is printed as bswap", one(0xdf, 1, 0, 0, 16), "(df) r1 = bswap16 r1"},
		{"a 32-bit movsx from 32 bits prints (s32) as disasm.c does", one(0xbc, 1, 2, 32, 0), "(bc) w1 = (s32)w2"},
		{"an unknown stx mode is a BUG line", one(0x23, 1, 2, 0, 0), "BUG_23"},
		{"an unknown atomic operation is a BUG line", one(0xdb, 1, 2, 0, 0x42), "BUG_db"},
		{"an 8-bit atomic add is printed although no kernel accepts it", one(0xd3, 1, 2, -4, 0), "(d3) lock *(u8 *)(r1 -4) += r2"},
		{"a 16-bit load-acquire is printed with its size", one(0xcb, 0, 1, 2, 0x100), "(cb) r0 = load_acquire((u16 *)(r1 +2))"},
		{"an unknown st mode is a BUG line", one(0x22, 1, 0, 0, 0), "BUG_st_22"},
		{"an unknown ldx mode is a BUG line", one(0x21, 1, 0, 0, 0), "BUG_ldx_21"},
		{"a 64-bit sign-extending load prints a NULL size", one(0x99, 1, 2, 0, 0), "(99) r1 = *((null) *)(r2 +0)"},
		{"an unknown ld mode is a BUG line", one(0x60, 1, 0, 0, 0), "BUG_ld_60"},
		{"a 32-bit ld imm is a BUG line", one(0x00, 1, 0, 0, 0), "BUG_ld_00"},
		{"ld_abs prints the skb offset", one(0x30, 0, 0, 0, -4), "(30) r0 = *(u8 *)skb[-4]"},
		{"ld_ind prints register and offset", one(0x48, 0, 3, 0, 7), "(48) r0 = *(u16 *)skb[r3 + 7]"},
		{"a negative jump immediate prints as unsigned hex", one(0x15, 1, 0, -3, -1), "(15) if r1 == 0xffffffff goto pc-3"},
		{"a jmp32 register compare uses w registers", one(0xbe, 1, 2, 4, 0), "(be) if w1 <= w2 goto pc+4"},
		{"a may_goto with another source is a conditional with NULL operator", one(0xe5, 0, 1, 2, 0), "(e5) if r0 (null) 0x0 goto pc+2"},
		{"a jmp32 may_goto is not may_goto", one(0xe6, 0, 0, 2, 0), "(e6) if w0 (null) 0x0 goto pc+2"},
		{"exit in class jmp32 falls through to the conditional form", one(0x96, 0, 0, 0, 0), "(96) if w0 exit 0x0 goto pc+0"},
		{"ja with a register source falls through to the register form", one(0x0d, 1, 2, 3, 0), "(0d) if r1 jmp r2 goto pc+3"},
		{"registers above r10 are printed as they are", one(0xbf, 15, 11, 0, 0), "(bf) r15 = r11"},
		{"a hand-built register beyond a nibble is printed in decimal", one(0xbf, 200, 1, 0, 0), "(bf) r200 = r1"},
		{"an all-zero-field neg of w0", one(0x84, 0, 0, 0, 0), "(84) w0 = -w0"},
		{"be16 keeps the r prefix in the 32-bit class", one(0xdc, 3, 0, 0, 16), "(dc) r3 = be16 r3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatKernel(tt.ins); got != tt.want {
				t.Errorf("FormatKernel(%+v)\n got: %s\nwant: %s", tt.ins.Slot, got, tt.want)
			}
		})
	}
}

func TestInstructionStringIsTheKernelForm(t *testing.T) {
	if got, want := fmt.Sprint(one(0x85, 0, 0, 0, 14)), "(85) call unknown#14"; got != want {
		t.Errorf("Sprint = %q, want %q", got, want)
	}
}

func TestFormatKernelHooks(t *testing.T) {
	f := &KernelFormatter{
		HelperName: func(id int32) string {
			if id == 14 {
				return "bpf_get_current_pid_tgid"
			}
			return ""
		},
		CallName: func(ins Instruction) string {
			if ins.Src == PseudoKfuncCall {
				return "bpf_rcu_read_lock"
			}
			return ""
		},
		Imm64Text: func(ins Instruction, imm uint64) string {
			if ins.Src == PseudoMapFD {
				return "map[id:7]"
			}
			return ""
		},
	}
	tests := []struct {
		name string
		f    *KernelFormatter
		ins  Instruction
		want string
	}{
		{"a named helper", f, one(0x85, 0, 0, 0, 14), "(85) call bpf_get_current_pid_tgid#14"},
		{"a helper the hook does not know stays unknown", f, one(0x85, 0, 0, 0, 15), "(85) call unknown#15"},
		{"a kfunc named by the call hook", f, one(0x85, 0, 2, 0, 99), "(85) call bpf_rcu_read_lock#99"},
		{"the helper hook is not asked about kfunc ids", &KernelFormatter{HelperName: f.HelperName}, one(0x85, 0, 2, 0, 14), "(85) call kernel-function#14"},
		{"a map reference rendered by the imm hook", f, wide(1, 1, 5, 0), "(18) r1 = map[id:7]"},
		{"a constant the imm hook declines", f, wide(1, 0, 5, 0), "(18) r1 = 0x5"},
		{"hidden pointers print zero", &KernelFormatter{HidePointers: true}, wide(1, 2, 5, 8), "(18) r1 = 0x0"},
		{"hidden pointers leave constants alone", &KernelFormatter{HidePointers: true}, wide(1, 0, 5, 8), "(18) r1 = 0x800000005"},
		{"the bpftool 7 dialect has no kernel-function fallback", &KernelFormatter{Dialect: DialectBpftool7}, one(0x85, 0, 2, 0, 3), "(85) call unknown#3"},
		{"the bpftool 7 dialect prints gotol as a conditional", &KernelFormatter{Dialect: DialectBpftool7}, one(0x06, 0, 0, 0, 1), "(06) if w0 jmp 0x1 goto pc+0"},
		{"the bpftool 7 dialect has no nospec", &KernelFormatter{Dialect: DialectBpftool7}, one(0xc2, 0, 0, 0, 0), "BUG_st_c2"},
		{"the bpftool 7 dialect prints a per-CPU move as a plain move", &KernelFormatter{Dialect: DialectBpftool7}, one(0xbf, 0, 0, -1, 0), "(bf) r0 = r0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Format(tt.ins); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendListingPrefixes(t *testing.T) {
	raw := []byte{
		0xb7, 0x00, 0, 0, 0, 0, 0, 0, // r0 = 0
		0x18, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // r1 = 0x1 (two slots)
		0x95, 0, 0, 0, 0, 0, 0, 0, // exit
	}
	insns, probs := Decode(raw)
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	var f KernelFormatter
	if got, want := string(f.AppendListing(nil, insns, ListingBpftool)), "   0: (b7) r0 = 0\n   1: (18) r1 = 0x1\n   3: (95) exit\n"; got != want {
		t.Errorf("bpftool listing:\n%s\nwant:\n%s", got, want)
	}
	if got, want := string(f.AppendListing(nil, insns, ListingVerifier)), "0: (b7) r0 = 0\n1: (18) r1 = 0x1\n3: (95) exit\n"; got != want {
		t.Errorf("verifier listing:\n%s\nwant:\n%s", got, want)
	}
	// bpftool's "% 4d" always keeps a blank for the sign, even past 4 digits.
	big := []Instruction{{Index: 999, Slot: Slot{Code: 0x95}}, {Index: 1000, Slot: Slot{Code: 0x95}}, {Index: 10000, Slot: Slot{Code: 0x95}}}
	if got, want := string(f.AppendListing(nil, big, ListingBpftool)), " 999: (95) exit\n 1000: (95) exit\n 10000: (95) exit\n"; got != want {
		t.Errorf("wide indexes:\n%s\nwant:\n%s", got, want)
	}
	var sb strings.Builder
	if err := f.WriteListing(&sb, insns, ListingBpftool); err != nil || sb.String() != string(f.AppendListing(nil, insns, ListingBpftool)) {
		t.Errorf("WriteListing = %q, %v; want the AppendListing text", sb.String(), err)
	}
}
