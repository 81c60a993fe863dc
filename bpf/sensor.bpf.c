// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ebpf-sentry kernel sensor: observes every bpf(BPF_PROG_LOAD) on the
 * system from the bpf() syscall's entry and exit, copies the attr and all
 * instructions into the ring buffer, computes facts (helper histogram,
 * instruction hash) over all instructions, evaluates the kernel rule table
 * and, for a block verdict in enforce mode, stops the loader before the
 * syscall returns to user space.
 *
 * Two hooks with the same logic: the syscalls:sys_{enter,exit}_bpf
 * tracepoints (fire only for bpf()), and tp_btf/sys_{enter,exit} (fire for
 * every syscall; the fallback when tracefs/syscall tracepoints are missing).
 * Two enforcers: kill (bpf_send_signal SIGKILL) and corrupt (rewrite insn 0
 * to BPF_EXIT with bpf_probe_write_user; racy, and unavailable under
 * lockdown, which is why it lives in separate programs that user space only
 * loads when asked).
 *
 * A third hook, lsm/bpf_prog_load (kernels >= 6.9), judges the kernel's own
 * copy of the instructions (prog->insnsi, copied before the hook runs, so
 * the loader cannot change them afterwards) and denies with -EPERM: the
 * program never reaches the verifier and never gets an id. It replaces the
 * enter program; the exit of the syscall is still seen by a sys_exit one.
 *
 * Compiled twice: as is, every loop is a bpf_loop (5.17+); with
 * -DSENTRY_NO_LOOP (sentryLegacy, for 5.10) the loops are bounded loops
 * calling global functions, and the BPF LSM is served by a tracepoint judge
 * plus a non-sleepable lsm/bpf gate (no sleepable programs with ring
 * buffers there). docs/SENSOR.md has the details.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "include/sentry.h"
#include "include/rules.h"
#include "include/rules_eval.h"

char LICENSE[] SEC("license") = "GPL";

#define NR_BPF_X86_64 321
#define NR_BPF_IA32 357 /* a 32-bit process's bpf() (int 0x80, sysenter) */
#define TS_COMPAT 0x0002 /* thread_info.status: in a 32-bit syscall (x86) */
#define SIGKILL 9
#define OP_CALL 0x85 /* BPF_JMP | BPF_CALL */
#define PSEUDO_CALL 1
#define PSEUDO_KFUNC_CALL 2
#define EPERM 1

/* How a block verdict is carried out by the program that judged it. */
#define ENF_KILL 0
#define ENF_CORRUPT 1
#define ENF_DENY 2 /* an LSM hook: return -EPERM */
#define ENF_REPORT 3 /* the load already failed: judged for the report only, nothing to enforce */

/* Where the instructions are read from. */
#define SRC_USER 0           /* loader memory, bpf_probe_read_user (non-sleepable hooks) */
#define SRC_KERNEL 1         /* the kernel's copy (lsm/bpf_prog_load) */
#define SRC_USER_SLEEPABLE 2 /* loader memory, bpf_copy_from_user (lsm.s/bpf) */

/* Minimal CO-RE views of kernel types: only the fields read here. */
struct qstr {
	__u64 hash_len; /* len in the high 32 bits (little endian) */
	const unsigned char *name;
} __attribute__((preserve_access_index));
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
} __attribute__((preserve_access_index));
struct vfsmount {
	struct dentry *mnt_root;
} __attribute__((preserve_access_index));
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __attribute__((preserve_access_index));
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));
struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));
struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));
struct file {
	const void *f_op;
	struct path f_path;
	struct inode *f_inode;
	void *private_data;
} __attribute__((preserve_access_index));
struct mm_struct {
	struct file *exe_file;
} __attribute__((preserve_access_index));
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));
struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));
struct thread_info {
	__u32 status;
} __attribute__((preserve_access_index));
struct cred {
	/* kernel_cap_t: u64 val (6.3+) or u32 cap[2] (before): the same 8
	 * bytes either way, read raw at the relocated offset. */
	struct { __u64 val; } cap_effective;
} __attribute__((preserve_access_index));
/* sigset_t: one word on 64-bit. */
struct sigpending {
	struct {
		unsigned long sig[1];
	} signal;
} __attribute__((preserve_access_index));
struct signal_struct {
	struct sigpending shared_pending;
} __attribute__((preserve_access_index));
struct task_struct {
	struct thread_info thread_info;
	struct sigpending pending;
	struct signal_struct *signal;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *cred;
	__u64 start_boottime;
	struct files_struct *files;
	struct mm_struct *mm;
	struct nsproxy *nsproxy;
} __attribute__((preserve_access_index));
struct bpf_prog;
struct bpf_token;
struct bpf_prog_aux {
	__u32 id;
	__u32 attach_btf_id;
	struct bpf_prog *prog; /* back to the program: tells a bpf_prog from other fds' private data */
	struct bpf_token *token; /* 6.9+: the token the program was loaded through */
} __attribute__((preserve_access_index));
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));
struct user_namespace {
	struct ns_common ns;
} __attribute__((preserve_access_index));
/* 6.9+: the object behind a BPF token fd. */
struct bpf_token {
	struct user_namespace *userns;
	__u64 allowed_cmds;
	__u64 allowed_maps;
	__u64 allowed_progs;
	__u64 allowed_attachs;
} __attribute__((preserve_access_index));
struct bpf_prog {
	enum bpf_prog_type type;
	__u32 len; /* instructions in insnsi */
	__u8 tag[8];
	struct bpf_prog_aux *aux;
	struct bpf_insn insnsi[0];
} __attribute__((preserve_access_index));
struct pt_regs {
	unsigned long bx;
	unsigned long cx;
	unsigned long ax;
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

/* syscalls:sys_enter_bpf / sys_exit_bpf records (see their tracefs format). */
struct sys_enter_bpf_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 cmd;
	__u64 uattr;
	__u64 size;
};
struct sys_exit_bpf_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

/* Keep the shared types in the object's BTF so bpf2go -type can emit them. */
const struct sentry_header *unused_header __attribute__((unused));
const struct sentry_chunk *unused_chunk __attribute__((unused));
const struct sentry_verdict_rec *unused_verdict __attribute__((unused));
const struct sentry_exit *unused_exit __attribute__((unused));
const enum sentry_record_kind *unused_kind __attribute__((unused));
const enum sentry_loss *unused_loss __attribute__((unused));
const enum sentry_verdict *unused_verdict_enum __attribute__((unused));
const enum sentry_action *unused_action __attribute__((unused));
const enum sentry_mode *unused_mode __attribute__((unused));
const enum sentry_on_error *unused_on_error __attribute__((unused));
const enum sentry_lock *unused_lock __attribute__((unused));
const enum sentry_kattr *unused_kattr __attribute__((unused));

_Static_assert(SENTRY_MATCHED_WORDS == RULES_MATCHED_WORDS, "the verdict record carries the whole result bitmap");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* user space resizes before loading */
} events SEC(".maps");

/*
 * [0]: the ring's consumer position when the exit hook last forced a
 * wakeup, plus one (0: none yet). While the reader has not moved past it,
 * that wakeup is still to be acted on, so the next exit need not send
 * another: see exit_wakeup. [1]: the wakeups the exit hook forced.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ring_wake SEC(".maps");

struct inflight {
	__u64 load_id;
	__u32 killed;
	__u32 denied; /* the LSM gate (sentry_lsm_bpf_gate) refuses this load */
	__u32 token;  /* a BPF_TOKEN_CREATE, not a load */
	__u32 bpffs_fd;
	/* An inner load (LSM hooks): its outcome is reported by
	 * sentry_lsm_prog_fd or at the judgement, not by the outer call's
	 * sys_exit; the loader program its caller ran. */
	__u32 inner;
	__u32 loader_prog_id;
	__u8 loader_tag[8];
};

#define CMD_TOKEN_CREATE 36 /* BPF_TOKEN_CREATE (6.9+) */

/*
 * sys_enter → sys_exit pairing of one BPF_PROG_LOAD, keyed by thread id.
 * LRU: an insert never fails for lack of room (entries of loads whose exit
 * was never seen are evicted first), so the 5.10 gate always finds the load
 * its judge just recorded.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

/*
 * On the lsm/bpf_prog_load hook: every BPF_PROG_LOAD's attr pointer, kept
 * by thread from the syscall's entry (sentry_attach_tp) to its exit. A
 * load the kernel refuses before that hook runs leaves no inflight entry:
 * the exit judges it from this pointer for the report (on_exit_lsm).
 */
struct load_attempt {
	__u64 uattr;
	__u64 size;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct load_attempt);
} load_attempts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SENTRY_LOSS_NR);
	__type(key, __u32);
	__type(value, __u64);
} losses SEC(".maps");

#ifndef SENTRY_NO_LOOP
/* The load sequence, one for all CPUs, incremented atomically: the
 * sleepable hook can be preempted (and migrated) between read and write. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} load_seq SEC(".maps");
#else
/* 5.10 has no atomic fetch-and-add (BPF_FETCH is 5.12), and this object
 * has no sleepable program: every judge runs with preemption off, so a
 * per-CPU sequence with a plain increment is unique with the CPU id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} load_seq SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rules_facts);
} facts_scratch SEC(".maps");


/*
 * Where each chunk record is built: read from the loader, walked, then
 * copied into the ring buffer with bpf_ringbuf_output at its used size
 * (a small program costs a small record). Facts stay exact when the ring
 * buffer is full. Also scratch for the exe path walk.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_chunk);
} chunk_scratch SEC(".maps");

/* The part of union bpf_attr that BPF_PROG_LOAD uses and we read. */
struct prog_load_attr {
	__u32 prog_type;
	__u32 insn_cnt;
	__u64 insns;
	__u64 license;
	__u32 log_level;
	__u32 log_size;
	__u64 log_buf;
	__u32 kern_version;
	__u32 prog_flags;
	char prog_name[SENTRY_NAME_LEN];
	__u32 prog_ifindex;
	__u32 expected_attach_type;
	__u32 prog_btf_fd;
	__u32 func_info_rec_size;
	__u64 func_info;
	__u32 func_info_cnt;
	__u32 line_info_rec_size;
	__u64 line_info;
	__u32 line_info_cnt;
	__u32 attach_btf_id;
	__u32 attach_btf_obj_fd;
	__u32 core_relo_cnt;
	__u64 fd_array;
	__u64 core_relos;
	__u32 core_relo_rec_size;
	__u32 log_true_size;
	__s32 prog_token_fd;  /* 6.9+ */
	__u32 fd_array_cnt;
	__u64 signature;      /* 6.18+ */
	__u32 signature_size;
	__s32 keyring_id;
};

/* The syscall hooks' copy of the attr: in map memory, not on the stack,
 * which the walk's callbacks leave too little of (6.1 counts 512 bytes over
 * the call chain). Per CPU: those hooks do not sleep. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct prog_load_attr);
} attr_scratch SEC(".maps");

struct walk_ctx {
	__u64 load_id;
	__u64 insns;
	__u32 pid;
	__u32 total;       /* instructions to read */
	__u32 emit;        /* chunks go to the ring buffer (header was emitted) */
	__u32 chunks_lost;
	__u32 insns_read;
	__u32 read_errors;
	__u32 calls_helper;
	__u32 calls_sub;
	__u32 calls_kfunc;
	/* For the corrupt enforcer: the first exit, and where the main
	 * function ends (the first sub-program's slot); NO_SLOT when none. */
	__u32 first_exit;
	__u32 main_end;
	__u32 lock; /* enum sentry_lock: in the padding, not in a stack slot of its own */
	__u32 refs_over; /* of read_errors: group map references past the cap */
};

#ifndef SENTRY_NO_LOOP
/*
 * The sleepable lsm.s/bpf program's scratch, per task rather than per CPU:
 * it can sleep in bpf_copy_from_user (a page fault, which a loader can
 * stretch at will with userfaultfd), and another load judged on the same
 * CPU meanwhile would overwrite per-CPU facts and chunk. A task judges one
 * load at a time. Created on a task's first load, freed when it exits.
 */
struct task_scratch {
	struct rules_facts f;
	struct sentry_chunk chunk;
	struct rules_result res;
	struct prog_load_attr attr; /* sentry_lsm_bpf's copy of the attr */
	struct walk_ctx wc;
	/* The load being judged is an inner one: its attr, instructions and
	 * license are kernel memory (bpf_sys_bpf's KERNEL_BPFPTR). Read by the
	 * walk from this map value, which the verifier does not track, so
	 * that one callback serves both sources. */
	__u32 src_kernel;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_scratch);
} task_scratch SEC(".maps");
#endif

/*
 * The kernel rule tables compiled by package rules (bpf/include/rules.h):
 * two, the one in use is config.rules_active. A map update copies a value
 * without a lock, so a table rewritten in place could be read half old and
 * half new; user space writes the inactive one instead, and only when no
 * judge still holds it (rules_readers), then switches the index.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct rules_table);
} rules SEC(".maps");

/*
 * Judges evaluating with each table right now. A judge adds itself, then
 * re-reads the active index: if it changed meanwhile it leaves and takes
 * the other. User space, before writing a table, switches away from it and
 * waits for its count to reach zero, so no judge can be inside a table
 * being written (both sides use full-barrier atomics or syscalls).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} rules_readers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_config);
} config SEC(".maps");

/*
 * What user space writes: config and rules above are frozen (no process
 * writes them through bpf(), root included) and only these programs write
 * them, copying an update of these staged maps when it completes, if the
 * writer is the agent (or no agent is recorded yet: the first one to start,
 * or one taking over a pinned sensor its predecessor left cleanly). A write
 * by anyone else stays here, judged by nobody (selfprotect.h).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_config);
} config_staged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct rules_table);
} rules_staged SEC(".maps");

static const struct rules_facts zero_facts;

/* Instructions captured per loader (tgid) in its current window. LRU: a
 * loader evicted starts a new window, which only ever favours capture. */
struct loader_rate {
	__u64 window_start;
	__u64 insns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct loader_rate);
} loader_rate SEC(".maps");

/*
 * Whether tgid's load of n instructions is over its capture rate: then it
 * is judged as usual but its instructions are not copied to the ring
 * buffer, so one loader's flood cannot take the ring from the others. The
 * first load of a window is always captured (a single big load is fine).
 */
static __always_inline int over_rate(const struct sentry_config *cfg, __u32 tgid, __u32 n, __u64 now)
{
	if (!cfg->loader_insns || !n)
		return 0;
	struct loader_rate *r = bpf_map_lookup_elem(&loader_rate, &tgid);
	if (!r) {
		struct loader_rate fresh = {.window_start = now, .insns = n};
		bpf_map_update_elem(&loader_rate, &tgid, &fresh, BPF_ANY);
		return 0;
	}
	if (now - r->window_start >= cfg->loader_window_ns) {
		r->window_start = now;
		r->insns = n;
		return 0;
	}
	if (r->insns + n > cfg->loader_insns)
		return 1;
	__sync_fetch_and_add(&r->insns, n);
	return 0;
}

/*
 * Takes the active rule table for one evaluation (see rules_readers) and
 * says in *idx which one to give back with release_table. NULL when the
 * index moved twice while taking it (two reloads in a few instructions: a
 * writer never does that while a judge holds a table) or a lookup failed.
 */
static __always_inline struct rules_table *acquire_table(const struct sentry_config *cfg, __u32 *idx)
{
#pragma unroll
	for (int i = 0; i < 2; i++) {
		__u32 k = *(volatile const __u32 *)&cfg->rules_active & 1;
		__u64 *n = bpf_map_lookup_elem(&rules_readers, &k);
		if (!n)
			return NULL;
		__sync_fetch_and_add(n, 1);
		if ((*(volatile const __u32 *)&cfg->rules_active & 1) == k) {
			struct rules_table *t = bpf_map_lookup_elem(&rules, &k);
			if (!t)
				__sync_fetch_and_add(n, -1);
			*idx = k;
			return t;
		}
		__sync_fetch_and_add(n, -1);
	}
	return NULL;
}

static __always_inline void release_table(__u32 idx)
{
	__u32 k = idx & 1;
	__u64 *n = bpf_map_lookup_elem(&rules_readers, &k);
	if (n)
		__sync_fetch_and_add(n, -1);
}
static const struct sentry_verdict_rec zero_verdict;
static const struct sentry_token_rec zero_token;

/* Facts and chunk scratch: per CPU, except for the sleepable hook (per task). */
#ifndef SENTRY_NO_LOOP
static __always_inline struct task_scratch *own_scratch(void)
{
	return bpf_task_storage_get(&task_scratch, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}
#endif

/* After its null check: keeps the compiler from adding a field's offset
 * to the pointer before the check (a select), which older verifiers (6.1)
 * refuse as arithmetic on map_value_or_null. */
#define SCRATCH_CHECKED(p) asm volatile("" : "+r"(p))

static __always_inline struct rules_facts *scratch_facts(const int kernel)
{
	__u32 zero = 0;
#ifndef SENTRY_NO_LOOP
	if (kernel == SRC_USER_SLEEPABLE) {
		struct task_scratch *ts = own_scratch();
		if (!ts)
			return NULL;
		SCRATCH_CHECKED(ts);
		return &ts->f;
	}
#endif
	return bpf_map_lookup_elem(&facts_scratch, &zero);
}

static __always_inline struct sentry_chunk *scratch_chunk(const int kernel)
{
	__u32 zero = 0;
#ifndef SENTRY_NO_LOOP
	if (kernel == SRC_USER_SLEEPABLE) {
		struct task_scratch *ts = own_scratch();
		if (!ts)
			return NULL;
		SCRATCH_CHECKED(ts);
		return &ts->chunk;
	}
#endif
	return bpf_map_lookup_elem(&chunk_scratch, &zero);
}

#ifndef SENTRY_NO_LOOP
/* The evaluator's result: off the stack (its bitmap is RULES_MAX bits). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rules_result);
} result_scratch SEC(".maps");

static __always_inline struct rules_result *scratch_result(const int kernel)
{
	__u32 zero = 0;
	if (kernel == SRC_USER_SLEEPABLE) {
		struct task_scratch *ts = own_scratch();
		if (!ts)
			return NULL;
		SCRATCH_CHECKED(ts);
		return &ts->res;
	}
	return bpf_map_lookup_elem(&result_scratch, &zero);
}

/*
 * The walk's context: off the stack, in a map value, whose contents the
 * verifier does not track. On the stack, every counter and slot the
 * bpf_loop callbacks update (calls, first exit, main end, ...) was a
 * tracked value, and the verifier walked the callbacks again for each new
 * combination before the loop converged: ~380,000 verified instructions
 * for sentry_enter_tp on 6.18, most of the sensor's start-up
 * (docs/PERFORMANCE.md "Start-up").
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_ctx);
} walk_scratch SEC(".maps");

static __always_inline struct walk_ctx *scratch_walk(const int kernel)
{
	__u32 zero = 0;
	if (kernel == SRC_USER_SLEEPABLE) {
		struct task_scratch *ts = own_scratch();
		if (!ts)
			return NULL;
		SCRATCH_CHECKED(ts);
		return &ts->wc;
	}
	return bpf_map_lookup_elem(&walk_scratch, &zero);
}
#endif

static __always_inline void count_loss(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&losses, &reason);
	if (n)
		__sync_fetch_and_add(n, 1); /* the sleepable hook can be preempted */
}

/*
 * The exe path, walked in the kernel because d_path is not allowed in
 * tracepoints and /proc/PID/exe may be gone (or reused) by the time user
 * space looks. Components are written leaf first into per-CPU scratch.
 */
struct path_ctx {
	struct dentry *dentry;
	struct mount *mnt;
	__u8 *buf;
	__u32 pos;
	__u32 done;
};

static long path_step(__u64 i, struct path_ctx *pc)
{
	/* locals: CO-RE must not relocate accesses to path_ctx itself */
	struct dentry *d = pc->dentry;
	struct mount *m = pc->mnt;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct dentry *root = BPF_CORE_READ(m, mnt.mnt_root);

	if (d == root || d == parent) {
		struct mount *up = BPF_CORE_READ(m, mnt_parent);
		if (up == m || !up) {
			pc->done = 1;
			return 1;
		}
		pc->dentry = BPF_CORE_READ(m, mnt_mountpoint);
		pc->mnt = up;
		return 0;
	}
	__u32 len = BPF_CORE_READ(d, d_name.hash_len) >> 32;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	__u32 pos = pc->pos;
	if (len == 0 || len > 255 || pos > 255 || pos + len + 1 >= SENTRY_EXE_LEN)
		return 1;
	bpf_probe_read_kernel(pc->buf + (pos & 255), len & 255, name);
	pos += len;
	pc->buf[pos & (SENTRY_EXE_LEN - 1)] = '/';
	pc->pos = pos + 1;
	pc->dentry = parent;
	return 0;
}


#define NO_SLOT 0xffffffffU
#define OP_EXIT 0x95 /* BPF_JMP | BPF_EXIT */
#define OP_LD_IMM64 0x18
#define PSEUDO_FUNC 4 /* ld_imm64 of a sub-program's address (bpf_loop callbacks …) */
#define PSEUDO_MAP_FD 1
#define PSEUDO_MAP_VALUE 2
#define PSEUDO_MAP_IDX 5
#define PSEUDO_MAP_IDX_VALUE 6

struct slot_ctx {
	struct walk_ctx *c;
	struct rules_facts *f;
	struct sentry_chunk *buf;
	__u32 base; /* the chunk's first slot in the program */
	__u32 from; /* walk_slot: first slot of the loop */
};

/* A sub-program starts at the target of a bpf-to-bpf call or of a
 * function-address ld_imm64 in slot at. */
static __always_inline void walk_sub_start(struct walk_ctx *c, __u32 at, __u64 w)
{
	__s64 t = (__s64)at + (__s32)(w >> 32) + 1;

	if (t > 0 && t < c->main_end)
		c->main_end = t;
}

#ifndef SENTRY_NO_LOOP
/* Whether want is among arr[0..n) (n capped at RULES_MAP_REFS). A bpf_loop
 * rather than a bounded loop: the verifier walks a bounded loop once per
 * iteration (its index is exact), 64 times for a full table, and these
 * searches sit in the walk's callbacks, which it verifies again until the
 * walk's loop converges; a callback is verified with its index unknown.
 * That was ~30 % of the judge's verified instructions (docs/PERFORMANCE.md
 * "Start-up"). */
struct find_u32_ctx {
	const __u32 *arr;
	__u32 want;
	__u32 found;
};

static long find_u32_step(__u64 i, struct find_u32_ctx *c)
{
	if (c->arr[RULES_MAP_REF_SLOT(i)] == c->want) {
		c->found = 1;
		return 1;
	}
	return 0;
}

static __always_inline int ref_table_has(const __u32 *arr, __u32 n, __u32 want)
{
	struct find_u32_ctx c = {.arr = arr, .want = want};

	if (n > RULES_MAP_REFS)
		n = RULES_MAP_REFS;
	if (n)
		bpf_loop(n, find_u32_step, &c, 0);
	return c.found;
}

/* A map reference of a ld_imm64 (an fd, or RULES_MAP_REF_IDX | an fd_array
 * index), noted once for the load's group (bpf/group.h). In f, a map value:
 * the verifier does not track what is stored there, so this adds no states
 * to the walk. */
static __always_inline void walk_map_ref(struct rules_facts *f, __u32 ref)
{
	__u32 n = f->map_refs;

	if (ref_table_has(f->map_ref, n, ref))
		return;
	if (n < RULES_MAP_REFS) {
		f->map_ref[RULES_MAP_REF_SLOT(n)] = ref;
		f->map_refs = n + 1;
	} else {
		f->map_refs_over++;
	}
}
#endif

/* One slot (at, in the program): facts plus the call counts the verdict
 * record carries and what the corrupt enforcer needs. */
static __always_inline void walk_one(struct walk_ctx *c, struct rules_facts *f, __u64 w, __u32 at)
{
	rules_facts_add_insn(f, w);
	__u8 op = w;
	__u32 src = (w >> 12) & 0xf;
	if (op == OP_EXIT) {
		if (c->first_exit == NO_SLOT)
			c->first_exit = at;
		return;
	}
	if (op == OP_LD_IMM64 && src == PSEUDO_FUNC) {
		walk_sub_start(c, at, w);
		return;
	}
#ifndef SENTRY_NO_LOOP /* the 5.10 build has no group judge */
	if (op == OP_LD_IMM64 && (src == PSEUDO_MAP_FD || src == PSEUDO_MAP_VALUE)) {
		walk_map_ref(f, w >> 32);
		return;
	}
	if (op == OP_LD_IMM64 && (src == PSEUDO_MAP_IDX || src == PSEUDO_MAP_IDX_VALUE)) {
		walk_map_ref(f, RULES_MAP_REF_IDX | (w >> 32));
		return;
	}
#endif
	if (op != OP_CALL)
		return;
	if (src == 0) {
		c->calls_helper++;
	} else if (src == PSEUDO_CALL) {
		c->calls_sub++;
		walk_sub_start(c, at, w);
	} else if (src == PSEUDO_KFUNC_CALL) {
		c->calls_kfunc++;
	}
}

#ifndef SENTRY_NO_LOOP
/*
 * Slots walked per walk_steps callback: a bpf_loop callback is an indirect
 * call (a retpoline in most VMs) that costs more than a slot's own work.
 * Only the hash is computed inline, and only while the step holds no call
 * (0x85) or ld_imm64 (0x18): for every other opcode the hash of the slot
 * is the hash of the normalised slot and there is nothing to count. A step
 * with one of them is walked slot by slot instead. Keeping the inline path
 * free of branches that rejoin keeps the verifier's work linear (inlining
 * walk_one 8 times multiplied its explored states by 6).
 */
#define WALK_STEP 8

static long walk_slot(__u64 i, struct slot_ctx *sc);

static long walk_steps(__u64 i, struct slot_ctx *sc)
{
	struct rules_facts *f = sc->f;

	if (i >= SENTRY_CHUNK_INSNS / WALK_STEP)
		return 1;
	/* the mask repeats the check above in a form the verifier keeps */
	__u32 first = (i & (SENTRY_CHUNK_INSNS / WALK_STEP - 1)) * WALK_STEP;
	const __u64 *p = (const __u64 *)sc->buf->data + first;
	__u64 h = f->insn_hash;
#pragma unroll
	for (int k = 0; k < WALK_STEP; k++) {
		__u64 w = p[k];
		__u8 op = w;
		if (op == OP_CALL || op == OP_LD_IMM64 || op == OP_EXIT)
			goto slow;
		h = rules_hash_step(h, w);
	}
	f->insn_hash = h;
	return 0;
slow:
	sc->from = first;
	bpf_loop(WALK_STEP, walk_slot, sc, 0);
	return 0;
}

/* One slot, from sc->from on: a step with a call, ld_imm64 or exit, and
 * the chunk's last, partial step. */
static long walk_slot(__u64 i, struct slot_ctx *sc)
{
	__u64 at = sc->from + i;

	if (at >= SENTRY_CHUNK_INSNS)
		return 1;
	walk_one(sc->c, sc->f, *(__u64 *)(sc->buf->data + (at & (SENTRY_CHUNK_INSNS - 1)) * 8), sc->base + at);
	return 0;
}
#endif

/*
 * One chunk: read it from the loader into per-CPU scratch, walk it there,
 * then copy it into a ring-buffer record. Reading into scratch first keeps
 * the facts exact when the ring buffer is full.
 */
static __always_inline long walk_chunk(__u64 index, struct walk_ctx *c, const int kernel)
{
	__u32 first = index * SENTRY_CHUNK_INSNS;
	if (first >= c->total)
		return 1;
	__u32 n = c->total - first;
	if (n > SENTRY_CHUNK_INSNS)
		n = SENTRY_CHUNK_INSNS;
	__u32 bytes = n * 8;
	/* Opaque to the compiler, which would drop the check below as
	 * redundant: 5.10's verifier loses n's bound and needs it. */
	asm volatile("" : "+r"(bytes));
	if (bytes > SENTRY_CHUNK_INSNS * 8)
		return 1;
	const void *src = (const void *)(c->insns + (__u64)first * 8);

	struct sentry_chunk *buf = scratch_chunk(kernel);
	struct rules_facts *f = scratch_facts(kernel);
	if (!buf || !f)
		return 1;
	__u32 read_err = 0;
	long rerr;
	if (kernel == SRC_KERNEL)
		rerr = bpf_probe_read_kernel(buf->data, bytes, src);
#ifndef SENTRY_NO_LOOP
	else if (kernel == SRC_USER_SLEEPABLE) {
		struct task_scratch *ts = own_scratch();
		if (ts && ts->src_kernel)
			rerr = bpf_probe_read_kernel(buf->data, bytes, src);
		else
			rerr = bpf_copy_from_user(buf->data, bytes, src); /* may fault pages in */
	}
#endif
	else
		rerr = bpf_probe_read_user(buf->data, bytes, src);
	if (rerr) {
		read_err = 1;
		c->read_errors++;
		count_loss(SENTRY_LOSS_INSN_READ);
	} else {
#ifdef SENTRY_NO_LOOP
		/* A bounded loop, which the verifier walks once per slot; it
		 * checks this function once for all its calls (global). */
		const __u64 *p = (const __u64 *)buf->data;
#pragma clang loop unroll(disable)
		for (__u32 k = 0; k < SENTRY_CHUNK_INSNS; k++) {
			if (k >= n)
				break;
			walk_one(c, f, p[k], first + k);
		}
#else
		struct slot_ctx sc = {.c = c, .f = f, .buf = buf, .base = first};
		bpf_loop(n / WALK_STEP, walk_steps, &sc, 0);
		sc.from = n / WALK_STEP * WALK_STEP; /* the last, partial step */
		bpf_loop(n % WALK_STEP, walk_slot, &sc, 0);
#endif
		c->insns_read += n;
	}

	if (!c->emit)
		return 0;
	buf->h.kind = SENTRY_REC_CHUNK;
	buf->h.pid = c->pid;
	buf->h.load_id = c->load_id;
	buf->index = index;
	buf->count = n;
	buf->read_err = read_err;
	buf->_pad = 0;
	/* Wake the reader every 256 chunks (2 MiB) so that it drains a big
	 * load while it is still being written. */
	__u64 flags = (index & 255) == 255 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	/* A big program (its chunks would fill more than an eighth of the
	 * ring) writes chunks only while the ring is at most half full: the
	 * other half stays for the records of other loads, small programs'
	 * chunks included. A chunk not written is counted like a failed
	 * reserve; user space then reads the program from the loader's
	 * memory and keeps it only if it hashes to the verdict's insn_hash
	 * (sensor/recover.go), so one big program cannot crowd out the rest. */
	__u64 ring = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	if ((__u64)c->total * 8 > ring / 8 &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + sizeof(*buf) > ring / 2) {
		count_loss(SENTRY_LOSS_CHUNK_RESERVE);
		c->chunks_lost++;
		return 0;
	}
	if (bpf_ringbuf_output(&events, buf, offsetof(struct sentry_chunk, data) + bytes, flags)) {
		count_loss(SENTRY_LOSS_CHUNK_RESERVE);
		c->chunks_lost++;
	}
	return 0;
}

#ifdef SENTRY_NO_LOOP
/*
 * Kernels without bpf_loop (before 5.17): the loops of the walk, the exe
 * path and the rule table call global functions, which the verifier checks
 * once each, with scalar arguments only (5.10 allows nothing else), so the
 * state they share lives in this per-CPU value. The programs using it run
 * with migration disabled and never sleep (no lsm.s hook in this object).
 */
struct legacy_state {
	struct walk_ctx wc;
	struct rules_result res;
	struct path_ctx pc; /* pc.buf is always NULL here: a map value holds no pointer */
	__u32 table_idx;    /* the rule table judge took (acquire_table) */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	/* a size, not a type: a private layout with no Go twin */
	__uint(value_size, sizeof(struct legacy_state));
} legacy_state SEC(".maps");

/* (1,000,000 + 511) / 512: the chunks of the longest program the kernel accepts */
#define SENTRY_MAX_CHUNKS ((SENTRY_MAX_INSNS + SENTRY_CHUNK_INSNS - 1) / SENTRY_CHUNK_INSNS)

__noinline int sentry_walk_user(__u32 index)
{
	__u32 zero = 0;
	struct legacy_state *ls = bpf_map_lookup_elem(&legacy_state, &zero);
	if (!ls)
		return 1;
	return walk_chunk(index, &ls->wc, SRC_USER);
}

__noinline int sentry_path_step(__u32 index)
{
	__u32 zero = 0;
	struct legacy_state *ls = bpf_map_lookup_elem(&legacy_state, &zero);
	struct sentry_chunk *pbuf = bpf_map_lookup_elem(&chunk_scratch, &zero);
	if (!ls || !pbuf)
		return 1;
	struct path_ctx pc = ls->pc;
	pc.buf = pbuf->data;
	long r = path_step(index, &pc);
	ls->pc.dentry = pc.dentry;
	ls->pc.mnt = pc.mnt;
	ls->pc.pos = pc.pos;
	ls->pc.done = pc.done;
	return r;
}

__noinline int sentry_rule_step(__u32 index)
{
	__u32 zero = 0;
	struct legacy_state *ls = bpf_map_lookup_elem(&legacy_state, &zero);
	if (!ls)
		return 1;
	__u32 k = ls->table_idx & 1;
	struct rules_table *table = bpf_map_lookup_elem(&rules, &k);
	struct rules_facts *f = bpf_map_lookup_elem(&facts_scratch, &zero);
	if (!table || !f)
		return 1;
	struct rules_loop_ctx c = {.t = table, .f = f, .res = &ls->res};
	return rules_loop_step(index, &c);
}
#else
/* Two callbacks rather than a flag in walk_ctx: a flag the callback
 * branches on makes the verifier track the context precisely, and the
 * bpf_loop callback then never converges. */
/* bpf_loop takes a stack pointer: the walk context itself is in a map
 * value (scratch_walk), and this holds the pointer to it. */
struct walk_loop {
	struct walk_ctx *wc;
};

static long walk_chunk_user(__u64 index, struct walk_loop *l)
{
	return walk_chunk(index, l->wc, SRC_USER);
}

static long walk_chunk_kernel(__u64 index, struct walk_loop *l)
{
	return walk_chunk(index, l->wc, SRC_KERNEL);
}

static long walk_chunk_sleepable(__u64 index, struct walk_loop *l)
{
	return walk_chunk(index, l->wc, SRC_USER_SLEEPABLE);
}
#endif

/* Unique per load: the global sequence (per CPU on 5.10, unique with the
 * CPU in the top bits). */
static __always_inline __u64 next_load_id(__u32 cpu)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&load_seq, &zero);
	if (!seq)
		return 0;
#ifndef SENTRY_NO_LOOP
	__u64 n = __sync_fetch_and_add(seq, 1) + 1;
#else
	__u64 n = ++*seq;
#endif
	return ((__u64)cpu << 48) | (n & ((1ULL << 48) - 1));
}


#define BPF_F_TOKEN_FD_FLAG (1U << 16)

/*
 * On the LSM hooks attr is the kernel's copy: zero the fields the running
 * kernel's union bpf_attr does not have (cfg->kattr, from its BTF), which
 * would otherwise be read from whatever follows it on the stack.
 */
#ifndef SENTRY_NO_LOOP /* its callers, the LSM hooks that read kattr, are not in the 5.10 build */
static __always_inline void clamp_kattr(struct prog_load_attr *ap)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u32 k = cfg ? cfg->kattr : 0;

	if (!(k & SENTRY_KATTR_TOKEN)) {
		ap->log_true_size = 0;
		ap->prog_token_fd = 0;
		ap->fd_array_cnt = 0;
	}
	if (!(k & SENTRY_KATTR_SIGNATURE)) {
		ap->signature = 0;
		ap->signature_size = 0;
		ap->keyring_id = 0;
	}
}
#endif

/* The provenance facts of a load (enum rules_prov). On lsm/bpf_prog_load a
 * signature has already been verified: the kernel fails the load before
 * that hook when it does not verify. */
static __always_inline __u32 prov_facts(const struct prog_load_attr *ap, const int kernel)
{
	__u32 p = 0;

	if (ap->prog_flags & BPF_F_TOKEN_FD_FLAG)
		p |= RULES_PROV_TOKEN;
	if (!ap->signature)
		return p | RULES_PROV_KEYRING_NONE;
	p |= RULES_PROV_SIGNED | rules_keyring_kind(ap->keyring_id);
	if (kernel == SRC_KERNEL)
		p |= RULES_PROV_VERIFIED;
	return p;
}

/* The file behind fd in the current task, or NULL. */
static __always_inline struct file *current_fd_file(__s64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file *file = NULL;
	if (fd >= 0 && (__u64)fd < max) {
		struct file **fds = BPF_CORE_READ(fdt, fd);
		bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
	}
	return file;
}

/*
 * The corrupt enforcer (the seed's method, made to load): rewrites the
 * loader's first instructions so that the program returns 0 at once —
 * "r0 = 0; if r0 == 0 goto <first exit>", which the verifier accepts (the
 * skipped code is dead, not unreachable), or just "r0 = 0" when the first
 * exit is slot 1. Where the first exit is not in the main function (or too
 * far for a 16-bit jump), the seed's plain BPF_EXIT at slot 0, which the
 * verifier refuses (R0 not set). Racy either way: the loader can write its
 * instructions back before the kernel copies them.
 */
static __always_inline __u32 corrupt(__u64 insns, const struct walk_ctx *wc)
{
	__u32 e = wc->first_exit;
	long err;

	if (e != NO_SLOT && e < wc->main_end && e >= 2 && e - 2 <= 32767) {
		__u64 code[2] = {0xb7 /* r0 = 0 */, 0x15 | ((__u64)(e - 2) << 16) /* if r0 == 0 goto +e-2 */};
		err = bpf_probe_write_user((void *)insns, code, sizeof(code));
	} else if (e == 1 && e < wc->main_end) {
		__u64 mov = 0xb7; /* r0 = 0, then the program's exit */
		err = bpf_probe_write_user((void *)insns, &mov, sizeof(mov));
	} else {
		__u64 exit_insn = OP_EXIT;
		err = bpf_probe_write_user((void *)insns, &exit_insn, sizeof(exit_insn));
	}
	return err ? SENTRY_ACT_CORRUPT_FAILED : SENTRY_ACT_CORRUPTED;
}

/*
 * Whether the current task belongs to the agent: its tgid and its thread
 * group leader's start time (nanoseconds since boot) must both be the ones
 * recorded for the agent. A tgid alone would trust whoever gets a dead
 * agent's pid next (clone3 set_tid chooses one); the start time cannot be
 * chosen, and at this resolution no later process shares it. An identity
 * whose start is not yet learnt trusts nobody.
 */
static __always_inline int is_self(const struct sentry_config *cfg, __u32 tgid, struct task_struct *task)
{
	if (!cfg->self_tgid || tgid != cfg->self_tgid || !cfg->self_start_ns)
		return 0;
	return BPF_CORE_READ(task, group_leader, start_boottime) == cfg->self_start_ns;
}

#include "include/allowlist.h"

/* A walk that found nothing: the corrupt enforcer then writes BPF_EXIT at 0. */
static const struct walk_ctx no_walk = {.first_exit = NO_SLOT, .main_end = NO_SLOT};

#define CAP_SYS_ADMIN 21
#define CAP_BPF 39
#define PROG_TYPE_SOCKET_FILTER 1
#define PROG_TYPE_CGROUP_SKB 8

/*
 * Whether the kernel will certainly refuse this load for lack of
 * privilege: bpf_prog_load allows a task without CAP_BPF and without
 * CAP_SYS_ADMIN only socket filter and cgroup skb programs (and only when
 * unprivileged BPF is enabled). A missing bit in the effective set means
 * capable() fails whatever the namespace, so this never skips a load that
 * could succeed; set bits are not trusted (they may be another user
 * namespace's), such loads are judged as usual.
 */
static __always_inline int will_be_refused(struct task_struct *task, __u32 prog_type)
{
	if (prog_type == PROG_TYPE_SOCKET_FILTER || prog_type == PROG_TYPE_CGROUP_SKB)
		return 0;
	const struct cred *cred = BPF_CORE_READ(task, cred);
	__u64 caps = 0;
	if (!cred || bpf_probe_read_kernel(&caps, sizeof(caps), (void *)cred + bpf_core_field_offset(struct cred, cap_effective)))
		return 0;
	return !(caps & (1ULL << CAP_SYS_ADMIN)) && !(caps & (1ULL << CAP_BPF));
}

/* Carries out a block verdict: the action taken. */
static __always_inline __u32 enforce(const struct sentry_config *cfg, __u32 tgid, struct task_struct *task,
				     const int enforcer, __u64 insns, const struct walk_ctx *wc)
{
	if (is_self(cfg, tgid, task))
		return SENTRY_ACT_SELF;
	if (cfg->mode != SENTRY_MODE_ENFORCE || enforcer == ENF_REPORT)
		return SENTRY_ACT_MONITOR;
	if (enforcer == ENF_DENY)
		return SENTRY_ACT_DENIED;
	if (enforcer == ENF_CORRUPT)
		return corrupt(insns, wc);
	return bpf_send_signal(SIGKILL) ? SENTRY_ACT_KILL_FAILED : SENTRY_ACT_KILLED;
}

/*
 * A load that cannot be judged (reason: enum sentry_loss): counted, then
 * decided by cfg->on_error — block (the default) or allow. Without a config
 * there is no policy to read and no agent to spare: block. Reported with a
 * verdict record whose error says why (no header, no instructions).
 */
static __always_inline __u32 unjudged(const struct sentry_config *cfg, __u32 reason, const int enforcer, __u64 insns)
{
	count_loss(reason);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 verdict = SENTRY_VERDICT_ALLOW, action = SENTRY_ACT_NONE;

	if (!cfg) {
		verdict = SENTRY_VERDICT_BLOCK;
		if (enforcer == ENF_REPORT)
			action = SENTRY_ACT_MONITOR;
		else if (enforcer == ENF_DENY)
			action = SENTRY_ACT_DENIED;
		else if (enforcer == ENF_CORRUPT)
			action = corrupt(insns, &no_walk);
		else
			action = bpf_send_signal(SIGKILL) ? SENTRY_ACT_KILL_FAILED : SENTRY_ACT_KILLED;
	} else if (cfg->on_error == SENTRY_ON_ERROR_BLOCK) {
		verdict = SENTRY_VERDICT_BLOCK;
		action = enforce(cfg, tgid, task, enforcer, insns, &no_walk);
	}
	__u64 load_id = next_load_id(bpf_get_smp_processor_id());
	struct sentry_verdict_rec *v = bpf_ringbuf_reserve(&events, sizeof(*v), 0);
	if (v) {
		bpf_probe_read_kernel(v, sizeof(*v), &zero_verdict); /* too big for an inlined memset */
		v->h.kind = SENTRY_REC_VERDICT;
		v->h.pid = tgid;
		v->h.load_id = load_id;
		v->verdict = verdict;
		v->action = action;
		v->rule_index = -1;
		v->error = reason + 1;
		bpf_ringbuf_submit(v, BPF_RB_NO_WAKEUP);
	} else {
		count_loss(SENTRY_LOSS_VERDICT_RESERVE);
	}
	struct inflight in = {
		.load_id = load_id,
		.killed = action == SENTRY_ACT_KILLED,
		.denied = action == SENTRY_ACT_DENIED,
	};
	if (bpf_map_update_elem(&inflight, &tid, &in, BPF_ANY))
		count_loss(SENTRY_LOSS_INFLIGHT_FULL);
	return action;
}

#include "group.h"

/*
 * Whether the current syscall is a 32-bit one (ia32 compat: int 0x80 or
 * sysenter from a 32-bit process), whose numbers and registers differ.
 */
static __always_inline int in_compat_syscall(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, thread_info.status) & TS_COMPAT;
}

#ifndef SENTRY_NO_LOOP
#define CMD_PROG_TEST_RUN 10 /* BPF_PROG_TEST_RUN */
#define PROG_TYPE_SYSCALL 31 /* BPF_PROG_TYPE_SYSCALL */

/*
 * Whether the load an LSM hook sees is an inner one: issued from inside the
 * kernel by a syscall program (bpf_sys_bpf) while its caller is in
 * BPF_PROG_TEST_RUN. The fact comes from the registers the kernel saved at
 * the caller's syscall entry (orig_ax: the syscall number; di, or ebx for a
 * 32-bit caller: bpf()'s cmd), which the caller cannot change while it is
 * in the call. A thread in bpf(BPF_PROG_TEST_RUN) issues no other bpf()
 * call of its own, and of the programs a test run runs only a syscall
 * program can load one: so a BPF_PROG_LOAD seen then is the run's.
 * Returns the outer attr's user address (nonzero) for an inner load, 0
 * otherwise.
 */
static __always_inline __u64 inner_load_uattr(void)
{
	struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = BPF_CORE_READ(r, orig_ax);
	if (in_compat_syscall()) {
		if (nr == NR_BPF_IA32 && (__u32)BPF_CORE_READ(r, bx) == CMD_PROG_TEST_RUN)
			return (__u32)BPF_CORE_READ(r, cx) | (1ULL << 63); /* nonzero even for address 0 */
		return 0;
	}
	if (nr == NR_BPF_X86_64 && BPF_CORE_READ(r, di) == CMD_PROG_TEST_RUN)
		return BPF_CORE_READ(r, si) | (1ULL << 63);
	return 0;
}

#endif

/*
 * Judges one BPF_PROG_LOAD: emits header, chunks and verdict records,
 * carries out a block verdict with the given enforcer and remembers the
 * load for the exit program. insns/insn_cnt are the user's copy (the
 * syscall hooks) or the kernel's (the LSM hook, kernel set). Returns the
 * action taken.
 */
static __always_inline __u32 judge(struct prog_load_attr *ap, __u64 size, __u64 insns_addr,
				   __u32 insn_cnt, const int kernel, const int enforcer)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct rules_facts *f = scratch_facts(kernel);
	if (!cfg)
		return unjudged(cfg, SENTRY_LOSS_NO_TABLE, enforcer, ap->insns);
	if (!f)
		return unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, enforcer, ap->insns);
#ifdef SENTRY_NO_LOOP
	struct legacy_state *ls = bpf_map_lookup_elem(&legacy_state, &zero);
	if (!ls)
		return unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, enforcer, ap->insns);
#endif

	__u64 start = bpf_ktime_get_ns();
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 load_id = next_load_id(cpu);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	__u64 uid_gid = bpf_get_current_uid_gid();

	/* Too big for an inlined memset: copy zeros over it. */
	bpf_probe_read_kernel(f, sizeof(*f), &zero_facts);
	f->prog_type = ap->prog_type;
	f->expected_attach_type = ap->expected_attach_type;
	f->insn_cnt = ap->insn_cnt;
	f->uid = (__u32)uid_gid;
	f->insn_hash = RULES_HASH_INIT;
	f->prov = prov_facts(ap, kernel);
	__builtin_memcpy(f->prog_name, ap->prog_name, SENTRY_NAME_LEN);
	f->prog_name[SENTRY_NAME_LEN - 1] = 0; /* the kernel refuses unterminated names anyway */
	bpf_get_current_comm(f->comm, sizeof(f->comm));

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe) {
		f->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
		f->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}

	__u32 total = insn_cnt;
	/* A load the kernel will refuse is reported (who, how big) without
	 * reading its instructions: cheap under an unprivileged flood. */
	__u32 unprivileged = will_be_refused(task, ap->prog_type);
	if (unprivileged)
		total = 0;
	if (total > SENTRY_MAX_INSNS) {
		count_loss(SENTRY_LOSS_TOO_MANY_INSNS);
		total = SENTRY_MAX_INSNS;
	}
	__u32 chunks = (total + SENTRY_CHUNK_INSNS - 1) / SENTRY_CHUNK_INSNS;
	__u32 rate_limited = over_rate(cfg, tgid, total, start);
	if (rate_limited)
		count_loss(SENTRY_LOSS_RATE_LIMITED);

	struct sentry_header *hdr = bpf_ringbuf_reserve(&events, sizeof(*hdr), 0);
	if (hdr) {
		hdr->h.kind = SENTRY_REC_HEADER;
		hdr->h.pid = tgid;
		hdr->h.load_id = load_id;
		hdr->ktime_ns = start;
		hdr->cgroup_id = bpf_get_current_cgroup_id();
		hdr->pid = tgid;
		hdr->tid = tid;
		hdr->ppid = BPF_CORE_READ(task, real_parent, tgid);
		hdr->uid = (__u32)uid_gid;
		hdr->gid = uid_gid >> 32;
		hdr->attr_size = size;
		hdr->prog_type = ap->prog_type;
		hdr->insn_cnt = ap->insn_cnt;
		hdr->prog_flags = ap->prog_flags;
		hdr->expected_attach_type = ap->expected_attach_type;
		hdr->attach_btf_id = ap->attach_btf_id;
		hdr->attach_btf_obj_fd = ap->attach_btf_obj_fd;
		hdr->kern_version = ap->kern_version;
		hdr->chunks = rate_limited ? 0 : chunks;
		hdr->insns_ptr = ap->insns;
		hdr->exe_ino = f->exe_ino;
		hdr->exe_dev = f->exe_dev;
		hdr->rate_limited = rate_limited;
		hdr->signature = ap->signature;
		hdr->signature_size = ap->signature_size;
		hdr->keyring_id = ap->keyring_id;
		hdr->prog_token_fd = ap->prog_token_fd;
		hdr->sig_verified = !!(f->prov & RULES_PROV_VERIFIED);
		hdr->token_dev = 0;
		hdr->token_ino = 0;
		hdr->before_hook = enforcer == ENF_REPORT;
		hdr->_pad_bh = 0;
		if (ap->prog_flags & BPF_F_TOKEN_FD_FLAG) {
			struct file *tf = current_fd_file(ap->prog_token_fd);
			if (tf) {
				hdr->token_ino = BPF_CORE_READ(tf, f_inode, i_ino);
				hdr->token_dev = BPF_CORE_READ(tf, f_inode, i_sb, s_dev);
			}
		}
		__builtin_memcpy(hdr->comm, f->comm, SENTRY_COMM_LEN);
		__builtin_memcpy(hdr->name, ap->prog_name, SENTRY_NAME_LEN);
		__builtin_memset(hdr->license, 0, SENTRY_LICENSE_LEN);
#ifndef SENTRY_NO_LOOP
		/* An inner load's license is kernel memory. Asked afresh, not
		 * passed down: a flag held across the judge, once the verifier
		 * knows its value on one path, doubles the paths it explores. */
		if (ap->license && kernel != SRC_USER && inner_load_uattr())
			bpf_probe_read_kernel_str(hdr->license, SENTRY_LICENSE_LEN, (const void *)ap->license);
		else
#endif
		if (ap->license)
			bpf_probe_read_user_str(hdr->license, SENTRY_LICENSE_LEN, (const void *)ap->license);
		hdr->exe_truncated = 1;
		hdr->unprivileged = unprivileged;
		struct sentry_chunk *pbuf = scratch_chunk(kernel);
		if (pbuf && exe) {
			struct vfsmount *vm = BPF_CORE_READ(exe, f_path.mnt);
			struct dentry *dentry = BPF_CORE_READ(exe, f_path.dentry);
			struct mount *mnt = (struct mount *)((void *)vm - bpf_core_field_offset(struct mount, mnt));
#ifdef SENTRY_NO_LOOP
			ls->pc.dentry = dentry;
			ls->pc.mnt = mnt;
			ls->pc.buf = NULL;
			ls->pc.pos = 0;
			ls->pc.done = 0;
#pragma clang loop unroll(disable)
			for (__u32 i = 0; i < SENTRY_EXE_DEPTH; i++)
				if (sentry_path_step(i))
					break;
			__u32 pos = ls->pc.pos;
			hdr->exe_truncated = !ls->pc.done;
#else
			struct path_ctx pc = {.dentry = dentry, .mnt = mnt, .buf = pbuf->data};
			bpf_loop(SENTRY_EXE_DEPTH, path_step, &pc, 0);
			__u32 pos = pc.pos;
			hdr->exe_truncated = !pc.done;
#endif
			pbuf->data[pos & (SENTRY_EXE_LEN - 1)] = 0;
			bpf_probe_read_kernel(hdr->exe, SENTRY_EXE_LEN, pbuf->data);
		} else {
			hdr->exe[0] = 0;
		}
		bpf_ringbuf_submit(hdr, BPF_RB_NO_WAKEUP);
	} else {
		count_loss(SENTRY_LOSS_HEADER_RESERVE);
	}

	struct rules_result *res;
#ifdef SENTRY_NO_LOOP
	struct walk_ctx *wc = &ls->wc;
	__builtin_memset(wc, 0, sizeof(*wc));
	wc->load_id = load_id;
	wc->insns = insns_addr;
	wc->pid = tgid;
	wc->total = total;
	wc->emit = hdr != NULL && !rate_limited;
	wc->first_exit = NO_SLOT;
	wc->main_end = NO_SLOT;
	if (insns_addr) {
#pragma clang loop unroll(disable)
		for (__u32 k = 0; k < SENTRY_MAX_CHUNKS; k++) {
			if (k >= chunks)
				break;
			sentry_walk_user(k);
		}
	}
	/* Taken after the walk, which can take long; held only to evaluate. */
	__u32 tidx = 0;
	struct rules_table *table = acquire_table(cfg, &tidx);
	if (!table)
		return unjudged(cfg, SENTRY_LOSS_NO_TABLE, enforcer, ap->insns);
	ls->table_idx = tidx;
	rules_result_reset(&ls->res);
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < RULES_MAX; i++)
		if (sentry_rule_step(i))
			break;
	__u32 generation = table->generation;
	release_table(tidx);
	res = &ls->res;
#else
	res = scratch_result(kernel);
	if (!res)
		return unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, enforcer, ap->insns);
	struct walk_ctx *wc = scratch_walk(kernel);
	if (!wc)
		return unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, enforcer, ap->insns);
	__builtin_memset(wc, 0, sizeof(*wc));
	wc->load_id = load_id;
	wc->insns = insns_addr;
	wc->pid = tgid;
	wc->total = total;
	wc->emit = hdr != NULL && !rate_limited;
	wc->first_exit = NO_SLOT;
	wc->main_end = NO_SLOT;
	struct walk_loop wl = {.wc = wc};
	if (insns_addr && chunks)
		bpf_loop(chunks, kernel == SRC_KERNEL ? walk_chunk_kernel :
				 kernel == SRC_USER_SLEEPABLE ? walk_chunk_sleepable : walk_chunk_user,
			 &wl, 0);
	struct group_scratch *gs = group_scratch_for(kernel);
	struct group_pending *gp = group_gather(f, gs, task, tid, ap->fd_array, ap->fd_array_cnt, &wc->read_errors,
						 &wc->refs_over, kernel);
	/* Taken after the walk and the gathering, which can sleep (lsm.s); held only to evaluate. */
	__u32 tidx = 0;
	struct rules_table *table = acquire_table(cfg, &tidx);
	if (!table)
		return unjudged(cfg, SENTRY_LOSS_NO_TABLE, enforcer, ap->insns);
	rules_evaluate(table, f, res);
	group_judge(table, f, res, gs, gp);
	__u32 generation = table->generation;
	release_table(tidx);
#endif
	/* Lock mode: not on the allowlist, blocked (rules still apply). */
	allowlist_judge(cfg, f, wc, res, insn_cnt);
	__u32 verdict = res->action;
	__s32 rule_index = res->action == RULES_ACTION_BLOCK ? res->first_block : res->first;
	if (unprivileged) { /* the kernel refuses it: nothing to enforce */
		verdict = SENTRY_VERDICT_ALLOW;
		rule_index = -1;
	}
	if (wc->read_errors && cfg->block_unreadable && verdict != SENTRY_VERDICT_BLOCK) {
		verdict = SENTRY_VERDICT_BLOCK;
		rule_index = -1;
	}

	__u32 action = SENTRY_ACT_NONE;
	if (verdict == SENTRY_VERDICT_BLOCK)
		action = enforce(cfg, tgid, task, enforcer, ap->insns, wc);

	struct sentry_verdict_rec *v = bpf_ringbuf_reserve(&events, sizeof(*v), 0);
	if (v) {
		v->h.kind = SENTRY_REC_VERDICT;
		v->h.pid = tgid;
		v->h.load_id = load_id;
		v->verdict = verdict;
		v->action = action;
		v->rule_index = rule_index;
		v->generation = generation;
		v->matched = res->matched[0];
		__builtin_memcpy(v->matched_more, &res->matched[1], sizeof(v->matched_more));
		v->error = 0;
		v->insn_hash = f->insn_hash;
		v->insns_read = wc->insns_read;
		v->read_errors = wc->read_errors;
		v->chunks_lost = wc->chunks_lost;
		v->calls_helper = wc->calls_helper;
		v->calls_sub = wc->calls_sub;
		v->calls_kfunc = wc->calls_kfunc;
		v->helper_other = f->helper_other;
		bpf_probe_read_kernel(v->helper_count, sizeof(v->helper_count), f->helper_cnt);
		v->walk_ns = bpf_ktime_get_ns() - start;
		v->lock = wc->lock;
		v->refs_over = wc->refs_over;
		/* Chunks left out: wake the reader now, while the loader waits
		 * for the verifier, so that it reads them from the loader's
		 * memory before the loader returns (sensor/recover.go). */
		bpf_ringbuf_submit(v, wc->chunks_lost ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	} else {
		count_loss(SENTRY_LOSS_VERDICT_RESERVE);
	}

	struct inflight in = {
		.load_id = load_id,
		.killed = action == SENTRY_ACT_KILLED,
		.denied = action == SENTRY_ACT_DENIED,
	};
	if (bpf_map_update_elem(&inflight, &tid, &in, BPF_ANY))
		count_loss(SENTRY_LOSS_INFLIGHT_FULL);
	return action;
}

#include "include/selfprotect.h"
#include "attach.h"

/* A BPF_TOKEN_CREATE: remembered for its exit, which reports it. */
static __always_inline void token_enter(__u64 uattr, __u64 size)
{
	__u32 a[2] = {}; /* token_create: flags, bpffs_fd */
	if (size >= sizeof(a))
		bpf_probe_read_user(a, sizeof(a), (const void *)uattr);
	struct inflight in = {
		.load_id = next_load_id(bpf_get_smp_processor_id()),
		.token = 1,
		.bpffs_fd = a[1],
	};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&inflight, &tid, &in, BPF_ANY))
		count_loss(SENTRY_LOSS_INFLIGHT_FULL);
}

static __always_inline int token_exit(const struct inflight *in, __s64 ret)
{
	struct sentry_token_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_loss(SENTRY_LOSS_EXIT_RESERVE);
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	bpf_probe_read_kernel(r, sizeof(*r), &zero_token);
	r->h.kind = SENTRY_REC_TOKEN;
	r->h.pid = pid_tgid >> 32;
	r->h.load_id = in->load_id;
	r->ret = ret;
	r->pid = pid_tgid >> 32;
	r->tid = (__u32)pid_tgid;
	r->uid = (__u32)bpf_get_current_uid_gid();
	r->bpffs_fd = in->bpffs_fd;
	r->ktime_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe) {
		r->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
		r->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}
	if (ret >= 0 && bpf_core_type_exists(struct bpf_token)) {
		struct file *file = current_fd_file(ret);
		if (file) {
			struct bpf_token *tok = BPF_CORE_READ(file, private_data);
			r->token_ino = BPF_CORE_READ(file, f_inode, i_ino);
			r->token_dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
			if (tok) {
				r->token_addr = (__u64)tok;
				r->userns = BPF_CORE_READ(tok, userns, ns.inum);
				r->allowed_cmds = BPF_CORE_READ(tok, allowed_cmds);
				r->allowed_maps = BPF_CORE_READ(tok, allowed_maps);
				r->allowed_progs = BPF_CORE_READ(tok, allowed_progs);
				r->allowed_attachs = BPF_CORE_READ(tok, allowed_attachs);
				r->resolved = 1;
			}
		}
	}
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* The loader's BPF_PROG_LOAD attr, copied into the per-CPU scratch; NULL
 * without scratch. */
static __always_inline struct prog_load_attr *read_user_attr(__u64 uattr, __u64 size)
{
	__u32 zero = 0;
	struct prog_load_attr *ap = bpf_map_lookup_elem(&attr_scratch, &zero);
	if (!ap)
		return NULL;
	__builtin_memset(ap, 0, sizeof(*ap));
	/* 64-bit: clamping a truncated copy loses the bound for the verifier */
	__u64 sz = size;
	if (sz > sizeof(*ap))
		sz = sizeof(*ap);
	if (sz == 0 || bpf_probe_read_user(ap, sz, (const void *)uattr)) {
		/* The newer fields (from core_relo_cnt: tokens, signatures) may
		 * lie on a page the loader has not faulted in (the kernel will,
		 * after this hook): the fields every kernel has, alone. */
		const __u64 base = offsetof(struct prog_load_attr, core_relo_cnt);
		__builtin_memset(ap, 0, sizeof(*ap));
		if (sz <= base || bpf_probe_read_user(ap, base, (const void *)uattr)) {
			count_loss(SENTRY_LOSS_ATTR_READ);
			__builtin_memset(ap, 0, sizeof(*ap));
		}
	}
	return ap;
}

static __always_inline int on_enter(__u64 cmd, __u64 uattr, __u64 size, const int enforcer)
{
	if (cmd == CMD_TOKEN_CREATE) {
		token_enter(uattr, size);
		return 0;
	}
	if (cmd != BPF_PROG_LOAD) {
		/* On LSM kernels the bpf hooks guard (sentry_lsm_guard). */
		if (enforcer != ENF_DENY)
			guard_syscall(cmd, uattr, size, enforcer);
		return attach_enter(cmd, uattr, size, enforcer);
	}
	struct prog_load_attr *ap = read_user_attr(uattr, size);
	if (!ap) {
		__u32 zero = 0;
		struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
		unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, enforcer, 0);
		return 0;
	}
	/* attach_prog_fd naming one of the sentry's programs (fentry, fexit,
	 * freplace on it): killed here, before the kernel looks at it. On LSM
	 * kernels sentry_lsm_guard refuses it. */
	if (enforcer != ENF_DENY)
		guard_prog_load(ap->attach_btf_obj_fd, enforcer);
	judge(ap, size, ap->insns, ap->insn_cnt, SRC_USER, enforcer);
	return 0;
}


/*
 * Learns the agent's start time: user space writes its tgid with start 0,
 * then makes any bpf() call, whose exit lands here; /proc only offers the
 * start rounded to 10 ms ticks, which a process created in the same tick
 * would share. The pid is the agent's while it runs, so the value read is
 * its own.
 */
static __always_inline void learn_self(__u32 tgid)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->self_tgid || cfg->self_tgid != tgid || cfg->self_start_ns)
		return;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 start = BPF_CORE_READ(task, group_leader, start_boottime);
	cfg->self_start_ns = start;
	/* the staged copy too, so that the agent's read-back agrees */
	struct sentry_config *st = bpf_map_lookup_elem(&config_staged, &zero);
	if (st && st->self_tgid == tgid)
		st->self_start_ns = start;
	/* and where the agent is, for the signal guards (its parent) */
	__u64 leader = (__u64)BPF_CORE_READ(task, group_leader);
	bpf_map_update_elem(&self_task, &zero, &leader, BPF_ANY);
}

#define SIGKILL_BIT (1UL << (SIGKILL - 1))

/* Whether a SIGKILL is pending on the current task: sent to the thread
 * group (bpf_send_signal, kill) it sits in the shared set, and the kernel
 * also marks each thread's own set when it finds the signal fatal. */
static __always_inline __u32 sigkill_pending(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned long own = BPF_CORE_READ(task, pending.signal.sig[0]);
	unsigned long shared = BPF_CORE_READ(task, signal, shared_pending.signal.sig[0]);
	return ((own | shared) & SIGKILL_BIT) != 0;
}

#ifndef SENTRY_NO_LOOP
/*
 * On the lsm/bpf_prog_load hook: a BPF_PROG_LOAD that left no inflight
 * entry was refused by the kernel before the hook ran (or was the agent's
 * own). Judged now from the loader's attr, still in its memory, for the
 * report only (ENF_REPORT: the load has already failed); the exit record
 * below then carries its errno. NULL: nothing to report.
 */
static __always_inline struct inflight *refused_before_hook(__u32 tid, __s64 ret)
{
	struct load_attempt *att = bpf_map_lookup_elem(&load_attempts, &tid);
	if (!att)
		return NULL;
	struct load_attempt a = *att;
	bpf_map_delete_elem(&load_attempts, &tid);
	if (ret >= 0)
		return NULL;
	struct prog_load_attr *ap = read_user_attr(a.uattr, a.size);
	if (!ap)
		return NULL;
	judge(ap, a.size, ap->insns, ap->insn_cnt, SRC_USER, ENF_REPORT);
	return bpf_map_lookup_elem(&inflight, &tid);
}
#endif


/*
 * The submit flag of a load's exit record, reserved but not yet submitted:
 * at most one wakeup per load, when it is complete (the records before it
 * go without one), and none while an earlier forced wakeup is still to be
 * acted on. Each wakeup is an irq_work (a self-IPI: a trap to the
 * hypervisor in a VM) paid by the loader, and wakes the agent once per
 * load. The reader sleeps only after consuming everything (it spins on a
 * reserved record), and a wakeup was forced only with an unread record
 * after the consumer position it saw; so while that position has not
 * moved, the reader has yet to read that record and reads on to this one,
 * which is reserved. Forced, because the default only wakes a reader that
 * has consumed everything before this record, and the records before it
 * were submitted without a wakeup.
 */
static __always_inline __u64 exit_wakeup(void)
{
	__u32 zero = 0, one = 1;
	__u64 *woke = bpf_map_lookup_elem(&ring_wake, &zero);
	if (!woke)
		return BPF_RB_FORCE_WAKEUP;
	__u64 cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
	if (*woke == cons + 1)
		return BPF_RB_NO_WAKEUP;
	*woke = cons + 1;
	__u64 *forced = bpf_map_lookup_elem(&ring_wake, &one);
	if (forced)
		__sync_fetch_and_add(forced, 1);
	return BPF_RB_FORCE_WAKEUP;
}

#ifndef SENTRY_NO_LOOP
/*
 * The loader program of an inner load: the syscall program behind the
 * outer attr's test.prog_fd in the caller. Read from the caller's memory
 * after the kernel's own copy: another thread of the caller can rewrite
 * the fd (or dup2 another program over it) meanwhile, so this names the
 * loader as well as the caller lets it; what is loaded is judged either
 * way. A program that is not a syscall program is not named (id 0).
 */
static __always_inline void inner_loader(__u64 uattr, struct inflight *in)
{
	__u32 fd = 0;
	in->loader_prog_id = 0;
	__builtin_memset(in->loader_tag, 0, sizeof(in->loader_tag));
	if (bpf_probe_read_user(&fd, sizeof(fd), (const void *)(uattr & ~(1ULL << 63)))) /* test.prog_fd: offset 0 */
		return;
	struct file *file = current_fd_file(fd);
	if (!file)
		return;
	struct bpf_prog *prog = BPF_CORE_READ(file, private_data);
	if (!prog || BPF_CORE_READ(prog, type) != PROG_TYPE_SYSCALL)
		return;
	in->loader_prog_id = BPF_CORE_READ(prog, aux, id);
	bpf_probe_read_kernel(in->loader_tag, sizeof(in->loader_tag), &prog->tag);
}

/* The exit record of an inner load: ret 0 and the new program's id and tag
 * (loaded), -errno (denied here), or flags SENTRY_INNER_FAILED. */
static __always_inline void inner_exit(const struct inflight *in, __s64 ret, __u32 flags, struct bpf_prog *prog)
{
	struct sentry_exit *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(SENTRY_LOSS_EXIT_RESERVE);
		return;
	}
	e->h.kind = SENTRY_REC_EXIT;
	e->h.pid = bpf_get_current_pid_tgid() >> 32;
	e->h.load_id = in->load_id;
	e->ret = ret;
	e->killed = 0;
	e->prog_id = 0;
	__builtin_memset(e->tag, 0, sizeof(e->tag));
	if (prog) {
		e->prog_id = BPF_CORE_READ(prog, aux, id);
		bpf_probe_read_kernel(e->tag, sizeof(e->tag), &prog->tag);
	}
	e->ktime_ns = bpf_ktime_get_ns();
	e->inner = SENTRY_INNER | flags;
	e->sigkill = 0;
	e->_pad = 0;
	e->loader_prog_id = in->loader_prog_id;
	__builtin_memcpy(e->loader_tag, in->loader_tag, sizeof(e->loader_tag));
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

/* Before judging an inner load: an earlier inner load of this run still
 * waiting for its fd never got one (the verifier or another LSM refused
 * it after the judgement): reported failed, errno unknown. */
static __always_inline void inner_flush(__u32 tid)
{
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (!in || !in->inner)
		return;
	/* From the map value, then deleted: a copy on the stack would not fit
	 * beside the judge's frame (512 bytes combined). */
	inner_exit(in, 0, SENTRY_INNER_FAILED, NULL);
	bpf_map_delete_elem(&inflight, &tid);
}

/* After judging an inner load: the judge's inflight record is marked inner
 * and named with its loader; a denial is its outcome, reported now (the
 * load fails with this EPERM; the outer call's return is not the load's). */
static __always_inline void inner_judged(__u32 tid, __u64 uattr, __u32 action)
{
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (!in)
		return;
	in->inner = 1;
	inner_loader(uattr, in);
	if (action != SENTRY_ACT_DENIED)
		return;
	inner_exit(in, -EPERM, 0, NULL);
	bpf_map_delete_elem(&inflight, &tid);
}

/* Around a judgement on an LSM hook: before, an earlier inner load of the
 * thread still waiting is flushed (judge overwrites the thread's inflight
 * record); after, an inner load is marked and, if denied, reported. Whether
 * the load is inner is asked afresh on each side, never held across the
 * judge (see the license read in judge). */
static __always_inline void inner_before(void)
{
	inner_flush((__u32)bpf_get_current_pid_tgid());
}

static __always_inline __u32 inner_after(__u32 act)
{
	__u64 outer = inner_load_uattr();
	if (outer)
		inner_judged((__u32)bpf_get_current_pid_tgid(), outer, act);
	return act;
}

/*
 * security_bpf_prog: the kernel is about to give a program an fd
 * (bpf_prog_new_fd), after bpf_prog_load allocated its id. For an inner
 * load judged and waiting, this is its success: reported with the id and
 * tag. Nothing else gets a program fd on that thread between the
 * judgement and the load's own fd. (If installing the fd then fails, the
 * program goes again; reported loaded, it is then absent from the ids.)
 */
SEC("lsm/bpf_prog")
int BPF_PROG(sentry_lsm_prog_fd, struct bpf_prog *prog)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (!in || !in->inner)
		return 0;
	inner_exit(in, 0, 0, prog);
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}
#endif

static __always_inline int on_exit(__s64 ret, const int lsm)
{
	commit_staged(ret);
	learn_self(bpf_get_current_pid_tgid() >> 32);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	group_on_exit(tid, ret);
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
#ifndef SENTRY_NO_LOOP
	if (lsm) {
		if (!in)
			in = refused_before_hook(tid, ret);
		else
			bpf_map_delete_elem(&load_attempts, &tid); /* the hook judged it */
	}
#endif
	if (!in) /* not a BPF_PROG_LOAD (the exit tracepoint does not say the cmd) */
		return attach_exit(ret, NULL);
	struct inflight copy = *in;
	bpf_map_delete_elem(&inflight, &tid);
	if (copy.token)
		return token_exit(&copy, ret);
#ifndef SENTRY_NO_LOOP
	if (copy.inner) {
		/* An inner load judged and never given an fd: it failed after
		 * the judgement. ret is the outer call's, not its own. */
		inner_exit(&copy, 0, SENTRY_INNER_FAILED, NULL);
		return attach_exit(ret, NULL);
	}
#endif
	group_load_exit(tid, ret);

	struct sentry_exit *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(SENTRY_LOSS_EXIT_RESERVE);
		return 0;
	}
	e->h.kind = SENTRY_REC_EXIT;
	e->h.pid = bpf_get_current_pid_tgid() >> 32;
	e->h.load_id = copy.load_id;
	e->ret = ret;
	e->killed = copy.killed;
	e->sigkill = sigkill_pending();
	e->_pad = 0;
	e->inner = 0;
	e->loader_prog_id = 0;
	__builtin_memset(e->loader_tag, 0, sizeof(e->loader_tag));
	e->prog_id = 0;
	__builtin_memset(e->tag, 0, sizeof(e->tag));
	e->ktime_ns = bpf_ktime_get_ns();
	if (ret >= 0) {
		/* The loader may be dead before user space could ask about the
		 * fd, so resolve it here: files->fdt->fd[ret]->private_data is
		 * the struct bpf_prog the kernel just installed. */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		unsigned int max = BPF_CORE_READ(fdt, max_fds);
		if ((__u64)ret < max) {
			struct file **fds = BPF_CORE_READ(fdt, fd);
			struct file *file = NULL;
			bpf_probe_read_kernel(&file, sizeof(file), fds + ret);
			if (file) {
				struct bpf_prog *prog = BPF_CORE_READ(file, private_data);
				if (prog) {
					e->prog_id = BPF_CORE_READ(prog, aux, id);
					bpf_probe_read_kernel(e->tag, sizeof(e->tag), &prog->tag);
				}
			}
		}
	}
	bpf_ringbuf_submit(e, exit_wakeup());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int sentry_enter_tp(struct sys_enter_bpf_ctx *ctx)
{
	return on_enter(ctx->cmd, ctx->uattr, ctx->size, ENF_KILL);
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int sentry_enter_tp_corrupt(struct sys_enter_bpf_ctx *ctx)
{
	return on_enter(ctx->cmd, ctx->uattr, ctx->size, ENF_CORRUPT);
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int sentry_exit_tp(struct sys_exit_bpf_ctx *ctx)
{
	return on_exit(ctx->ret, 0);
}

#ifndef SENTRY_NO_LOOP
/* The exit next to lsm/bpf_prog_load: also reports the loads the kernel
 * refused before that hook (refused_before_hook). */
SEC("tracepoint/syscalls/sys_exit_bpf")
int sentry_exit_tp_lsm(struct sys_exit_bpf_ctx *ctx)
{
	return on_exit(ctx->ret, 1);
}
#endif

/* tp_btf sees every syscall, 32-bit ones included: bpf is 321 in a 64-bit
 * call and 357 in a 32-bit one, with its arguments in ebx, ecx, edx. */
static __always_inline int btf_enter(struct pt_regs *regs, long id, const int enforcer)
{
	if (id == NR_BPF_X86_64 && !in_compat_syscall())
		return on_enter(regs->di, regs->si, regs->dx, enforcer);
	if (id == NR_BPF_IA32 && in_compat_syscall())
		return on_enter((__u32)regs->bx, (__u32)regs->cx, (__u32)regs->dx, enforcer);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sentry_enter_btf, struct pt_regs *regs, long id)
{
	return btf_enter(regs, id, ENF_KILL);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sentry_enter_btf_corrupt, struct pt_regs *regs, long id)
{
	return btf_enter(regs, id, ENF_CORRUPT);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sentry_exit_btf, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	if (nr != NR_BPF_X86_64 && nr != NR_BPF_IA32)
		return 0;
	if ((nr == NR_BPF_IA32) != !!in_compat_syscall())
		return 0;
	return on_exit(ret, 0);
}

#ifndef SENTRY_NO_LOOP
SEC("tp_btf/sys_exit")
int BPF_PROG(sentry_exit_btf_lsm, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	if (nr != NR_BPF_X86_64 && nr != NR_BPF_IA32)
		return 0;
	if ((nr == NR_BPF_IA32) != !!in_compat_syscall())
		return 0;
	return on_exit(ret, 1);
}
#endif

/*
 * Runs inside bpf_prog_load after the kernel copied attr and instructions
 * and before the verifier: what is judged is exactly what would be
 * verified and run. attr is the kernel's copy; the name comes from it, the
 * instructions from prog (prog->len of them).
 */
#ifndef SENTRY_NO_LOOP
SEC("lsm/bpf_prog_load")
int BPF_PROG(sentry_lsm_prog_load, struct bpf_prog *prog, union bpf_attr *kattr)
{
	/* The attr in the per-CPU scratch (this hook does not sleep), not on
	 * the stack: with the walk's callbacks and the inner-load bookkeeping
	 * the frames would pass the verifier's 512 bytes. */
	__u32 zero = 0;
	struct prog_load_attr *ap = bpf_map_lookup_elem(&attr_scratch, &zero);
	if (!ap) {
		struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
		volatile long ret = 0; /* see sentry_lsm_bpf */
		if (unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, ENF_DENY, 0) == SENTRY_ACT_DENIED)
			ret = -EPERM;
		return ret;
	}
	if (bpf_probe_read_kernel(ap, sizeof(*ap), kattr)) /* zeroes it on failure */
		count_loss(SENTRY_LOSS_ATTR_READ);
	clamp_kattr(ap);
	__u32 len = BPF_CORE_READ(prog, len);
	__u64 insns = (__u64)(void *)prog->insnsi;
	inner_before();
	__u32 act = inner_after(judge(ap, sizeof(*ap), insns, len, SRC_KERNEL, ENF_DENY));
	if (act == SENTRY_ACT_DENIED)
		return -EPERM;
	return 0;
}
#endif

/*
 * With the LSM hooks there is no sys_enter program to see BPF_TOKEN_CREATE:
 * this hook (6.9+, runs inside it with the kernel's attr) remembers the
 * call, and the sys_exit program reports it with the new token.
 */
#ifndef SENTRY_NO_LOOP
SEC("lsm/bpf_token_create")
int BPF_PROG(sentry_lsm_token_create, struct bpf_token *token, union bpf_attr *kattr)
{
	__u32 a[2] = {}; /* token_create: flags, bpffs_fd */
	bpf_probe_read_kernel(a, sizeof(a), kattr);
	struct inflight in = {
		.load_id = next_load_id(bpf_get_smp_processor_id()),
		.token = 1,
		.bpffs_fd = a[1],
	};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&inflight, &tid, &in, BPF_ANY))
		count_loss(SENTRY_LOSS_INFLIGHT_FULL);
	return 0;
}
#endif

/*
 * The seed's hook: a kprobe on the bpf syscall, for kernels with kprobes.
 * With syscall wrappers (x86-64 since 4.17) __x64_sys_bpf's only argument
 * is the user's pt_regs, read here; the exit is seen by a sys_exit program
 * as with the LSM hook.
 */
SEC("kprobe/__x64_sys_bpf")
int sentry_enter_kprobe(struct pt_regs *ctx)
{
	struct pt_regs *uregs = (struct pt_regs *)ctx->di;
	__u64 cmd = BPF_CORE_READ(uregs, di);
	__u64 uattr = BPF_CORE_READ(uregs, si);
	__u64 size = BPF_CORE_READ(uregs, dx);
	return on_enter(cmd, uattr, size, ENF_KILL);
}

/*
 * 32-bit processes call bpf() through __ia32_sys_bpf, for which the
 * syscalls:sys_{enter,exit}_bpf tracepoints do not fire. These two cover
 * them next to a tracepoint or kprobe hook (enter and exit) and next to an
 * LSM hook (exit only: the LSM hooks see 32-bit loads). Arguments are in
 * the user's ebx, ecx, edx.
 */
static __always_inline int ia32_enter(struct pt_regs *ctx, const int enforcer)
{
	struct pt_regs *uregs = (struct pt_regs *)ctx->di;
	__u32 cmd = BPF_CORE_READ(uregs, bx);
	__u32 uattr = BPF_CORE_READ(uregs, cx);
	__u32 size = BPF_CORE_READ(uregs, dx);
	return on_enter(cmd, uattr, size, enforcer);
}

SEC("kprobe/__ia32_sys_bpf")
int sentry_enter_kprobe_ia32(struct pt_regs *ctx)
{
	return ia32_enter(ctx, ENF_KILL);
}

SEC("kretprobe/__ia32_sys_bpf")
int sentry_exit_kretprobe_ia32(struct pt_regs *ctx)
{
	return on_exit((long)ctx->ax, 0);
}

/* For a target taking the syscall's arguments directly (__do_sys_bpf,
 * __se_sys_bpf where they are not inlined). */
SEC("kprobe/__do_sys_bpf")
int sentry_enter_kprobe_direct(struct pt_regs *ctx)
{
	return on_enter(ctx->di, ctx->si, ctx->dx, ENF_KILL);
}

/*
 * Older kernels (BPF LSM, no bpf_prog_load hook): security_bpf runs for
 * every bpf() command with the kernel's copy of attr, before
 * bpf_prog_load copies the instructions, so they are copied here from the
 * loader's memory (sleepable: bpf_copy_from_user can fault pages in). The
 * loader can change them between this copy and the kernel's: user space
 * compares the loaded program's tag with the judged copy afterwards.
 */
#ifndef SENTRY_NO_LOOP
SEC("lsm.s/bpf")
int BPF_PROG(sentry_lsm_bpf, int cmd, union bpf_attr *kattr, unsigned int size)
{
	if (cmd != BPF_PROG_LOAD)
		return 0;
	/* The attr is copied into the task's scratch, not onto the stack: with
	 * the walk's callbacks this hook's frames are at the verifier's 512
	 * bytes. No scratch: unjudged, like the judge's own lookups. */
	struct task_scratch *ts = own_scratch();
	if (!ts) {
		__u32 zero = 0;
		struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
		/* Through a volatile: clang would otherwise negate the comparison's
		 * 0/1, a value whose range the 6.12 verifier does not follow, and
		 * it must see R0 within [-4095, 0] at an LSM program's exit. */
		volatile long ret = 0; /* 64-bit: an int would come back zero-extended */
		if (unjudged(cfg, SENTRY_LOSS_NO_SCRATCH, ENF_DENY, 0) == SENTRY_ACT_DENIED)
			ret = -EPERM;
		return ret;
	}
	struct prog_load_attr *ap = &ts->attr;
	if (bpf_probe_read_kernel(ap, sizeof(*ap), kattr)) /* zeroes it on failure */
		count_loss(SENTRY_LOSS_ATTR_READ);
	clamp_kattr(ap);
	/* An inner load's instructions are kernel memory (see task_scratch) */
	ts->src_kernel = inner_load_uattr() != 0;
	inner_before();
	__u32 act = inner_after(judge(ap, size, ap->insns, ap->insn_cnt, SRC_USER_SLEEPABLE, ENF_DENY));
	if (act == SENTRY_ACT_DENIED)
		return -EPERM;
	return 0;
}
#endif

#ifdef SENTRY_NO_LOOP
/*
 * The BPF LSM without bpf_loop (5.10 booted with lsm=...,bpf): 5.10 lets a
 * sleepable program use neither the ring buffer nor per-CPU maps, so the
 * lsm.s/bpf program cannot judge there. The load is judged by the
 * sys_enter_bpf tracepoint instead, which runs first in the same thread,
 * and this hook (security_bpf, before the kernel copies the instructions)
 * refuses what it blocked: EPERM, never verified, no prog id.
 */
SEC("tracepoint/syscalls/sys_enter_bpf")
int sentry_enter_tp_gate(struct sys_enter_bpf_ctx *ctx)
{
	return on_enter(ctx->cmd, ctx->uattr, ctx->size, ENF_DENY);
}

/* The gate's judge on tp_btf: where the tracepoint's perf-event link
 * cannot be pinned (before 5.15) and the sensor is pinned. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sentry_enter_btf_gate, struct pt_regs *regs, long id)
{
	return btf_enter(regs, id, ENF_DENY);
}

/* The gate's judge for 32-bit loaders, which the tracepoint misses. */
SEC("kprobe/__ia32_sys_bpf")
int sentry_enter_kprobe_ia32_gate(struct pt_regs *ctx)
{
	return ia32_enter(ctx, ENF_DENY);
}

SEC("lsm/bpf")
int BPF_PROG(sentry_lsm_bpf_gate, int cmd, union bpf_attr *kattr, unsigned int size)
{
	if (cmd != BPF_PROG_LOAD)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight *in = bpf_map_lookup_elem(&inflight, &tid);
	if (in)
		return in->denied ? -EPERM : 0;
	/* The judge runs first for every load and always records it (LRU):
	 * no record means it did not run (detached) or could not record.
	 * Unjudged, so decided by on_error; the agent's own loads pass. */
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	count_loss(SENTRY_LOSS_GATE_UNJUDGED);
	if (!cfg)
		return -EPERM;
	if (cfg->mode != SENTRY_MODE_ENFORCE || cfg->on_error != SENTRY_ON_ERROR_BLOCK ||
	    is_self(cfg, bpf_get_current_pid_tgid() >> 32, (struct task_struct *)bpf_get_current_task()))
		return 0;
	return -EPERM;
}
#endif

/* Pre-faulting the ring buffer. On some hosts (virtio_balloon free-page
 * reporting) the first kernel write to each page of a fresh ring costs
 * ~9 us, which would land on the first pass of real loads through the ring.
 * User space runs this once at start-up (BPF_PROG_RUN) in batches: each
 * iteration reserves one record that is exactly one page long (8-byte
 * header included), so every header write touches the next page, and
 * discards it at once; the reader skips discarded records and frees the
 * space. Best-effort: a kernel without syscall programs simply skips it. */
#define PREFAULT_PAGE 4096
#define RINGBUF_HDR 8

struct sentry_prefault_ctx {
	__u32 pages;	/* in: records to reserve in this run */
	__u32 done;	/* out: records reserved before the ring filled */
};

/* Records per run without bpf_loop; user space runs again for the rest. */
#define PREFAULT_RUN_MAX 1024

#ifdef SENTRY_NO_LOOP
/* One record, in a global function so the verifier checks it once;
 * left is the number of records still to reserve in this run. */
__noinline int sentry_prefault_page(__u32 left)
{
	void *r = bpf_ringbuf_reserve(&events, PREFAULT_PAGE - RINGBUF_HDR, 0);

	if (!r)
		return 1;
	bpf_ringbuf_discard(r, left == 1 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}
#else
static long prefault_one(__u64 i, void *arg)
{
	struct sentry_prefault_ctx *c = arg;
	void *r = bpf_ringbuf_reserve(&events, PREFAULT_PAGE - RINGBUF_HDR, 0);

	if (!r)
		return 1;
	c->done++;
	/* Wake the reader only on the batch's last record so it frees the
	 * space once, not 16k times. */
	bpf_ringbuf_discard(r, c->done == c->pages ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}
#endif

SEC("syscall")
int sentry_prefault(struct sentry_prefault_ctx *ctx)
{
	struct sentry_prefault_ctx c = { .pages = ctx->pages };

#ifdef SENTRY_NO_LOOP
	__u32 pages = c.pages;
	if (pages > PREFAULT_RUN_MAX)
		pages = PREFAULT_RUN_MAX;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < PREFAULT_RUN_MAX; i++) {
		if (i >= pages || sentry_prefault_page(pages - i))
			break;
		c.done++;
	}
#else
	bpf_loop(c.pages, prefault_one, &c, 0);
#endif
	ctx->done = c.done;
	return 0;
}
