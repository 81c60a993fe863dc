package output

import (
	"strconv"
	"unsafe"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// KernelText renders decoded instructions for ProgLoad.Disasm in the
// kernel's (verifier log / bpftool) form, one line per instruction prefixed
// with its slot index ("12: (b7) r0 = 0"), so lines stay addressable where an
// ld_imm64 takes two slots. f may be nil: helpers are then named from
// helper.Default() (the running kernel's names, else the built-in table),
// as the verifier log names them.
func KernelText(f *insn.KernelFormatter, insns []insn.Instruction) []string {
	if f == nil {
		f = &insn.KernelFormatter{HelperName: insn.HelperNamer(helper.Default())}
	}
	// Every line is rendered into one buffer that becomes one string, and
	// the lines are slices of it: two allocations per program instead of
	// one per line (the agent renders up to --event-insn-max lines for
	// every load).
	lines := make([]string, len(insns))
	ends := make([]int, len(insns))
	buf := make([]byte, 0, 24*len(insns))
	for i, ins := range insns {
		buf = strconv.AppendInt(buf, int64(ins.Index), 10)
		buf = append(buf, ": "...)
		buf = f.Append(buf, ins)
		ends[i] = len(buf)
	}
	// buf is never written again: the string may share its bytes.
	text := unsafe.String(unsafe.SliceData(buf), len(buf))
	start := 0
	for i, end := range ends {
		lines[i] = text[start:end]
		start = end
	}
	return lines
}
