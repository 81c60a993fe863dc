// SPDX-License-Identifier: GPL-2.0
/*
 * Benign tracing: an execsnoop-like pair of tracepoints. The entry remembers
 * who called execve and with which file, the exit publishes one event per
 * exec through a ring buffer. This is the shape of libbpf-tools' execsnoop
 * and must not alert.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define FILENAME_LEN 128

struct exec_event {
	u32 pid;
	u32 ppid;
	u32 uid;
	s32 retval;
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} exec_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct exec_event);
} exec_start SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_execve")
int execsnoop_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct exec_event ev = {};
	u64 id = bpf_get_current_pid_tgid();

	ev.pid = id >> 32;
	ev.ppid = BPF_CORE_READ(task, real_parent, tgid);
	ev.uid = (u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	bpf_probe_read_user_str(ev.filename, sizeof(ev.filename),
				(const char *)ctx->args[0]);
	bpf_map_update_elem(&exec_start, &ev.pid, &ev, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int execsnoop_exit(struct trace_event_raw_sys_exit *ctx)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct exec_event *start, *ev;

	start = bpf_map_lookup_elem(&exec_start, &pid);
	if (!start)
		return 0;
	ev = bpf_ringbuf_reserve(&exec_events, sizeof(*ev), 0);
	if (ev) {
		__builtin_memcpy(ev, start, sizeof(*ev));
		ev->retval = ctx->ret;
		bpf_ringbuf_submit(ev, 0);
	}
	bpf_map_delete_elem(&exec_start, &pid);
	return 0;
}
