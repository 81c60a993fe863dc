/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel rule evaluator and the facts walk, shared by the sensor's
 * program and the BPF_PROG_TYPE_SYSCALL harness (bpf/ruleeval.bpf.c) that
 * the differential test runs against the Go evaluator (package rules): both
 * sides must agree on every input, so change them together.
 *
 * Include after rules.h and <bpf/bpf_helpers.h> (for bpf_loop).
 */
#ifndef EBPF_SENTRY_RULES_EVAL_H
#define EBPF_SENTRY_RULES_EVAL_H

#include "rules.h"

/*
 * rules_hash: a cheap 64-bit instruction hash. sha256 is impractical in BPF,
 * so the in-kernel allowlist matches this instead (Go twin: kernel.Hash).
 * Per 8-byte slot v (little-endian u64, normalised by rules_normalise):
 *   h ^= v; h *= RULES_HASH_PRIME; h ^= h >> 32
 * It is not collision resistant: an allowlist entry trusts whoever can
 * load a program, it does not authenticate the program.
 */
#define RULES_HASH_INIT 0xcbf29ce484222325ULL
#define RULES_HASH_PRIME 0x100000001b3ULL

static __always_inline __u64 rules_hash_step(__u64 h, __u64 slot)
{
	h ^= slot;
	h *= RULES_HASH_PRIME;
	h ^= h >> 32;
	return h;
}

/*
 * rules_normalise zeroes what differs between two loads of the same program:
 * the map fd / map index in the imm of a ld_imm64 (code 0x18) whose src_reg is
 * BPF_PSEUDO_MAP_FD (1), _MAP_VALUE (2), _MAP_IDX (5) or _MAP_IDX_VALUE (6).
 */
static __always_inline __u64 rules_normalise(__u64 slot)
{
	__u32 src = (slot >> 12) & 0xf;

	if ((slot & 0xff) == 0x18 && (src == 1 || src == 2 || src == 5 || src == 6))
		slot &= 0xffffffffULL;
	return slot;
}

/* The keyring kind of a signed load's keyring_id (enum rules_prov bit). */
static __always_inline __u32 rules_keyring_kind(__s32 id)
{
	if (id >= 0 && id <= 2)
		return RULES_PROV_KEYRING_SYSTEM;
	if (id == -4) /* KEY_SPEC_USER_KEYRING */
		return RULES_PROV_KEYRING_USER;
	if (id < 0) /* thread -1, process -2, session -3, user session -5, ... */
		return RULES_PROV_KEYRING_SESSION;
	return RULES_PROV_KEYRING_USER; /* a key serial the caller can name */
}

/*
 * rules_facts_add_insn accounts one instruction slot: helper calls (code
 * 0x85, src_reg 0) and the hash. Call it for every slot in order, after
 * setting f->insn_hash = RULES_HASH_INIT.
 */
static __always_inline void rules_facts_add_insn(struct rules_facts *f, __u64 slot)
{
	if ((slot & 0xff) == 0x85 && ((slot >> 12) & 0xf) == 0) {
		__u32 id = slot >> 32;

		if (id < RULES_HELPER_MAX) {
			/* masks: the check above holds, they only help the verifier */
			f->helper_cnt[id & (RULES_HELPER_MAX - 1)]++;
			f->used[(id / 64) & (RULES_HELPER_MAX / 64 - 1)] |= 1ULL << (id % 64);
		} else {
			f->helper_other++;
		}
	}
	f->insn_hash = rules_hash_step(f->insn_hash, rules_normalise(slot));
}

static __always_inline int rules_str_match(const struct rules_str *p, const char *s)
{
	const __u64 *w = (const __u64 *)s;

	return ((w[0] ^ p->text[0]) & p->mask[0]) == 0 &&
	       ((w[1] ^ p->text[1]) & p->mask[1]) == 0;
}

/* Bit n of a 64- or 128-bit set; n past the end is never set. No variable
 * index into the words, which keeps the verifier's bounds tracking simple. */
static __always_inline int rules_bit(__u64 lo, __u64 hi, __u32 n)
{
	if (n < 64)
		return (lo >> n) & 1;
	if (n < 128)
		return (hi >> (n - 64)) & 1;
	return 0;
}

#ifndef SENTRY_NO_LOOP
/* The minimum-count entries of a rule, one per bpf_loop step: a bounded
 * loop here was verified once per entry (its index is exact), in a callback
 * the verifier checks several times over (~15 % of the judge's verified
 * instructions); a callback is checked with its index unknown. */
struct rules_helper_ctx {
	const struct rules_rule *r;
	const struct rules_facts *f;
	__u32 called; /* RULES_F_HELPERS_CALLED: entries whose helper is not called are skipped */
	__u32 hit;    /* an entry held */
	__u32 below;  /* an entry's helper is called fewer times than its minimum */
	__u32 _pad;
};

static long rules_helper_step(__u64 i, void *data)
{
	struct rules_helper_ctx *c = data;
	__u32 k = i & (RULE_HELPERS - 1);
	__u32 cnt = c->f->helper_cnt[c->r->helper_id[k] & (RULES_HELPER_MAX - 1)];

	if (c->called && cnt == 0)
		return 0;
	if (cnt < c->r->helper_min[k]) {
		c->below = 1;
		return 1;
	}
	c->hit = 1;
	return 0;
}
#endif

/* rules_rule_matches reports whether every condition of r holds for f. */
static __always_inline int rules_rule_matches(const struct rules_rule *r, const struct rules_facts *f)
{
	__u32 flags = r->flags;
	__u32 i, n;
	int hit;

	if (r->action == RULES_ACTION_NONE)
		return 0;
	/* a group rule judges only the group view, every other rule only the program */
	if (!(flags & RULES_F_GROUP) != (f->scope == RULES_SCOPE_PROGRAM))
		return 0;
	if ((flags & RULES_F_PROG_TYPE) && !rules_bit(r->prog_types, 0, f->prog_type))
		return 0;
	if ((flags & RULES_F_ATTACH_TYPE) && !rules_bit(r->attach_types[0], r->attach_types[1], f->expected_attach_type))
		return 0;
	if ((flags & RULES_F_INSN_RANGE) && (f->insn_cnt < r->insn_min || f->insn_cnt > r->insn_max))
		return 0;
	if ((f->prov & r->prov_set) != r->prov_set || (f->prov & r->prov_clear))
		return 0;
	if (r->prov_any && !(f->prov & r->prov_any))
		return 0;

	n = r->helper_n;
#ifndef SENTRY_NO_LOOP
	{
		struct rules_helper_ctx hc = {.r = r, .f = f, .called = flags & RULES_F_HELPERS_CALLED};

		if (n > RULE_HELPERS)
			n = RULE_HELPERS;
		if (n)
			bpf_loop(n, rules_helper_step, &hc, 0);
		if (hc.below)
			return 0;
		hit = hc.hit;
	}
#else
	hit = 0;
	for (i = 0; i < RULE_HELPERS; i++) {
		__u32 cnt;

		if (i >= n)
			break;
		cnt = f->helper_cnt[r->helper_id[i] & (RULES_HELPER_MAX - 1)];
		if ((flags & RULES_F_HELPERS_CALLED) && cnt == 0)
			continue;
		if (cnt < r->helper_min[i])
			return 0;
		hit = 1;
	}
#endif
	if ((flags & RULES_F_HELPERS_CALLED) && !hit)
		return 0;

	if (flags & RULES_F_HELPERS_ONLY) {
		if (f->helper_other)
			return 0;
		for (i = 0; i < RULES_HELPER_MAX / 64; i++)
			if (f->used[i] & ~r->allowed[i])
				return 0;
	}
	if (flags & RULES_F_HELPERS_ANY) {
		hit = 0;
		for (i = 0; i < RULES_HELPER_MAX / 64; i++)
			if (f->used[i] & r->any_of[i])
				hit = 1;
		if (!hit)
			return 0;
	}

	if (r->name_n) {
		hit = 0;
		for (i = 0; i < RULE_NAMES; i++)
			if (i < r->name_n && rules_str_match(&r->names[i], f->prog_name))
				hit = 1;
		if (hit == !!(flags & RULES_F_NAME_NOT))
			return 0;
	}
	if (r->comm_n) {
		hit = 0;
		for (i = 0; i < RULE_COMMS; i++)
			if (i < r->comm_n && rules_str_match(&r->comms[i], f->comm))
				hit = 1;
		if (!hit)
			return 0;
	}
	if (r->uid_n) {
		hit = 0;
		for (i = 0; i < RULE_UIDS; i++)
			if (i < r->uid_n && r->uids[i] == f->uid)
				hit = 1;
		if (hit == !!(flags & RULES_F_UID_NOT))
			return 0;
	}
	if (r->exe_n) {
		hit = 0;
		for (i = 0; i < RULE_EXES; i++)
			if (i < r->exe_n && f->exe_ino && r->exes[i].ino == f->exe_ino && r->exes[i].dev == f->exe_dev)
				hit = 1;
		if (hit == !!(flags & RULES_F_EXE_NOT))
			return 0;
	}
	for (i = 0; i < RULE_HASHES; i++)
		if (i < r->hash_n && r->allow_hash[i] == f->insn_hash)
			return 0;
	return 1;
}

struct rules_loop_ctx {
	const struct rules_table *t;
	const struct rules_facts *f;
	struct rules_result *res;
};

static long rules_loop_step(__u64 index, void *data)
{
	struct rules_loop_ctx *c = data;
	const struct rules_rule *r;
	struct rules_result *res = c->res;

	if (index >= RULES_MAX || index >= c->t->count)
		return 1;
	r = &c->t->rules[index];
	if (!rules_rule_matches(r, c->f))
		return 0;
	res->matched[(index / 64) & (RULES_MATCHED_WORDS - 1)] |= 1ULL << (index % 64);
	if (res->first < 0) {
		res->first = index;
		res->first_action = r->action;
	}
	if (r->action == RULES_ACTION_BLOCK && res->first_block < 0)
		res->first_block = index;
	if (r->action > res->action)
		res->action = r->action;
	return 0;
}

/*
 * rules_result_reset prepares res for rules_loop_step calls (kernels
 * without bpf_loop call that once per rule from a global function).
 */
static __always_inline void rules_result_reset(struct rules_result *res)
{
	res->first = -1;
	res->first_action = RULES_ACTION_NONE;
	res->first_block = -1;
	res->action = RULES_ACTION_NONE;
	for (int i = 0; i < RULES_MATCHED_WORDS; i++)
		res->matched[i] = 0;
}

/*
 * rules_evaluate evaluates every rule of t against f, in order, with
 * bpf_loop so that the verifier checks one rule's code once, whatever
 * RULES_MAX is. t and f are map values (or other non-NULL memory).
 */
static __always_inline void rules_evaluate(const struct rules_table *t, const struct rules_facts *f,
					   struct rules_result *res)
{
	struct rules_loop_ctx c = { .t = t, .f = f, .res = res };

	rules_result_reset(res);
	bpf_loop(RULES_MAX, rules_loop_step, &c, 0);
}

#endif
