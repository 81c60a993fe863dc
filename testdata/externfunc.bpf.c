// SPDX-License-Identifier: GPL-2.0
/*
 * OBJECT-LOADER-REFUSES: cilium/ebpf's object loader refuses this object;
 * ebpf-sentry reads it directly (program/elfdirect.go).
 *
 * An extern function the loader supplies at load time (Tetragon's *_v61
 * objects call cel_expr_N this way): the call stays unresolved in the
 * object, and cilium/ebpf's loader refuses it.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

u64 xf_matched;

extern int cel_expr_1(void *ctx, long arg) __attribute__((section(".text")));

SEC("tracepoint/syscalls/sys_enter_kill")
int xf_kill(struct trace_event_raw_sys_enter *ctx)
{
	if (cel_expr_1(ctx, ctx->args[1]))
		xf_matched++;
	return 0;
}
