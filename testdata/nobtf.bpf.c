// SPDX-License-Identifier: GPL-2.0
/*
 * Benign programs compiled WITHOUT -g, so the object has no .BTF or .BTF.ext
 * section, and with its map in the legacy "maps" section (struct bpf_map_def),
 * the way objects were built before BTF-defined maps. cilium/ebpf loads it;
 * libbpf 1.0 and later (so bpftool) refuse legacy map definitions.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

/* libbpf 1.x no longer declares it; this is the layout the loaders read. */
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") nobtf_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(u32),
	.value_size = sizeof(u64),
	.max_entries = 4,
};

SEC("socket")
int nobtf_sock_count(struct __sk_buff *skb)
{
	u32 key = skb->pkt_type & 3;
	u64 *n = bpf_map_lookup_elem(&nobtf_counts, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return skb->len;
}

SEC("tracepoint/sched/sched_process_exec")
int nobtf_exec_count(void *ctx)
{
	u32 key = 3;
	u64 *n = bpf_map_lookup_elem(&nobtf_counts, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}
