package kernel

import (
	"encoding/binary"
	"testing"
)

func slot(code, regs uint8, imm int32) []byte {
	b := make([]byte, 8)
	b[0], b[1] = code, regs
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

func prog(slots ...[]byte) []byte {
	var out []byte
	for _, s := range slots {
		out = append(out, s...)
	}
	return out
}

func TestHashIgnoresMapFdsOnly(t *testing.T) {
	// ld_imm64 r1 = map fd N (src_reg 1 in the high nibble), then exit.
	withFD := func(src uint8, fd int32) []byte {
		return prog(slot(0x18, src<<4|1, fd), slot(0, 0, 0), slot(0x95, 0, 0))
	}
	tests := []struct {
		name string
		a, b []byte
		same bool
	}{
		{"two loads of one program with different map fds hash alike", withFD(1, 3), withFD(1, 7), true},
		{"map value and map index fds are ignored too", withFD(2, 3), withFD(2, 9), true},
		{"fd_array indexes are ignored", withFD(5, 0), withFD(5, 4), true},
		{"a plain 64-bit constant is not an fd", withFD(0, 3), withFD(0, 7), false},
		{"a different instruction changes the hash", prog(slot(0xb7, 0, 1), slot(0x95, 0, 0)), prog(slot(0xb7, 0, 2), slot(0x95, 0, 0)), false},
		{"order matters", prog(slot(0xb7, 0, 1), slot(0xb7, 1, 1)), prog(slot(0xb7, 1, 1), slot(0xb7, 0, 1)), false},
		{"a trailing partial slot is ignored", prog(slot(0x95, 0, 0)), append(prog(slot(0x95, 0, 0)), 1, 2, 3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hash(tt.a) == Hash(tt.b); got != tt.same {
				t.Errorf("Hash(a)==Hash(b) is %v, want %v", got, tt.same)
			}
		})
	}
	if Hash(nil) != HashInit {
		t.Errorf("empty program hash %#x, want the initial value", Hash(nil))
	}
}

func TestAddInsnCountsHelperCallsOnly(t *testing.T) {
	var f Facts
	f.InsnHash = HashInit
	for _, s := range [][]byte{
		slot(0x85, 0, 14),    // helper call: counted
		slot(0x85, 0, 14),    // again
		slot(0x85, 1<<4, 14), // bpf-to-bpf call (src 1): not a helper
		slot(0x85, 2<<4, 14), // kfunc call (src 2): not a helper
		slot(0x85, 0, 300),   // helper id past the table: helper_other
		slot(0x05, 0, 14),    // ja: not a call
	} {
		AddInsn(&f, binary.LittleEndian.Uint64(s))
	}
	if f.HelperCnt[14] != 2 || f.Used[0] != 1<<14 || f.HelperOther != 1 {
		t.Fatalf("counts %d, used %#x, other %d; want 2, bit 14, 1", f.HelperCnt[14], f.Used[0], f.HelperOther)
	}
}

func TestNamesAreStoredAsTheKernelDoes(t *testing.T) {
	var n [16]int8
	SetString(&n, "handle_execve_enter1")
	if got := String(n); got != "handle_execve_e" || n[15] != 0 {
		t.Errorf("stored %q (last byte %d), want 15 bytes and a NUL", got, n[15])
	}
	SetString(&n, "ab")
	for i := 2; i < 16; i++ {
		if n[i] != 0 {
			t.Fatalf("byte %d after a shorter name is %d, want 0", i, n[i])
		}
	}
}
