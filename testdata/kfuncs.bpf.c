// SPDX-License-Identifier: GPL-2.0
/*
 * Feature coverage: kernel functions (kfuncs), called as BPF_PSEUDO_KFUNC_CALL
 * with the callee's BTF id filled in by the loader from the running kernel.
 *   kf_task_ref      tp_btf/sys_enter: RCU read section, acquire and release
 *                    a task reference, look a task up by pid;
 *   kf_count_iter    syscall program (BPF_PROG_RUN-able): an open-coded
 *                    numbers iterator (bpf_iter_num_new/next/destroy).
 * Both load on this kernel.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

struct bpf_iter_num {
	u64 __opaque[1];
} __attribute__((aligned(8)));

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

u64 tasks_seen;
s32 init_tgid;
u32 iter_sum;

SEC("tp_btf/sys_enter")
int BPF_PROG(kf_task_ref, struct pt_regs *regs, long id)
{
	struct task_struct *cur, *ref, *init;

	bpf_rcu_read_lock();
	cur = bpf_get_current_task_btf();
	ref = bpf_task_acquire(cur);
	bpf_rcu_read_unlock();
	if (!ref)
		return 0;
	__sync_fetch_and_add(&tasks_seen, 1);
	bpf_task_release(ref);

	init = bpf_task_from_pid(1);
	if (init) {
		init_tgid = init->tgid;
		bpf_task_release(init);
	}
	return 0;
}

SEC("syscall")
int kf_count_iter(void *ctx)
{
	struct bpf_iter_num it;
	int *v;
	u32 sum = 0;

	bpf_iter_num_new(&it, 0, 10);
	while ((v = bpf_iter_num_next(&it)))
		sum += *v;
	bpf_iter_num_destroy(&it);
	iter_sum = sum;
	return sum;
}
