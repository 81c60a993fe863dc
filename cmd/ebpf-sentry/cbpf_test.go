package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/cbpf"
)

func runCbpfCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, nil, append([]string{"cbpf"}, args...)...)
}

func TestCbpfCommandFlagsAMagicFilterAndRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	door := filepath.Join(dir, "door.bin")
	os.WriteFile(door, cbpf.Encode([]cbpf.Instruction{
		{Code: 0x28, K: 12}, {Code: 0x15, Jf: 6, K: 0x800}, {Code: 0x30, K: 23}, {Code: 0x15, Jf: 4, K: 17},
		{Code: 0xb1, K: 14}, {Code: 0x48, K: 22}, {Code: 0x15, Jf: 1, K: 0x7255}, {Code: 0x06, K: 0xffff}, {Code: 0x06},
	}), 0o644)
	out, errText, code := runCbpfCLI(t, door)
	if code != 0 || !strings.Contains(out, "(005) ldh      [x + 22]") || !strings.Contains(out, "magic: insn 6: jeq [x + 22] (2 bytes) 0x7255") {
		t.Errorf("exit %d %s:\n%s", code, errText, out)
	}
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, make([]byte, 13), 0o644)
	if _, errText, code := runCbpfCLI(t, bad); code != 2 || !strings.Contains(errText, "not a whole number of 8-byte instructions") {
		t.Errorf("a 13-byte program: exit %d, %q", code, errText)
	}
	ddd := filepath.Join(dir, "f.ddd")
	os.WriteFile(ddd, []byte("2\n40 0 0 12\n6 0 0 0\n6 0 0 0\n"), 0o644)
	if _, errText, code := runCbpfCLI(t, "--ddd", ddd); code != 2 || !strings.Contains(errText, "count line says 2 instructions, 3 follow") {
		t.Errorf("a bad -ddd listing: exit %d, %q", code, errText)
	}
}
