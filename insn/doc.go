// Package insn decodes raw eBPF instruction streams and renders them in the
// kernel's text form (verifier log / bpftool), as filter.h builder macros and as
// JSON, and assembles macro text back into bytes.
//
// Decoding never fails: Decode returns every instruction it could split off
// plus a list of Problems (unknown opcodes, reserved fields set, registers
// above r10, a truncated ld_imm64, a trailing partial slot), each naming its
// slot index and byte offset. Instruction.Kind classifies an instruction from
// all its fields (sdiv vs div, kfunc vs helper call, …); Instruction.Check
// applies the context-free validity rules of the kernel's verifier.
//
// KernelFormatter prints the text of the kernel's kernel/bpf/disasm.c:
//
//	var f insn.KernelFormatter            // no names: "call unknown#14"
//	f.HelperName = helperNames            // func(id int32) string
//	insns, _ := insn.Decode(raw)
//	out := f.AppendListing(nil, insns, insn.ListingBpftool)
//
// Names the instruction stream does not hold come from hooks
// (HelperName, CallName, Imm64Text), as in disasm.c's struct bpf_insn_cbs.
// BpftoolXlated builds a formatter whose hooks reproduce
// "bpftool prog dump xlated" for instructions fetched from the kernel.
package insn
