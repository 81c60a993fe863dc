// Package capabilities is the kernel-matrix capability suite: privileged tests
// that run inside the vmtest VMs and prove, for each Debian kernel, which hooks
// and helpers the sentry can use there. Every kernel label has an explicit
// expectation list; a capability that is expected but missing fails, and so
// does one that is present but not listed, so the list stays true.
//
// The tests run only where EBPF_SENTRY_KERNEL names a kernel of the list
// (vmtest's init sets it from the boot command line); elsewhere they skip.
package capabilities
