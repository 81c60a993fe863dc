// SPDX-License-Identifier: GPL-2.0
/*
 * BENIGN: a prog_array that the object itself initialises (libbpf's
 * `values = { [i] = &prog }`), so that `inspect` can show the tail-call
 * graph an ELF file declares: tg_stage1 tail-calls slot 1 of tg_jumps,
 * which the object fills with tg_stage2.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int tg_stage2(struct xdp_md *ctx)
{
	return XDP_PASS;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__array(values, int(struct xdp_md *));
} tg_jumps SEC(".maps") = {
	.values = {[1] = (void *)&tg_stage2},
};

SEC("xdp")
int tg_stage1(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &tg_jumps, 1);
	return XDP_PASS;
}
