// Package insn decodes raw eBPF instruction streams and renders them in the
// kernel's text form (verifier log / bpftool), as filter.h builder macros and as
// JSON, and assembles macro text back into bytes.
package insn
