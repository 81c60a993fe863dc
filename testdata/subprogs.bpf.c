// SPDX-License-Identifier: GPL-2.0
/*
 * Feature coverage: BPF-to-BPF calls and bpf_loop.
 *   sub_static_chain   calls static __noinline sub-programs, one of which
 *                      calls another (two levels of BPF_PSEUDO_CALL);
 *   sub_global_func    calls a global function, which the verifier checks
 *                      once on its own from its BTF signature;
 *   sub_loop_cb        runs a callback 32 times with bpf_loop; the callback
 *                      is referenced by an ld_imm64 of a function pointer
 *                      (BPF_PSEUDO_FUNC).
 * The helper call in mix_pid sits in a sub-program: counting helpers only in
 * the entry function misses it. All three load on this kernel.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

u64 sub_result;
u32 loop_sum;

static __noinline u64 mix_pid(u64 seed)
{
	return (bpf_get_current_pid_tgid() ^ seed) * 0x9e3779b97f4a7c15ULL;
}

static __noinline u64 mix_twice(u64 seed)
{
	return mix_pid(seed) + mix_pid(seed >> 7);
}

__noinline int clamp_percent(int v)
{
	if (v < 0)
		return 0;
	return v > 100 ? 100 : v;
}

struct loop_ctx {
	u32 sum;
	u32 limit;
};

static long add_index(u64 index, void *data)
{
	struct loop_ctx *lc = data;

	lc->sum += index;
	return lc->sum > lc->limit ? 1 : 0;
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int sub_static_chain(void *ctx)
{
	sub_result = mix_twice(sub_result);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int sub_global_func(void *ctx)
{
	sub_result = clamp_percent((int)(sub_result & 0xff) - 50);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_gettid")
int sub_loop_cb(void *ctx)
{
	struct loop_ctx lc = { .sum = 0, .limit = 1000 };

	bpf_loop(32, add_index, &lc, 0);
	loop_sum = lc.sum;
	return 0;
}
