// Package inventory lists what is loaded in the kernel now: every BPF
// program (its translated instructions and bpf_prog_info), map and link, and
// who owns each: the processes holding fds to it and its bpffs pins. It is
// the source behind "ebpf-sentry scan" and the sensor's reconciliation; what
// it returns is plain program.Program values for the analysis and rules.
package inventory
