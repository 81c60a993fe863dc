// SPDX-License-Identifier: GPL-2.0
/*
 * The payload of the light-skeleton test: loaded from inside the kernel by
 * the loader program of lskel/lskelpayload.lskel.h (bpftool gen skeleton
 * -L), never by a bpf(BPF_PROG_LOAD) of its own. A raw tracepoint on
 * task_rename (rare: prctl(PR_SET_NAME), exec) that counts renames.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} renames SEC(".maps");

SEC("raw_tp/task_rename")
int lskel_payload(void *ctx)
{
	u32 k = 0;
	u64 *n = bpf_map_lookup_elem(&renames, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}
