// SPDX-License-Identifier: GPL-2.0
/*
 * OBJECT-LOADER-REFUSES: cilium/ebpf's object loader refuses this object;
 * ebpf-sentry reads it directly (program/elfdirect.go).
 *
 * A sched_ext-style scheduler: an ops struct in SEC(".struct_ops") whose
 * members point at struct_ops programs, and no other program. The kernel
 * type is declared here, as sched_ext schedulers get it from vmlinux.h.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

struct sched_ext_ops {
	s32 (*select_cpu)(struct task_struct *p, s32 prev_cpu, u64 wake_flags);
	void (*enqueue)(struct task_struct *p, u64 enq_flags);
	s32 (*init)(void);
	char name[128];
};

u64 so_enqueued;

SEC("struct_ops/so_select_cpu")
s32 BPF_PROG(so_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	return prev_cpu;
}

SEC("struct_ops/so_enqueue")
void BPF_PROG(so_enqueue, struct task_struct *p, u64 enq_flags)
{
	so_enqueued++;
}

SEC("struct_ops.s/so_init")
s32 BPF_PROG(so_init)
{
	return 0;
}

SEC(".struct_ops")
struct sched_ext_ops sentry_ops = {
	.select_cpu = (void *)so_select_cpu,
	.enqueue = (void *)so_enqueue,
	.init = (void *)so_init,
	.name = "sentry_ops",
};
