// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Brackets every run of a BPF_PROG_TYPE_SYSCALL program (BPF_PROG_TEST_RUN):
 * such a program can load programs itself with bpf_sys_bpf (the light
 * skeleton's loader), and those inner loads never enter the bpf() system
 * call, so the syscall hooks cannot see them. sys_enter_bpf notes the
 * thread, the time and the program run; sys_exit_bpf reports the bracket to
 * user space, which fetches the programs loaded meanwhile by id and judges
 * them. When asked (enforce mode), the exit also queues SIGSTOP for the
 * caller: the process stops before the run returns to user space, and
 * stays stopped until user space has judged what it loaded and sends
 * SIGKILL or SIGCONT.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL 9
#define SIGSTOP 19

/* Set by user space before the load. */
const volatile __u32 self_tgid = 0;   /* the sentry: never stopped, never reported */
const volatile __u32 stop_caller = 0; /* queue SIGSTOP at the run's exit */
const volatile __u64 prog_fops = 0;   /* &bpf_prog_fops from kallsyms; 0: not checked */

struct file_operations;
struct file {
	const struct file_operations *f_op;
	void *private_data;
} __attribute__((preserve_access_index));
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));
struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));
struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));
struct bpf_prog_aux {
	__u32 id;
	char name[16];
} __attribute__((preserve_access_index));
struct bpf_prog {
	enum bpf_prog_type type;
	__u8 tag[8];
	struct bpf_prog_aux *aux;
} __attribute__((preserve_access_index));

struct loaderrun_event {
	__u64 enter_ns; /* CLOCK_BOOTTIME, as bpf_prog_info.load_time */
	__u64 exit_ns;
	__s64 ret;      /* the run's return: 0 or -errno */
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__u32 prog_id;  /* the syscall program that ran */
	__s32 prog_fd;
	__s32 stopped;  /* 1: SIGSTOP queued; 0: not asked; < 0: bpf_send_signal's error */
	__u8 tag[8];
	char name[16];
	char comm[16];
};

/* Keeps the record's type in BTF for bpf2go -type. */
const struct loaderrun_event *unused_loaderrun_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} loaderrun_events SEC(".maps");

/* Runs in flight, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct loaderrun_event);
} loaderrun_inflight SEC(".maps");

/* Brackets the ring had no room for (the caller is still stopped). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} loaderrun_lost SEC(".maps");

struct bpf_enter_args {
	__u64 common;
	__s64 nr;
	__u64 cmd;
	__u64 uattr;
	__u64 size;
};

struct bpf_exit_args {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

/* The program behind fd of the current task, or NULL. */
static struct bpf_prog *prog_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
	if (!file)
		return NULL;
	if (prog_fops && (__u64)BPF_CORE_READ(file, f_op) != prog_fops)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int loaderrun_enter(struct bpf_enter_args *ctx)
{
	if (ctx->cmd != BPF_PROG_TEST_RUN)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	__u32 fd = 0;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)ctx->uattr))
		return 0;
	struct bpf_prog *prog = prog_of_fd(fd);
	if (!prog || BPF_CORE_READ(prog, type) != BPF_PROG_TYPE_SYSCALL)
		return 0;

	struct loaderrun_event e = {};
	e.enter_ns = bpf_ktime_get_boot_ns();
	e.tgid = id >> 32;
	e.tid = (__u32)id;
	e.uid = (__u32)bpf_get_current_uid_gid();
	e.prog_fd = fd;
	e.prog_id = BPF_CORE_READ(prog, aux, id);
	bpf_probe_read_kernel(e.tag, sizeof(e.tag), &prog->tag);
	struct bpf_prog_aux *aux = BPF_CORE_READ(prog, aux);
	bpf_probe_read_kernel_str(e.name, sizeof(e.name), &aux->name);
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_map_update_elem(&loaderrun_inflight, &e.tid, &e, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int loaderrun_exit(struct bpf_exit_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct loaderrun_event *in = bpf_map_lookup_elem(&loaderrun_inflight, &tid);
	if (!in)
		return 0;
	struct loaderrun_event *e = bpf_ringbuf_reserve(&loaderrun_events, sizeof(*e), 0);
	if (!e) {
		__u32 k = 0;
		__u64 *n = bpf_map_lookup_elem(&loaderrun_lost, &k);
		if (n)
			__sync_fetch_and_add(n, 1);
		bpf_map_delete_elem(&loaderrun_inflight, &tid);
		/* Nobody would judge (or continue) a stopped caller: fail closed. */
		if (stop_caller)
			bpf_send_signal(SIGKILL);
		return 0;
	}
	/* The process must not return to user space with what it loaded before
	 * user space has judged it: stopped here, it waits in the kernel. */
	__s32 stopped = 0;
	if (stop_caller) {
		long err = bpf_send_signal(SIGSTOP);
		stopped = err ? (__s32)err : 1;
	}
	__builtin_memcpy(e, in, sizeof(*e));
	e->exit_ns = bpf_ktime_get_boot_ns();
	e->ret = ctx->ret;
	e->stopped = stopped;
	bpf_map_delete_elem(&loaderrun_inflight, &tid);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
