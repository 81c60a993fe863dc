// Package target names what a BPF program is attached to, in the terms a
// person (and a rule) uses: "syscalls/sys_enter_getdents64" for a
// tracepoint id, the function for a BTF id, "eth0" for an ifindex, the
// cgroup path for a cgroup inode, "/usr/lib/…/libpam.so.0:pam_get_authtok"
// for a uprobe's binary and offset. It reads the running host (tracefs,
// vmlinux BTF, /proc/kallsyms, the cgroup2 mount, ELF symbol tables); each
// source is read lazily and cached, and whatever cannot be resolved is
// said in Target.Unresolved instead of guessed.
package target
