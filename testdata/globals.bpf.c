// SPDX-License-Identifier: GPL-2.0
/*
 * Benign program with global data in every section kind and printk formats:
 * .rodata (a const volatile the loader may set, a constant string), .data
 * (initialised counters and a tag string), .bss (zeroed counters), and formats
 * for bpf_trace_printk and bpf_snprintf. Two programs share one section, as
 * libbpf allows. A debugging aid like this must not alert.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

/* .rodata */
const volatile u32 target_tgid = 0;
const char watched_prefix[] = "/etc/";

/* .data */
u64 opens_seen = 1;
char data_tag[16] = "sentry-data";

/* .bss */
u64 opens_matched;
u64 last_tgid;
char last_path[64];

SEC("tracepoint/syscalls/sys_enter_openat")
int globals_count(struct trace_event_raw_sys_enter *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	int i;

	if (target_tgid && tgid != target_tgid)
		return 0;
	__sync_fetch_and_add(&opens_seen, 1);
	if (bpf_probe_read_user_str(last_path, sizeof(last_path),
				    (const char *)ctx->args[1]) < 0)
		return 0;
	for (i = 0; i < sizeof(watched_prefix) - 1; i++)
		if (last_path[i] != watched_prefix[i])
			return 0;
	__sync_fetch_and_add(&opens_matched, 1);
	last_tgid = tgid;
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int globals_print(struct trace_event_raw_sys_enter *ctx)
{
	static const char fmt[] = "%s: tgid %u opened %d files";
	char line[64];
	u64 args[3];

	if (!target_tgid)
		return 0;
	bpf_printk("openat dfd=%d flags=%x", (int)ctx->args[0], (int)ctx->args[2]);
	args[0] = (u64)data_tag;
	args[1] = last_tgid;
	args[2] = opens_seen;
	if (bpf_snprintf(line, sizeof(line), fmt, args, sizeof(args)) > 0)
		bpf_printk("%s", line);
	return 0;
}
