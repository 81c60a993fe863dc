// Package kernelprobe is the one place that asks the running kernel what it
// offers the sentry: BTF, the active LSMs and whether the BPF LSM is among
// them, lockdown, the syscall tracepoints, kprobes, whether a program of a
// given type and attach point loads, which helpers tracepoint programs may
// call, and the 32-bit bpf() entry point.
//
// The sensor's ProbeKernel (doctor, PlanFor) and its hook choice call these
// functions; the kernel-matrix capability suite (vmtest/capabilities) calls
// the same functions on every VM kernel, compares their answers with the
// kernel's expectation list, and backs each answer with evidence (a hook
// that fires, a load that is denied, a signal that arrives). A question
// asked here is therefore asked the same way by the product and by the
// suite that proves it.
//
// The parsers (ParseLockdown, ParseLSMs) build everywhere; the probes are
// Linux only.
package kernelprobe
