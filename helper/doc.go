// Package helper maps BPF helper function ids (the imm of a BPF_CALL with
// src_reg 0, enum bpf_func_id) to their names and back.
//
// Names come from the running kernel's BTF when it is readable, so helpers
// newer than this binary still get names, and from a built-in table generated
// from libbpf's bpf_helper_defs.h otherwise.
package helper
