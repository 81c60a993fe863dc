// Package sensor watches every bpf(BPF_PROG_LOAD) on the host from kernel
// programs attached to the bpf() syscall's entry and exit, and delivers each
// load as a typed Event: the captured program (metadata and all
// instructions, byte-identical to what was submitted), the loader, the
// in-kernel verdict and what was done about it, and the syscall's outcome.
// Losses are counted per reason and never silent. The rest of the agent
// consumes events from a channel and never touches BPF objects.
package sensor
