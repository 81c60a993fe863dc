// Package cfg builds the control-flow graph of an eBPF program from its
// decoded instructions, without a kernel: basic blocks grouped into
// sub-programs, true/false/jump/fall-through edges, call edges between
// sub-programs, and marks on the instructions an analyst needs to see (rule
// matches with their rule id, strings where they are built, tail-call sites
// with their prog_array). It renders the graph as DOT (with the same blocks
// and edges as "bpftool prog dump xlated … visual") and lays it out itself for
// the HTML report, so that programs of 100,000 instructions stay viewable.
package cfg
