package output

import (
	"strconv"

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
	lines := make([]string, len(insns))
	var buf []byte
	for i, ins := range insns {
		buf = strconv.AppendInt(buf[:0], int64(ins.Index), 10)
		buf = append(buf, ": "...)
		buf = f.Append(buf, ins)
		lines[i] = string(buf)
	}
	return lines
}
