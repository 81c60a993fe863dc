// SPDX-License-Identifier: GPL-2.0
// Kernel-side probes of the capability suite: each program exercises one hook
// or helper the sentry relies on, counts its hits for the test process only
// (target_tgid) and, for the LSM hooks, denies that process's BPF_PROG_LOAD.
// GPL because LSM programs and bpf_probe_write_user require it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EPERM 1
#define SIGUSR2 12
#define NR_BPF_X86_64 321
// bpf's number in the ia32 (compat) syscall table, arch/x86/entry/syscalls/syscall_32.tbl.
#define NR_BPF_IA32 357

char LICENSE[] SEC("license") = "GPL";

// Set by the test before loading: only this process is counted or denied,
// so nothing else running in the VM is affected.
volatile const __u32 target_tgid;

__u64 lsm_prog_load_hits;
__u64 lsm_bpf_hits;
__u64 kprobe_hits;
__u64 tracepoint_hits;
__u64 write_user_hits;
__u64 tp_btf_hits;
__u64 send_signal_hits;
__u64 fentry_hits;
// User address bpf_probe_write_user overwrites; set after loading.
__u64 write_user_addr;

static __always_inline int is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

struct bpf_prog;
struct bpf_token;

// Kernels >= 6.9: the hook sees the kernel's copy of the program.
SEC("lsm/bpf_prog_load")
int BPF_PROG(deny_prog_load, struct bpf_prog *prog, union bpf_attr *attr, struct bpf_token *token)
{
	if (!is_target())
		return 0;
	__sync_fetch_and_add(&lsm_prog_load_hits, 1);
	return -EPERM;
}

// Every bpf() command passes here; only BPF_PROG_LOAD is denied.
SEC("lsm/bpf")
int BPF_PROG(deny_bpf, int cmd, union bpf_attr *attr, unsigned int size)
{
	if (cmd != BPF_PROG_LOAD || !is_target())
		return 0;
	__sync_fetch_and_add(&lsm_bpf_hits, 1);
	return -EPERM;
}

// Attached by symbol at run time; the section name is only a placeholder.
SEC("kprobe/bpf")
int count_kprobe(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&kprobe_hits, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int count_tracepoint(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&tracepoint_hits, 1);
	return 0;
}

// The seed's enforcer primitive: write into the calling process's memory.
SEC("tracepoint/syscalls/sys_enter_bpf")
int write_user(void *ctx)
{
	char marker[8] = "written";
	__u64 addr = write_user_addr;

	if (!is_target() || !addr)
		return 0;
	if (bpf_probe_write_user((void *)addr, marker, sizeof(marker)) == 0)
		__sync_fetch_and_add(&write_user_hits, 1);
	return 0;
}

// The BTF-typed raw tracepoint the sensor prefers: every syscall entry, with
// the syscall number as an argument.
SEC("tp_btf/sys_enter")
int BPF_PROG(count_tp_btf, struct pt_regs *regs, long id)
{
	if (id == NR_BPF_X86_64 && is_target())
		__sync_fetch_and_add(&tp_btf_hits, 1);
	return 0;
}

// The kill enforcer's primitive, with a signal the test catches instead of SIGKILL.
SEC("tracepoint/syscalls/sys_enter_bpf")
int send_signal(void *ctx)
{
	if (is_target() && bpf_send_signal(SIGUSR2) == 0)
		__sync_fetch_and_add(&send_signal_hits, 1);
	return 0;
}

// fentry on the LSM entry point every bpf() command passes through (present
// on every kernel, unlike __sys_bpf which 5.10 inlines).
SEC("fentry/security_bpf")
int BPF_PROG(count_fentry, int cmd)
{
	if (is_target())
		__sync_fetch_and_add(&fentry_hits, 1);
	return 0;
}

// The ia32 probes count the bpf() calls of a 32-bit loader the test starts
// as a separate process. Its tgid is known only once it runs, and it calls
// bpf() at once, so the programs count per tgid and the test reads its
// loader's entry afterwards. LRU: other processes' bpf() calls (the host
// has other loaders) can only push out older entries, never fail an update.
enum ia32_event {
	IA32_TRACEPOINT = 1, // syscalls/sys_enter_bpf fired
	IA32_TP_BTF_BPF = 2, // tp_btf/sys_enter with id 357 (compat bpf)
	IA32_TP_BTF_X64 = 3, // tp_btf/sys_enter with id 321 (would mean a 64-bit call)
	IA32_KPROBE = 4,     // kprobe on __ia32_sys_bpf fired
};

struct ia32_key {
	__u32 tgid;
	__u32 event; // enum ia32_event
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ia32_key);
	__type(value, __u64);
} ia32_hits SEC(".maps");

static __always_inline void ia32_count(__u32 event)
{
	struct ia32_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .event = event };
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&ia32_hits, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&ia32_hits, &key, &one, BPF_NOEXIST);
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int ia32_tracepoint(void *ctx)
{
	ia32_count(IA32_TRACEPOINT);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(ia32_tp_btf, struct pt_regs *regs, long id)
{
	if (id == NR_BPF_IA32)
		ia32_count(IA32_TP_BTF_BPF);
	else if (id == NR_BPF_X86_64)
		ia32_count(IA32_TP_BTF_X64);
	return 0;
}

// Attached by symbol at run time, like count_kprobe.
SEC("kprobe/ia32_bpf")
int ia32_kprobe(void *ctx)
{
	ia32_count(IA32_KPROBE);
	return 0;
}
