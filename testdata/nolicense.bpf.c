/*
 * Benign programs in an object with NO license section: the loader submits an
 * empty license, which the kernel accepts for programs that call no GPL-only
 * helper. Parsers must not require the section.
 */
#include "sentry_test.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} nolic_stats SEC(".maps");

SEC("xdp")
int nolic_xdp_pass(struct xdp_md *ctx)
{
	u32 key = 0;
	u64 *n = bpf_map_lookup_elem(&nolic_stats, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

SEC("socket")
int nolic_sock_all(struct __sk_buff *skb)
{
	u32 key = 1;
	u64 *last = bpf_map_lookup_elem(&nolic_stats, &key);

	if (last)
		*last = bpf_ktime_get_ns();
	return skb->len;
}
