// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE by position only: programs whose instructions say nothing alarming (they count calls in a
 * map), so that only where they are attached can tell what they are for:
 * the attach tests put count_dirents on syscalls/sys_enter_getdents64 (the
 * file hider's position), count_raw on the raw tracepoint sys_enter, and
 * count_pam on a uprobe of libpam (the credential sniffer's position).
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);
	__type(value, u64);
} calls SEC(".maps");

static __always_inline void count(u32 slot)
{
	u64 *n = bpf_map_lookup_elem(&calls, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tracepoint/syscalls/sys_enter_getdents64")
int count_dirents(void *ctx)
{
	count(0);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int count_raw(void *ctx)
{
	count(1);
	return 0;
}

SEC("uprobe")
int count_pam(void *ctx)
{
	count(2);
	return 0;
}
