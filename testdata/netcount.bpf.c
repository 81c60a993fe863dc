// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Benign networking: per-protocol packet counters, one XDP program on receive
 * and one tc classifier on transmit, both passing every packet. The shape of
 * every traffic-accounting tool; must not alert.
 */
#include "sentry_test.h"
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct proto_counters {
	u64 packets;
	u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, u32);
	__type(value, struct proto_counters);
} rx_by_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct proto_counters);
} tx_total SEC(".maps");

SEC("xdp")
int xdp_count_proto(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct proto_counters *c, init = {};
	u64 len = data_end - data;
	u32 proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	proto = ip->protocol;

	c = bpf_map_lookup_elem(&rx_by_proto, &proto);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, len);
	} else {
		init.packets = 1;
		init.bytes = len;
		bpf_map_update_elem(&rx_by_proto, &proto, &init, BPF_NOEXIST);
	}
	return XDP_PASS;
}

SEC("tc")
int tc_count_egress(struct __sk_buff *skb)
{
	u32 zero = 0;
	struct proto_counters *c = bpf_map_lookup_elem(&tx_total, &zero);

	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return TC_ACT_OK;
}
