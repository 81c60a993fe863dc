/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Lock mode: only programs whose fingerprint is on the allowlist may load.
 *
 * The fingerprint is the instruction hash the walk computes for the rule
 * table (rules_hash, bpf/include/rules_eval.h; Go twin kernel.Hash), so the
 * check costs one hash lookup per load on every hook, in the same program
 * that enforces the rules.
 *
 * The list is a hash map that user space builds whole, freezes, and then
 * installs by replacing the single slot of an array of maps: a load sees
 * either the old list or the new one, never a list being written, and a
 * list once installed cannot be changed from user space (frozen). An empty
 * slot (no list installed, or a lookup failure) blocks every load in lock
 * mode: fail closed.
 *
 * Include after sentry.h, with struct sentry_config and struct task_struct
 * declared, and is_self() defined.
 */
#ifndef EBPF_SENTRY_ALLOWLIST_H
#define EBPF_SENTRY_ALLOWLIST_H

#define SENTRY_ALLOWLIST_MAX 65536 /* fingerprints on one list */

struct allowlist_set {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SENTRY_ALLOWLIST_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);   /* fingerprint (insn_hash) */
	__type(value, __u32); /* unused: presence is the answer */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct allowlist_set);
} allowlist SEC(".maps");

/*
 * allowlist_judge says what the lock makes of a load whose walk produced
 * hash over read of insn_cnt instructions (enum sentry_lock); from
 * SENTRY_LOCK_NOT_LISTED on, the load is to be blocked.
 */
static __always_inline __u32 allowlist_judge(const struct sentry_config *cfg, __u32 tgid, struct task_struct *task,
					     __u64 hash, __u32 read, __u32 insn_cnt, __u32 read_errors, __u32 refused)
{
	if (!cfg->lock)
		return SENTRY_LOCK_OFF;
	if (cfg->lock_cgroup && bpf_get_current_cgroup_id() != cfg->lock_cgroup)
		return SENTRY_LOCK_OFF;
	if (is_self(cfg, tgid, task))
		return SENTRY_LOCK_SELF;
	if (refused)
		return SENTRY_LOCK_REFUSED;
	if (read_errors || read != insn_cnt)
		return SENTRY_LOCK_PARTIAL;
	__u32 zero = 0;
	void *set = bpf_map_lookup_elem(&allowlist, &zero);
	if (!set)
		return SENTRY_LOCK_NO_LIST;
	return bpf_map_lookup_elem(set, &hash) ? SENTRY_LOCK_LISTED : SENTRY_LOCK_NOT_LISTED;
}

#endif
