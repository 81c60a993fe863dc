// Package vmtest runs privileged Go test binaries inside small qemu VMs that
// boot Debian kernels, so the hooks this host cannot offer (BPF LSM, kprobes,
// bpf_probe_write_user) are tested on the kernels users run.
//
// The host side (cmd/vmrun) builds the test binaries statically, packs them
// with a static Go PID 1 (cmd/vminit) into an initramfs, boots every kernel of
// the Matrix under TCG, two at a time, and reads each suite's exit code from a
// second serial port that qemu writes to a file. This package holds what both
// sides share: the matrix, the initramfs writer, the config and result
// protocol, and the qemu runner.
package vmtest
