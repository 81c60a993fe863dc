// SPDX-License-Identifier: GPL-2.0
/*
 * OBJECT-LOADER-REFUSES: cilium/ebpf's object loader refuses this object;
 * ebpf-sentry reads it directly (program/elfdirect.go).
 *
 * What libbpf resolves at load time and cilium/ebpf's object loader refuses:
 *   - the weak maps libbpf's USDT header declares (__bpf_usdt_specs, …),
 *     as every libbpf USDT tool has them;
 *   - a kconfig extern (LINUX_KERNEL_VERSION) and a weak __ksym existence
 *     check of a kfunc (bpf_task_from_pid), which load as ld_imm64 of a value
 *     the loader patches in.
 * ext_usdt is a USDT program; ext_version stores the kernel version and
 * whether the kfunc exists.
 */
#include "sentry_test.h"
#include <stdbool.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

extern int LINUX_KERNEL_VERSION __kconfig;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym __weak;

u64 ext_seen;

SEC("usdt/libc.so.6:libc:setjmp")
int BPF_USDT(ext_usdt, void *buf, int val)
{
	ext_seen += val;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int ext_version(void *ctx)
{
	ext_seen = LINUX_KERNEL_VERSION;
	if (bpf_task_from_pid)
		ext_seen |= 1ULL << 63;
	return 0;
}
