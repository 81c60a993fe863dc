// SPDX-License-Identifier: GPL-2.0
/*
 * Benign cgroup programs: byte counters on a cgroup's ingress and egress and
 * a socket-creation hook that counts sockets by family and allows them all.
 * What systemd's IP accounting and container runtimes attach; must not alert.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

enum { DIR_INGRESS, DIR_EGRESS, DIR_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DIR_MAX);
	__type(key, u32);
	__type(value, u64);
} cg_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} cg_sock_families SEC(".maps");

static __always_inline void count_bytes(u32 dir, u64 len)
{
	u64 *bytes = bpf_map_lookup_elem(&cg_bytes, &dir);

	if (bytes)
		__sync_fetch_and_add(bytes, len);
}

SEC("cgroup_skb/ingress")
int cg_count_ingress(struct __sk_buff *skb)
{
	count_bytes(DIR_INGRESS, skb->len);
	return 1;
}

SEC("cgroup_skb/egress")
int cg_count_egress(struct __sk_buff *skb)
{
	count_bytes(DIR_EGRESS, skb->len);
	return 1;
}

SEC("cgroup/sock_create")
int cg_sock_create(struct bpf_sock *sk)
{
	u32 family = sk->family;
	u64 one = 1, *n;

	n = bpf_map_lookup_elem(&cg_sock_families, &family);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&cg_sock_families, &family, &one, BPF_NOEXIST);
	return 1;
}
