package insn

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// kernelAddress matches the operand of an ld_imm64 the verifier has already
// rewritten into a kernel address (map by fd or index, map value, BTF
// object) before it prints it: that address is not in the submitted
// instructions, so both sides show it masked.
var kernelAddress = regexp.MustCompile(`= 0x[0-9a-f]+$`)

// TestKernelTextMatchesVerifierLog loads instruction streams into this
// kernel with verifier log level 2 and requires that every instruction line
// the verifier printed is exactly our rendering of the submitted
// instruction at that index.
func TestKernelTextMatchesVerifierLog(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs with a verifier log")
	kn := loadKernelNames(t)
	f := verifierFormatter(kn)
	for _, tp := range kernelTestProgs() {
		t.Run(tp.name, func(t *testing.T) {
			prog := tp.build(t, kn)
			insns, probs := Decode(prog.bytes())
			if len(probs) > 0 {
				t.Errorf("decoding a program the kernel accepts reported problems: %v", probs)
			}
			res := loadProg(t, tp.name, tp.progType, tp.flags, prog)
			seen := compareWithVerifierLog(t, f, insns, res.log)
			if seen == 0 {
				t.Fatalf("no instruction lines in the verifier log:\n%s", res.log)
			}
			t.Logf("%d of %d instructions compared with the verifier log", seen, len(insns))
		})
	}
}

// verifierFormatter names helpers and kfuncs the way the verifier does, from
// the kernel's BTF.
func verifierFormatter(kn *kernelNames) *KernelFormatter {
	return &KernelFormatter{
		HelperName: kn.helperName,
		CallName: func(ins Instruction) string {
			if ins.Src == PseudoKfuncCall {
				return kn.btfName(ins.Imm)
			}
			return ""
		},
	}
}

// compareWithVerifierLog fails the test for every instruction line of log
// that is not our rendering of the instruction at that index, and returns
// how many instructions the log printed.
func compareWithVerifierLog(t *testing.T, f *KernelFormatter, insns []Instruction, log string) int {
	t.Helper()
	printed := verifierInsns(log)
	var diffs []string
	seen := 0
	starts := map[int]bool{}
	for _, ins := range insns {
		starts[ins.Index] = true
		lines, ok := printed[ins.Index]
		if !ok {
			continue // not reached by the verifier
		}
		seen++
		want := f.Format(ins)
		for _, got := range lines {
			if ins.Code == OpLdImm64 && ins.Src != 0 && ins.Src != PseudoFunc {
				got = kernelAddress.ReplaceAllString(got, "= 0x<kernel address>")
				want = kernelAddress.ReplaceAllString(want, "= 0x<kernel address>")
			}
			if got != want {
				diffs = append(diffs, fmt.Sprintf("  insn %d:\n    verifier: %s\n    ours:     %s", ins.Index, got, want))
				break
			}
		}
	}
	for idx := range printed {
		if !starts[idx] {
			diffs = append(diffs, fmt.Sprintf("  insn %d: printed by the verifier but not an instruction start in our decoding", idx))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("%d of %d printed instructions differ from the verifier log:\n%s", len(diffs), seen, strings.Join(diffs, "\n"))
	}
	return seen
}

// TestKernelTextMatchesBpftoolXlated fetches the translated instructions of
// each loaded program by its fd and requires that our listing equals
// "bpftool prog dump xlated id N" line by line.
func TestKernelTextMatchesBpftoolXlated(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs and reading them back with bpftool")
	kn := loadKernelNames(t)
	type loaded struct {
		name   string
		id     uint32
		xlated []byte
		jited  []uint64
	}
	var progs []loaded
	for _, tp := range kernelTestProgs() {
		if testing.Short() && tp.name == "long" {
			continue
		}
		res := loadProg(t, tp.name, tp.progType, tp.flags, tp.build(t, kn))
		xl, jited := fetchXlated(t, res.fd)
		progs = append(progs, loaded{tp.name, res.id, xl, jited})
	}
	// One read of kallsyms after all loads lists every JITed sub-program.
	ks := readKallsyms(t)
	for _, p := range progs {
		t.Run(p.name, func(t *testing.T) {
			insns, probs := Decode(p.xlated)
			for _, p := range probs {
				t.Logf("translated program: %v", p) // kernel-internal forms are expected here
			}
			compareWithBpftool(t, p.id, BpftoolXlated(ks, p.jited, kn.helperName, DialectBpftool7), insns)
		})
	}
}

func compareWithBpftool(t *testing.T, id uint32, f *KernelFormatter, insns []Instruction) {
	t.Helper()
	want := bpftoolXlated(t, id)
	var diffs []string
	for _, ins := range insns {
		got := strings.TrimSuffix(string(f.AppendListing(nil, []Instruction{ins}, ListingBpftool)), "\n")
		w, ok := want[ins.Index]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("  insn %d: bpftool printed nothing, ours: %s", ins.Index, got))
		case w != got:
			diffs = append(diffs, fmt.Sprintf("  insn %d:\n    bpftool: %q\n    ours:    %q", ins.Index, w, got))
		}
		delete(want, ins.Index)
	}
	for idx, w := range want {
		diffs = append(diffs, fmt.Sprintf("  insn %d: bpftool printed %q, not an instruction start in our decoding", idx, w))
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("prog id %d: %d of %d lines differ from bpftool prog dump xlated:\n%s", id, len(diffs), len(insns), strings.Join(diffs, "\n"))
	}
}
