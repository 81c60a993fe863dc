// SPDX-License-Identifier: GPL-2.0
/*
 * OBJECT-LOADER-REFUSES: cilium/ebpf's object loader refuses this object;
 * ebpf-sentry reads it directly (program/elfdirect.go).
 *
 * Compiled without -g (no .BTF): a weak legacy map definition and a call of
 * an extern function. cilium/ebpf's loader refuses the weak map; without
 * BTF nothing tells whether the extern is a kfunc or a function the loader
 * links in.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") __weak nbw_counts = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(u32),
	.value_size = sizeof(u64),
	.max_entries = 64,
};

extern int nbw_filter(u32 pid) __attribute__((section(".text")));

SEC("kprobe/do_unlinkat")
int nbw_unlink(void *ctx)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1;

	if (nbw_filter(pid))
		bpf_map_update_elem(&nbw_counts, &pid, &one, BPF_ANY);
	return 0;
}
