// Package uffd holds the kernel in the middle of reading user memory for as
// long as a test wants: a Region is anonymous memory registered with
// userfaultfd(2), so the kernel's first read of it (copy_from_user in a
// syscall, bpf_copy_from_user in a sleepable BPF program) faults and waits
// until the Region's handler supplies the page. Tests use it to widen the
// window between a syscall's entry and the kernel's copy of its arguments.
//
// Kernel-mode faults are only served by a userfaultfd created without
// UFFD_USER_MODE_ONLY, which needs CAP_SYS_PTRACE unless the sysctl
// vm.unprivileged_userfaultfd is 1: in practice, root.
package uffd
