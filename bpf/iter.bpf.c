// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kernel-side enumeration of BPF programs for the inventory's cross-view:
 * an iter/bpf_prog iterator walks the kernel's program idr directly and
 * writes each program's id (u32) to the seq file. A rootkit that filters
 * BPF_PROG_GET_NEXT_ID in user space or at the syscall does not filter this
 * walk, so an id present here and missing from GET_NEXT_ID is hidden.
 * Minimal CO-RE definitions of the kernel types it reads.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_prog_aux {
	__u32 id;
} __attribute__((preserve_access_index));

struct bpf_prog {
	struct bpf_prog_aux *aux;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_prog {
	struct bpf_iter_meta *meta;
	struct bpf_prog *prog;
} __attribute__((preserve_access_index));

SEC("iter/bpf_prog")
int list_prog_ids(struct bpf_iter__bpf_prog *ctx)
{
	struct bpf_prog *prog = ctx->prog;
	__u32 id;

	if (!prog)
		return 0;
	id = BPF_CORE_READ(prog, aux, id);
	bpf_seq_write(ctx->meta->seq, &id, sizeof(id));
	return 0;
}
