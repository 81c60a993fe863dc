package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runAsmCLI runs the CLI with stdin and args and returns stdout, the error text and the exit code.
func runAsmCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, []byte(stdin), args...)
}

// The bytes of "r0 = 0; exit" per the encoding in include/uapi/linux/bpf.h.
var movExit = "\xb7\x00\x00\x00\x00\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00"

func TestAsmCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog.txt")
	if err := os.WriteFile(src, []byte("BPF_MOV64_IMM(BPF_REG_0, 0),\nBPF_EXIT_INSN(),\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog.bin")
	if err := os.WriteFile(bin, []byte(movExit), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		stdout  string
		errText string
	}{
		{"macros from stdin become raw bytes on stdout", "BPF_MOV64_IMM(BPF_REG_0, 0) BPF_EXIT_INSN()", []string{"asm"}, 0, movExit, ""},
		{"a dash reads stdin too", "BPF_MOV64_IMM(BPF_REG_0, 0) BPF_EXIT_INSN()", []string{"asm", "-"}, 0, movExit, ""},
		{"a file is read by name", "", []string{"asm", src}, 0, movExit, ""},
		{"raw bytes disassemble to one macro per line", "", []string{"asm", "--disasm", bin}, 0,
			"BPF_MOV64_IMM(BPF_REG_0, 0),\nBPF_EXIT_INSN(),\n", ""},
		{"errors name the file, line and column", "BPF_EXIT_INSN()\nBPF_MOV64_IMM(BPF_REG_0)", []string{"asm"}, 2, "",
			"asm <stdin>:2:1: BPF_MOV64_IMM takes 2 arguments (register, immediate), got 1"},
		{"a missing file fails", "", []string{"asm", filepath.Join(dir, "none.txt")}, 2, "", "no such file"},
		{"an empty raw input fails", "", []string{"asm", "--disasm"}, 2, "", "asm --disasm <stdin>: empty input, no instructions"},
		{"a partial trailing slot fails after printing the whole ones", movExit + "\x01\x02", []string{"asm", "--disasm"}, 2,
			"BPF_MOV64_IMM(BPF_REG_0, 0),\nBPF_EXIT_INSN(),\n", "byte 16: trailing partial instruction of 2 bytes"},
		{"an unknown opcode disassembles to BPF_RAW_INSN", "\xff\x21\x01\x00\x02\x00\x00\x00", []string{"asm", "--disasm"}, 0,
			"BPF_RAW_INSN(0xff, BPF_REG_1, BPF_REG_2, 1, 2),\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errText, code := runAsmCLI(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (error %q)", code, tt.code, errText)
			}
			if out != tt.stdout {
				t.Errorf("stdout %q, want %q", out, tt.stdout)
			}
			if !strings.Contains(errText, tt.errText) || (tt.errText == "" && errText != "") {
				t.Errorf("error %q, want it to contain %q", errText, tt.errText)
			}
		})
	}
}

func TestAsmCommandWritesOutputFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.bin")
	if _, errText, code := runAsmCLI(t, "BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN(),", "asm", "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != movExit {
		t.Errorf("wrote % x, want % x", got, movExit)
	}
	// And back: the file disassembles to text that assembles to it again.
	text, errText, code := runAsmCLI(t, "", "asm", "--disasm", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	again, errText, code := runAsmCLI(t, text, "asm")
	if code != 0 || again != movExit {
		t.Errorf("round trip gave % x (exit %d, %s)", again, code, errText)
	}
}
