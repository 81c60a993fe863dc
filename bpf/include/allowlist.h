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
 * Include after sentry.h and rules.h, with struct sentry_config, struct
 * task_struct and struct walk_ctx declared, and is_self() defined.
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

static const __u32 allowlist_slot = 0;

/*
 * allowlist_judge sets wc->lock to what the lock makes of a load whose walk
 * produced f->insn_hash over wc->insns_read of insn_cnt instructions (enum
 * sentry_lock) and, from SENTRY_LOCK_NOT_LISTED on, makes the rule result
 * a block of no rule (first_block -1) unless a rule blocks already.
 * A sub-program of its own (not inlined, so at most five arguments), that
 * leaves the verdict in map memory: the judge's frame is at the verifier's
 * 512-byte limit on the sleepable hook (lsm.s/bpf), where the inlined
 * check took stack slots.
 */
static __noinline int allowlist_judge(const struct sentry_config *cfg, const struct rules_facts *f,
				      struct walk_ctx *wc, struct rules_result *res, __u32 insn_cnt)
{
	__u32 lock;

	if (!cfg || !f || !wc || !res)
		return 0;
	if (!cfg->lock || (cfg->lock_cgroup && bpf_get_current_cgroup_id() != cfg->lock_cgroup)) {
		lock = SENTRY_LOCK_OFF;
	} else if (is_self(cfg, bpf_get_current_pid_tgid() >> 32, (struct task_struct *)bpf_get_current_task())) {
		lock = SENTRY_LOCK_SELF;
	} else if (wc->total == 0 && insn_cnt != 0) {
		lock = SENTRY_LOCK_REFUSED; /* not read: the kernel refuses it (will_be_refused) */
	} else if (wc->read_errors || wc->insns_read != insn_cnt) {
		lock = SENTRY_LOCK_PARTIAL;
	} else {
		/* Both keys point into map memory (read-only data, the facts). */
		void *set = bpf_map_lookup_elem(&allowlist, &allowlist_slot);
		if (!set)
			lock = SENTRY_LOCK_NO_LIST;
		else
			lock = bpf_map_lookup_elem(set, &f->insn_hash) ? SENTRY_LOCK_LISTED : SENTRY_LOCK_NOT_LISTED;
	}
	wc->lock = lock;
	if (lock >= SENTRY_LOCK_NOT_LISTED && res->action != RULES_ACTION_BLOCK) {
		res->action = RULES_ACTION_BLOCK;
		res->first_block = -1;
	}
	return 0;
}

#endif
