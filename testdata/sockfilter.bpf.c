// SPDX-License-Identifier: GPL-2.0
/*
 * Benign classic-style socket filter: keeps IPv4 TCP packets to port 22 and
 * drops the rest, reading the packet with the legacy packet-access
 * instructions: BPF_LD|BPF_ABS at fixed offsets, BPF_LD|BPF_IND past the
 * variable-length IP header. What tcpdump-style filters compile to.
 */
#include "sentry_test.h"
#include <linux/if_ether.h>
#include <linux/in.h>

char LICENSE[] SEC("license") = "GPL";

/* clang lowers these intrinsics to ld_abs, or ld_ind when off is not constant. */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

#define IP_OFF ETH_HLEN

SEC("socket")
int sockfilter_ssh(struct __sk_buff *skb)
{
	u64 ihl;

	if (load_half(skb, offsetof(struct ethhdr, h_proto)) != ETH_P_IP)
		return 0;
	if (load_byte(skb, IP_OFF + 9) != IPPROTO_TCP)
		return 0;
	/* Fragments other than the first carry no TCP header. */
	if (load_half(skb, IP_OFF + 6) & 0x1fff)
		return 0;
	ihl = (load_byte(skb, IP_OFF) & 0x0f) << 2;
	if (load_half(skb, IP_OFF + ihl + 2) != 22)
		return 0;
	/* Source address and sequence number: a word each through ld_ind/ld_abs. */
	if (load_word(skb, IP_OFF + 12) == 0 || load_word(skb, IP_OFF + ihl + 4) == 0)
		return 0;
	return skb->len;
}
