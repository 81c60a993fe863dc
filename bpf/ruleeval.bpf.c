// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test harness for the kernel rule evaluator: a BPF_PROG_TYPE_SYSCALL program
 * that user space runs with BPF_PROG_RUN. It walks the instructions in the
 * input map exactly as the sensor walks a loaded program's (rules_facts_add_insn),
 * evaluates the rule table (rules_evaluate) and writes facts and result back,
 * so the Go evaluator can be checked against the kernel one on the same input.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/rules.h"
#include "include/rules_eval.h"

#define RULEEVAL_MAX_INSNS 4096

/* Keeps enum rules_prov in the BTF for bpf2go -type. */
const enum rules_prov *unused_prov __attribute__((unused));

/* One evaluation: metadata in facts (counts and hash zero), then the slots. */
struct ruleeval_input {
	__u32 insn_n; /* slots used in insns */
	__u32 _pad;
	struct rules_facts facts;
	__u64 insns[RULEEVAL_MAX_INSNS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ruleeval_input);
} input SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rules_table);
} table SEC(".maps");

/* The evaluator's answer and what it cost, measured inside the program. */
struct ruleeval_output {
	struct rules_result res;
	__u64 walk_ns; /* rules_facts_add_insn over every slot */
	__u64 eval_ns; /* rules_evaluate */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ruleeval_output);
} output SEC(".maps");

struct walk_ctx {
	struct ruleeval_input *in;
};

static long walk_step(__u64 i, void *data)
{
	struct ruleeval_input *in = ((struct walk_ctx *)data)->in;

	if (i >= RULEEVAL_MAX_INSNS || i >= in->insn_n)
		return 1;
	rules_facts_add_insn(&in->facts, in->insns[i]);
	return 0;
}

SEC("syscall")
int ruleeval(void *ctx)
{
	__u32 zero = 0;
	struct ruleeval_input *in = bpf_map_lookup_elem(&input, &zero);
	struct rules_table *t = bpf_map_lookup_elem(&table, &zero);
	struct ruleeval_output *out = bpf_map_lookup_elem(&output, &zero);
	struct rules_result res;
	struct walk_ctx w;
	__u64 t0, t1, t2;

	if (!in || !t || !out)
		return 1;
	t0 = bpf_ktime_get_ns();
	in->facts.insn_hash = RULES_HASH_INIT;
	w.in = in;
	bpf_loop(RULEEVAL_MAX_INSNS, walk_step, &w, 0);
	t1 = bpf_ktime_get_ns();
	rules_evaluate(t, &in->facts, &res);
	t2 = bpf_ktime_get_ns();
	out->res = res;
	out->walk_ns = t1 - t0;
	out->eval_ns = t2 - t1;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
