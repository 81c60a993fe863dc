package insn

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// benchProgram returns n slots of instructions in the proportions of
// compiled tracing programs: context and stack loads/stores, ALU, map
// lookups through ld_imm64 and helper calls, branches, atomics, a few
// cpu-v4 instructions and exits.
func benchProgram(n int) []byte {
	block := []Instruction{
		one(0xbf, 6, 1, 0, 0),        // r6 = r1
		one(0x79, 7, 6, 112, 0),      // r7 = *(u64 *)(r6 +112)
		one(0xb7, 1, 0, 0, 0),        // r1 = 0
		one(0x63, 10, 1, -4, 0),      // *(u32 *)(r10 -4) = r1
		one(0xbf, 2, 10, 0, 0),       // r2 = r10
		one(0x07, 2, 0, 0, -4),       // r2 += -4
		wide(1, PseudoMapFD, 5, 0),   // r1 = map fd 5
		one(0x85, 0, 0, 0, 1),        // call bpf_map_lookup_elem
		one(0x15, 0, 0, 6, 0),        // if r0 == 0x0 goto pc+6
		one(0x61, 1, 0, 0, 0),        // r1 = *(u32 *)(r0 +0)
		one(0x04, 1, 0, 0, 1),        // w1 += 1
		one(0x63, 0, 1, 0, 0),        // *(u32 *)(r0 +0) = r1
		one(0xdb, 0, 1, 8, 1),        // r1 = atomic64_fetch_add((u64 *)(r0 +8), r1)
		one(0x85, 0, 0, 0, 14),       // call bpf_get_current_pid_tgid
		one(0x77, 0, 0, 0, 32),       // r0 >>= 32
		one(0x7b, 10, 0, -16, 0),     // *(u64 *)(r10 -16) = r0
		one(0x5d, 7, 0, -3, 0),       // if r7 != r0 goto pc-3
		one(0xbf, 3, 7, 16, 0),       // r3 = (s16)r7
		one(0x3f, 3, 2, 1, 0),        // r3 s/= r2
		one(0xd7, 3, 0, 0, 32),       // r3 = bswap32 r3
		one(0x91, 4, 6, 5, 0),        // r4 = *(s8 *)(r6 +5)
		one(0xa6, 4, 0, 2, 0x2f),     // if w4 < 0x2f goto pc+2
		one(0x72, 10, 0, -24, 0x61),  // *(u8 *)(r10 -24) = 97
		one(0x85, 0, 2, 0, 51234),    // kfunc call
		wide(2, 0, 0x6c6c6568, 0x6f), // r2 = 0x6f6c6c6568
		one(0x85, 0, 1, 0, 12),       // call pc+12
		one(0xb7, 0, 0, 0, 0),        // r0 = 0
		one(0x95, 0, 0, 0, 0),        // exit
	}
	var b []byte
	for len(b) < n*Size {
		for _, ins := range block {
			if len(b)+ins.Slots()*Size > n*Size {
				break
			}
			b = ins.Append(b)
		}
		if rest := n*Size - len(b); rest > 0 && rest < 2*Size {
			b = one(0x95, 0, 0, 0, 0).Append(b)
		}
	}
	return b
}

func benchFormatter() *KernelFormatter {
	names := map[int32]string{1: "bpf_map_lookup_elem", 14: "bpf_get_current_pid_tgid"}
	return &KernelFormatter{HelperName: func(id int32) string { return names[id] }}
}

// BenchmarkDecodeFormatKernel1M decodes a 1,000,000-slot program and writes
// its kernel-form listing (bpftool layout) to io.Discard.
func BenchmarkDecodeFormatKernel1M(b *testing.B) {
	raw := benchProgram(MaxInstructions)
	f := benchFormatter()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		insns, _ := Decode(raw)
		if err := f.WriteListing(io.Discard, insns, ListingBpftool); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKernelVsObjdump1M times, in each iteration, our decode+format of
// the 1,000,000-slot program and "llvm-objdump-19 -d" of an ELF holding the
// same bytes (both writing their text to a discarded sink), and reports
// both times and the ratio objdump/ours. Starting a process is not
// objdump's work: each iteration also times an exec of `true`, and the
// objdump figures and ratios have that baseline (measured in the same run)
// subtracted.
func BenchmarkKernelVsObjdump1M(b *testing.B) {
	objdump, err := exec.LookPath("llvm-objdump-19")
	if err != nil {
		b.Skip("llvm-objdump-19 not installed")
	}
	trueBin, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	raw := benchProgram(MaxInstructions)
	elf := filepath.Join(b.TempDir(), "prog.o")
	if err := os.WriteFile(elf, bpfELF(raw), 0o644); err != nil {
		b.Fatal(err)
	}
	// Check once that objdump reads the ELF and sees every instruction.
	out, err := exec.Command(objdump, "-d", elf).Output()
	if err != nil {
		b.Fatalf("llvm-objdump -d: %v", err)
	}
	insns, _ := Decode(raw)
	if lines := bytes.Count(out, []byte("\n")); lines < len(insns) {
		b.Fatalf("llvm-objdump printed %d lines for %d instructions", lines, len(insns))
	}
	f := benchFormatter()
	run := func(bin string, args ...string) (wall, cpu time.Duration) {
		start := time.Now()
		cmd := exec.Command(bin, args...)
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	// Wall time and CPU time (user+system) of both: on a shared machine the
	// CPU times are the steadier comparison.
	var ours, theirs, exe, oursCPU, theirsCPU, exeCPU time.Duration
	for b.Loop() {
		start, cpu0 := time.Now(), selfCPU(b)
		insns, _ := Decode(raw)
		if err := f.WriteListing(io.Discard, insns, ListingBpftool); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		oursCPU += selfCPU(b) - cpu0

		w, c := run(objdump, "-d", elf)
		theirs, theirsCPU = theirs+w, theirsCPU+c
		w, c = run(trueBin)
		exe, exeCPU = exe+w, exeCPU+c
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / n }
	b.ReportMetric(ms(ours), "ms-sentry/op")
	b.ReportMetric(ms(theirs-exe), "ms-objdump/op")
	b.ReportMetric(ms(exe), "ms-exec-true/op")
	b.ReportMetric(float64(theirs-exe)/float64(ours), "objdump/sentry")
	b.ReportMetric(ms(oursCPU), "cpu-ms-sentry/op")
	b.ReportMetric(ms(theirsCPU-exeCPU), "cpu-ms-objdump/op")
	b.ReportMetric(float64(theirsCPU-exeCPU)/float64(oursCPU), "cpu-objdump/sentry")
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bpfELF wraps raw instructions into a minimal relocatable ELF64
// little-endian object for EM_BPF: a null section, an executable .text and
// the section-name string table.
func bpfELF(raw []byte) []byte {
	const (
		ehsize  = 64
		shsize  = 64
		emBPF   = 247
		etRel   = 1
		shtProg = 1
		shtStr  = 3
	)
	shstr := []byte("\x00.text\x00.shstrtab\x00")
	textOff := uint64(ehsize)
	strOff := textOff + uint64(len(raw))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	le := binary.LittleEndian
	b := make([]byte, 0, int(shOff)+3*shsize)
	b = append(b, 0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	b = le.AppendUint16(b, etRel)
	b = le.AppendUint16(b, emBPF)
	b = le.AppendUint32(b, 1)     // e_version
	b = le.AppendUint64(b, 0)     // e_entry
	b = le.AppendUint64(b, 0)     // e_phoff
	b = le.AppendUint64(b, shOff) // e_shoff
	b = le.AppendUint32(b, 0)     // e_flags
	b = le.AppendUint16(b, ehsize)
	b = le.AppendUint16(b, 0) // e_phentsize
	b = le.AppendUint16(b, 0) // e_phnum
	b = le.AppendUint16(b, shsize)
	b = le.AppendUint16(b, 3) // e_shnum
	b = le.AppendUint16(b, 2) // e_shstrndx
	b = append(b, raw...)
	b = append(b, shstr...)
	b = append(b, make([]byte, int(shOff)-len(b))...)
	section := func(name, typ uint32, flags, off, size, align uint64) {
		b = le.AppendUint32(b, name)
		b = le.AppendUint32(b, typ)
		b = le.AppendUint64(b, flags)
		b = le.AppendUint64(b, 0) // sh_addr
		b = le.AppendUint64(b, off)
		b = le.AppendUint64(b, size)
		b = le.AppendUint32(b, 0) // sh_link
		b = le.AppendUint32(b, 0) // sh_info
		b = le.AppendUint64(b, align)
		b = le.AppendUint64(b, 0) // sh_entsize
	}
	section(0, 0, 0, 0, 0, 0)
	section(1, shtProg, 0x2|0x4, textOff, uint64(len(raw)), 8) // SHF_ALLOC|SHF_EXECINSTR
	section(7, shtStr, 0, strOff, uint64(len(shstr)), 1)
	return b
}

// TestBenchProgramIsRealistic keeps the benchmark input honest: exactly
// one million slots, all of them decoded without a problem, and
// llvm-objdump agrees with our decoding on where each instruction starts.
func TestBenchProgramIsRealistic(t *testing.T) {
	raw := benchProgram(MaxInstructions)
	if len(raw) != MaxInstructions*Size {
		t.Fatalf("%d bytes, want %d", len(raw), MaxInstructions*Size)
	}
	insns, probs := Decode(raw)
	if len(probs) > 0 {
		t.Fatalf("problems in the benchmark program: %v", probs[:min(5, len(probs))])
	}
	last := insns[len(insns)-1]
	if last.Index+last.Slots() != MaxInstructions {
		t.Fatalf("decoding ends at slot %d, want %d", last.Index+last.Slots(), MaxInstructions)
	}
	objdump, err := exec.LookPath("llvm-objdump-19")
	if err != nil {
		testutils.SkipOrFail(t, "llvm-objdump-19 not installed")
	}
	elf := filepath.Join(t.TempDir(), "prog.o")
	if err := os.WriteFile(elf, bpfELF(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(objdump, "-d", elf).Output()
	if err != nil {
		t.Fatalf("llvm-objdump -d: %v", err)
	}
	starts := make([]int, 0, len(insns))
	for _, line := range strings.Split(string(out), "\n") {
		head, _, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.Contains(line, "\t") {
			continue
		}
		if n, err := strconv.Atoi(head); err == nil {
			starts = append(starts, n)
		}
	}
	if len(starts) != len(insns) {
		t.Fatalf("llvm-objdump shows %d instructions, we decode %d", len(starts), len(insns))
	}
	for i, ins := range insns {
		if starts[i] != ins.Index {
			t.Fatalf("instruction %d starts at slot %d for llvm-objdump, %d for us", i, starts[i], ins.Index)
		}
	}
}
