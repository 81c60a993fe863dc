// SPDX-License-Identifier: GPL-2.0
/*
 * MALICIOUS-STYLE, imitates the file hiders of eBPF rootkits: the opened path
 * is read once into one stack buffer and compared byte by byte against two
 * different names, the rootkit's own file and the file it tampers with.
 *
 * Shape an analyser must recover: two byte-compare chains over the same
 * stack buffer, one string each ("/tmp/.implant" and "/proc/modules"); merged
 * into one, the name of the hidden file is lost (issue 16).
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

#define NAME_LEN 16

/* tgid -> 1: opened the implant, 2: opened /proc/modules. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} hide_watch SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int hide_files(struct trace_event_raw_sys_enter *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	char name[NAME_LEN] = {};
	u64 what;

	bpf_probe_read_user(name, sizeof(name), (const char *)ctx->args[1]);
	if (name[0] == '/' && name[1] == 't' && name[2] == 'm' && name[3] == 'p' &&
	    name[4] == '/' && name[5] == '.' && name[6] == 'i' && name[7] == 'm' &&
	    name[8] == 'p' && name[9] == 'l' && name[10] == 'a' && name[11] == 'n' &&
	    name[12] == 't' && name[13] == 0)
		what = 1;
	else if (name[0] == '/' && name[1] == 'p' && name[2] == 'r' && name[3] == 'o' &&
		 name[4] == 'c' && name[5] == '/' && name[6] == 'm' && name[7] == 'o' &&
		 name[8] == 'd' && name[9] == 'u' && name[10] == 'l' && name[11] == 'e' &&
		 name[12] == 's' && name[13] == 0)
		what = 2;
	else
		return 0;
	bpf_map_update_elem(&hide_watch, &tgid, &what, BPF_ANY);
	return 0;
}
