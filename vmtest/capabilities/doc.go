// Package capabilities is the kernel-matrix capability suite: privileged tests
// that run inside the vmtest VMs and prove, for each Debian kernel, which hooks
// and helpers the sentry can use there. Every kernel label has an explicit
// expectation list; a capability that is expected but missing fails, and so
// does one that is present but not listed, so the list stays true.
//
// Each capability is asked of the shared prober (internal/kernelprobe, what
// the sensor's doctor and hook choice call) and proved by a program that
// uses it; the two must agree. Where EBPF_SENTRY_KERNEL names a kernel of
// the list (vmtest's init sets it from the boot command line) the list
// decides; elsewhere what the host's release and files decide
// (kernelcaps.Decide).
package capabilities
