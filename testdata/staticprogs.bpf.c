// SPDX-License-Identifier: GPL-2.0
/*
 * Static (file-local) programs, .text sub-programs shared by several
 * programs, and two license strings in the license section (the loader
 * reads the first).
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";
char LICENSE2[] SEC("license") = "Proprietary";

u64 sp_total;

static __noinline u64 sp_mix(u64 v)
{
	return v * 0x9e3779b97f4a7c15ULL ^ bpf_ktime_get_ns();
}

static __noinline void sp_add(u64 v)
{
	sp_total += sp_mix(v);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
static int sp_static_getpid(void *ctx)
{
	sp_add(1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
static int sp_static_getppid(void *ctx)
{
	sp_add(2);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_gettid")
int sp_global_gettid(void *ctx)
{
	sp_add(bpf_get_current_pid_tgid());
	return sp_mix(3) & 1;
}
