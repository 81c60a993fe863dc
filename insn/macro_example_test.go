package insn_test

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// Macro text in, raw instructions out, and back to the same text.
func ExampleAssembler() {
	a := insn.Assembler{Helpers: helper.Static()}
	raw, err := a.Assemble(`
		BPF_LD_MAP_FD(BPF_REG_1, 3),
		BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem),
		BPF_EXIT_INSN(),`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", raw[:8])
	insns, _ := insn.Decode(raw)
	f := insn.MacroFormatter{Helpers: helper.Static()}
	fmt.Print(string(f.AppendListing(nil, insns)))
	// Output:
	// 18 11 00 00 03 00 00 00
	// BPF_LD_MAP_FD(BPF_REG_1, 3),
	// BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem),
	// BPF_EXIT_INSN(),
}

// Assembly errors name line and column, and suggest what was meant.
func ExampleAssemble_errors() {
	_, err := insn.Assemble("BPF_EXIT_INSN()\nBPF_MOV64_IMX(BPF_REG_0, 0)")
	fmt.Println(err)
	// Output:
	// 2:1: unknown macro BPF_MOV64_IMX, did you mean BPF_MOV64_IMM?
}
