/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Attach monitoring, included by sensor.bpf.c after judge(): every way a
 * loaded program gets attached (bpf() LINK_CREATE, RAW_TRACEPOINT_OPEN,
 * PROG_ATTACH/DETACH, LINK_UPDATE/DETACH, and ioctl(PERF_EVENT_IOC_SET_BPF))
 * is reported at entry with what the kernel can say about its target
 * (program id, tracepoint id, perf event, BTF id, interface, cgroup inode,
 * names read from the caller), judged against the attach table (targets
 * user space resolved from block rules) and, for a block, stopped: SIGKILL
 * at entry on the syscall hooks, or -EPERM from an LSM gate (lsm/bpf,
 * lsm/file_ioctl) that runs after the tracepoint in the same thread. The
 * exit record gives the result and the new link's id.
 */

#include <linux/perf_event.h>
#include "include/attach.h"

#define BPF_ATTACH_TYPE_TRACE_RAW_TP 23
#define BPF_ATTACH_TYPE_LSM_MAC 27
#define BPF_ATTACH_TYPE_PERF_EVENT 41
#define BPF_ATTACH_TYPE_KPROBE_MULTI 42
#define BPF_ATTACH_TYPE_UPROBE_MULTI 48
#define BPF_ATTACH_TYPE_XDP 37
#define BPF_ATTACH_TYPE_FLOW_DISSECTOR 17
#define BPF_ATTACH_TYPE_TCX_INGRESS 46
#define BPF_ATTACH_TYPE_TCX_EGRESS 47
#define BPF_ATTACH_TYPE_NETKIT_PRIMARY 54
#define BPF_ATTACH_TYPE_NETKIT_PEER 55
#define BPF_ATTACH_TYPE_KPROBE_SESSION 56
#define BPF_ATTACH_TYPE_UPROBE_SESSION 57
#define PERF_IOC_SET_BPF 0x40042408 /* _IOW('$', 8, __u32) */
#define PERF_TYPE_DYNAMIC 6          /* PERF_TYPE_MAX: kprobe and uprobe PMUs are above */
#define PERF_TYPE_TP 2
#define SIGSTOP_NR 19

/* Commands of union bpf_attr this file reads (cmd numbers are uapi). */
#define CMD_PROG_ATTACH 8
#define CMD_PROG_DETACH 9
#define CMD_RAW_TRACEPOINT_OPEN 17
#define CMD_LINK_CREATE 28
#define CMD_LINK_UPDATE 29
#define CMD_LINK_DETACH 34
#define CMD_MAP_CREATE 0

/* cgroup attach types (enum bpf_attach_type below 64): their target fd is a cgroup. */
#define CGROUP_ATTACH_TYPES                                                                              \
	((1ULL << 0) | (1ULL << 1) | (1ULL << 2) | (1ULL << 3) | (1ULL << 6) | (1ULL << 8) | (1ULL << 9) |   \
	 (1ULL << 10) | (1ULL << 11) | (1ULL << 12) | (1ULL << 13) | (1ULL << 14) | (1ULL << 15) |          \
	 (1ULL << 18) | (1ULL << 19) | (1ULL << 20) | (1ULL << 21) | (1ULL << 22) | (1ULL << 29) |          \
	 (1ULL << 30) | (1ULL << 31) | (1ULL << 32) | (1ULL << 34) | (1ULL << 43) | (1ULL << 49) |          \
	 (1ULL << 50) | (1ULL << 51) | (1ULL << 52) | (1ULL << 53))

struct perf_event {
	struct perf_event_attr attr;
} __attribute__((preserve_access_index));
struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));
struct nsproxy {
	struct net *net_ns;
} __attribute__((preserve_access_index));
#include "include/kstructs.h"

/* Kernel addresses of file_operations, from /proc/kallsyms: an fd is
 * resolved as a program, link or perf event only when its f_op says so
 * (0: the f_op of the sensor's own, learnt at start-up, stands in:
 * attach_calibrated_fops; before that, trusted as asked). */
struct sentry_attach_cfg {
	__u64 prog_fops;
	__u64 link_fops;
	__u64 link_fops_poll;
	__u64 perf_fops;
	__u64 map_fops;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_attach_cfg);
} attach_cfg SEC(".maps");

/* Targets blocked by rule (user space resolves names to keys). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sentry_attach_key);
	__type(value, __s32); /* the attach rule's index */
} attach_block SEC(".maps");

struct attach_inflight {
	__u64 id;
	__u32 op;
	__u32 killed;
	__u32 denied;
	__u32 _pad;
};

/* Entry → exit pairing of one attach, by thread id (LRU: never full). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct attach_inflight);
} attach_inflight SEC(".maps");

/* ioctl entries waiting for their exit: the exit program of every ioctl
 * on the host reads this one word and returns when it is zero. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} attach_pending SEC(".maps");

/* perf_event_open of a kprobe/uprobe PMU: what was asked, by thread until
 * the exit, then by (tgid << 32 | fd) until the attach reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct sentry_perf_open);
} perf_open_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sentry_perf_open);
} perf_fds SEC(".maps");

/* The on-demand ioctl hook's state (struct sentry_ioctl_gate): entry 0
 * is user space's (on_demand, armed), entry 1 the kernel's counters, so
 * that neither overwrites the other. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct sentry_ioctl_gate);
} ioctl_gate SEC(".maps");

/* perf_event_open results for the on-demand hook: a ring of its own, so a
 * stopped caller never waits behind the load records' consumer. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} perf_opened SEC(".maps");

const struct sentry_ioctl_gate *unused_ioctl_gate __attribute__((unused));
const struct sentry_perf_opened *unused_perf_opened __attribute__((unused));
const enum sentry_perf_opened_state *unused_perf_opened_state __attribute__((unused));

/* The record is built here and copied out whole: a full ring buffer drops
 * the report, never the verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_attach);
} attach_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_perf_open);
} perf_open_scratch SEC(".maps");

const struct sentry_attach *unused_attach __attribute__((unused));
const struct sentry_map_create *unused_map_create __attribute__((unused));
const struct sentry_attach_exit *unused_attach_exit __attribute__((unused));
const struct sentry_attach_key *unused_attach_key __attribute__((unused));
const struct sentry_attach_cfg *unused_attach_cfg __attribute__((unused));
const enum sentry_attach_op *unused_attach_op __attribute__((unused));
const enum sentry_attach_key_kind *unused_attach_key_kind __attribute__((unused));
const enum sentry_attach_record_kind *unused_attach_rec_kind __attribute__((unused));
const enum sentry_attach_from *unused_attach_from __attribute__((unused));

/* The parts of union bpf_attr the attach commands use, as raw words. */
struct attach_attr {
	__u32 w[16];
};
static const struct sentry_attach zero_attach;

#define ATTR_U64(a, word) ((__u64)(a)->w[word] | ((__u64)(a)->w[(word) + 1] << 32))

/* FNV-1a over a NUL-terminated name (rules/attachtable.go computes the same). */
static __always_inline __u64 sentry_name_hash(const char *s, const __u32 len)
{
	__u64 h = 0xcbf29ce484222325ULL;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < len; i++) {
		__u8 c = s[i];
		if (!c)
			break;
		h ^= c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static __always_inline struct file *attach_fd_file(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if (fd >= max)
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), fds + fd);
	return f;
}

/* The fd's private data when its f_op is one of want (0s: not checked). */
static __always_inline void *attach_fd_object(__u32 fd, __u64 want, __u64 want2)
{
	struct file *f = attach_fd_file(fd);
	if (!f)
		return NULL;
	if (want) {
		__u64 op = (__u64)BPF_CORE_READ(f, f_op);
		if (op != want && (!want2 || op != want2))
			return NULL;
	}
	return BPF_CORE_READ(f, private_data);
}

enum attach_fops_kind { FOPS_MAP, FOPS_PROG, FOPS_LINK, FOPS_PERF };

/* The f_op of a map, program, link or perf event fd: /proc/kallsyms' when
 * it lists them, else the ones the kernel gave the sensor's own
 * (group_calibration, learnt from its own calls at start-up). 0: not
 * known yet. Never a file's name: any directory can be called "bpf-map". */
static __always_inline __u64 attach_calibrated_fops(__u64 listed, enum attach_fops_kind kind)
{
	if (listed)
		return listed;
	__u32 zero = 0;
	struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);
	if (!cal)
		return 0;
	switch (kind) {
	case FOPS_PROG:
		return cal->prog_fops;
	case FOPS_LINK:
		return cal->link_fops;
	case FOPS_PERF:
		return cal->perf_fops;
	default:
		return cal->map_fops;
	}
}

static __always_inline struct sentry_attach_cfg *attach_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&attach_cfg, &zero);
}

static __always_inline int guard_link_fops(__u64 op)
{
	struct sentry_attach_cfg *ac = attach_config();
	__u64 want = attach_calibrated_fops(ac ? ac->link_fops : 0, FOPS_LINK);
	if (!want)
		return 1; /* not known yet: the guard acts as before calibration */
	return op == want || (ac && ac->link_fops_poll && op == ac->link_fops_poll);
}

static __always_inline struct bpf_prog *attach_fd_prog(struct sentry_attach_cfg *ac, __u32 fd)
{
	return attach_fd_object(fd, attach_calibrated_fops(ac ? ac->prog_fops : 0, FOPS_PROG), 0);
}

static __always_inline __u32 attach_fd_prog_id(struct sentry_attach_cfg *ac, __u32 fd)
{
	struct bpf_prog *p = attach_fd_prog(ac, fd);
	return p ? BPF_CORE_READ(p, aux, id) : 0;
}

static __always_inline __u32 attach_fd_link_id(struct sentry_attach_cfg *ac, __u32 fd)
{
	/* bpf_link_fops_poll (links with poll: struct_ops) is known only from
	 * kallsyms: unlisted, such a link is not resolved */
	struct bpf_link *l = attach_fd_object(fd, attach_calibrated_fops(ac ? ac->link_fops : 0, FOPS_LINK),
					      ac ? ac->link_fops_poll : 0);
	return l ? BPF_CORE_READ(l, id) : 0;
}

/* A perf event fd: its type and config from the kernel's copy of the attr,
 * and the name perf_event_open was given, from the stash. */
static __always_inline void attach_perf(struct sentry_attach_cfg *ac, struct sentry_attach *a, __u32 fd, __u32 tgid)
{
	struct perf_event *ev = attach_fd_object(fd, attach_calibrated_fops(ac ? ac->perf_fops : 0, FOPS_PERF), 0);
	if (!ev)
		return;
	a->name_from = SENTRY_FROM_PERF_EVENT;
	a->perf_type = BPF_CORE_READ(ev, attr.type);
	a->perf_config = BPF_CORE_READ(ev, attr.config);
	a->perf_offset = BPF_CORE_READ(ev, attr.config2);
	__u64 key = ((__u64)tgid << 32) | fd;
	struct sentry_perf_open *po = bpf_map_lookup_elem(&perf_fds, &key);
	if (po && po->type == a->perf_type) {
		bpf_probe_read_kernel(a->name, sizeof(a->name), po->name);
		a->name_from |= SENTRY_FROM_PERF_OPEN;
	}
}

static __always_inline __s32 attach_blocked(__u32 kind, __u64 value)
{
	struct sentry_attach_key k = {.kind = kind, .value = value};
	__s32 *r = bpf_map_lookup_elem(&attach_block, &k);
	return r ? *r : -1;
}

/* The first attach-table entry that matches this target, or -1. */
static __always_inline __s32 attach_judge(struct sentry_attach *a)
{
	__s32 r = -1;
	if (a->perf_type == PERF_TYPE_TP)
		r = attach_blocked(SENTRY_KEY_TP_ID, a->perf_config);
	if (r < 0 && a->name[0])
		r = attach_blocked(SENTRY_KEY_NAME, sentry_name_hash(a->name, SENTRY_ATTACH_NAME_LEN));
	if (r < 0 && a->target_btf_id)
		r = attach_blocked(SENTRY_KEY_BTF_ID, a->target_btf_id);
	if (r < 0 && a->attach_type < 64 && ((1ULL << a->attach_type) & CGROUP_ATTACH_TYPES) && a->target_cgroup &&
	    (a->op == SENTRY_ATTACH_PROG_ATTACH || a->op == SENTRY_ATTACH_LINK_CREATE))
		r = attach_blocked(SENTRY_KEY_CGROUP, a->target_cgroup);
	if (r < 0 && (a->attach_type == BPF_ATTACH_TYPE_XDP || a->attach_type == BPF_ATTACH_TYPE_TCX_INGRESS ||
		      a->attach_type == BPF_ATTACH_TYPE_TCX_EGRESS || a->attach_type == BPF_ATTACH_TYPE_NETKIT_PRIMARY ||
		      a->attach_type == BPF_ATTACH_TYPE_NETKIT_PEER))
		r = attach_blocked(SENTRY_KEY_IFINDEX, ((__u64)a->netns_ino << 32) | a->target_fd);
	if (r < 0 && a->attach_type == BPF_ATTACH_TYPE_FLOW_DISSECTOR && a->op != SENTRY_ATTACH_LINK_UPDATE)
		r = attach_blocked(SENTRY_KEY_NETNS, a->netns_ino);
	if (r < 0 && a->target_map_id)
		r = attach_blocked(SENTRY_KEY_MAP_ID, a->target_map_id);
#pragma clang loop unroll(full)
	for (int i = 0; i < SENTRY_ATTACH_SYMS; i++)
		if (r < 0 && a->syms[i][0])
			r = attach_blocked(SENTRY_KEY_NAME, sentry_name_hash(a->syms[i], SENTRY_ATTACH_SYM_LEN));
	return r;
}

/* The token the attached program was loaded through (6.9+): the kernel
 * keeps it in prog->aux->token for the program's life. */
static __always_inline void attach_token(struct sentry_attach *a, struct bpf_prog *prog)
{
	if (!bpf_core_field_exists(prog->aux->token))
		return;
	struct bpf_token *tok = BPF_CORE_READ(prog, aux, token);
	if (!tok)
		return;
	a->via_token = 1;
	a->token_addr = (__u64)tok;
	a->token_userns = BPF_CORE_READ(tok, userns, ns.inum);
}

/* Fills the caller's identity, judges, enforces, reports and remembers the
 * operation for its exit (ENF_REPORT: judged at the exit, too late to stop
 * and nothing to remember; a block is reported as monitor). Returns the
 * action taken. */
static __always_inline __u32 attach_finish(struct sentry_attach *a, const int enforcer, void *pending, __u64 start)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (cfg && is_self(cfg, tgid, task))
		return SENTRY_ACT_SELF; /* the sensor's own attaches: not reported */
	__u64 uid_gid = bpf_get_current_uid_gid();
	a->h.kind = SENTRY_REC_ATTACH;
	a->h.pid = tgid;
	a->h.load_id = next_load_id(bpf_get_smp_processor_id());
	a->ktime_ns = bpf_ktime_get_ns();
	a->cgroup_id = bpf_get_current_cgroup_id();
	a->pid = tgid;
	a->tid = tid;
	a->uid = (__u32)uid_gid;
	a->gid = uid_gid >> 32;
	bpf_get_current_comm(a->comm, sizeof(a->comm));
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe) {
		a->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
		a->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}
	a->netns_ino = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	a->rule = attach_judge(a);
	a->verdict = SENTRY_VERDICT_ALLOW;
	a->action = SENTRY_ACT_NONE;
	if (a->rule >= 0 && a->op != SENTRY_ATTACH_PROG_DETACH && a->op != SENTRY_ATTACH_LINK_DETACH) {
		a->verdict = SENTRY_VERDICT_BLOCK;
		if (!cfg || cfg->mode != SENTRY_MODE_ENFORCE || enforcer == ENF_REPORT)
			a->action = SENTRY_ACT_MONITOR;
		else if (enforcer == ENF_DENY)
			a->action = SENTRY_ACT_DENIED;
		else
			a->action = bpf_send_signal(SIGKILL) ? SENTRY_ACT_KILL_FAILED : SENTRY_ACT_KILLED;
	}
	a->judge_ns = bpf_ktime_get_ns() - start;
	if (bpf_ringbuf_output(&events, a, sizeof(*a), 0))
		count_loss(SENTRY_LOSS_ATTACH_RESERVE);
	if (enforcer == ENF_REPORT)
		return a->action;
	struct attach_inflight in = {
		.id = a->h.load_id,
		.op = a->op,
		.killed = a->action == SENTRY_ACT_KILLED,
		.denied = a->action == SENTRY_ACT_DENIED,
	};
	if (bpf_map_update_elem(&attach_inflight, &tid, &in, BPF_ANY))
		count_loss(SENTRY_LOSS_INFLIGHT_FULL);
	else if (pending)
		__sync_fetch_and_add((__u64 *)pending, 1);
	return a->action;
}

static __always_inline struct sentry_attach *attach_scratch_zeroed(void)
{
	__u32 zero = 0;
	struct sentry_attach *a = bpf_map_lookup_elem(&attach_scratch, &zero);
	if (a)
		bpf_probe_read_kernel(a, sizeof(*a), &zero_attach);
	return a;
}

/*
 * BPF_MAP_CREATE through a token: the map-creating power a token delegates.
 * The attr's words as passed (map_type, key/value size, max_entries,
 * map_flags at 0-16, map_name at 28, map_token_fd at 76) and the token fd's
 * file, kept by thread for the exit, which reports the call.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct sentry_map_create);
} map_create_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sentry_map_create);
} map_create_scratch SEC(".maps");

static const struct sentry_map_create zero_map_create;

static __always_inline int map_create_enter(__u64 uattr, __u64 size)
{
	__u32 w[5] = {}; /* map_type, key_size, value_size, max_entries, map_flags */
	if (size < 80 || bpf_probe_read_user(w, sizeof(w), (const void *)uattr))
		return 0; /* too short to name a token: not through one */
	if (!(w[4] & BPF_F_TOKEN_FD_FLAG))
		return 0;
	__u32 zero = 0;
	struct sentry_map_create *m = bpf_map_lookup_elem(&map_create_scratch, &zero);
	if (!m)
		return 0;
	bpf_probe_read_kernel(m, sizeof(*m), &zero_map_create);
	m->map_type = w[0];
	m->key_size = w[1];
	m->value_size = w[2];
	m->max_entries = w[3];
	m->map_flags = w[4];
	bpf_probe_read_user(&m->token_fd, sizeof(m->token_fd), (const void *)(uattr + 76));
	bpf_probe_read_user(m->name, sizeof(m->name), (const void *)(uattr + 28));
	m->name[SENTRY_NAME_LEN - 1] = 0;
	struct file *tf = attach_fd_file(m->token_fd);
	if (tf && m->token_fd >= 0) {
		m->token_ino = BPF_CORE_READ(tf, f_inode, i_ino);
		m->token_dev = BPF_CORE_READ(tf, f_inode, i_sb, s_dev);
	}
	m->h.kind = SENTRY_REC_MAP_CREATE;
	m->ktime_ns = bpf_ktime_get_ns();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&map_create_inflight, &tid, m, BPF_ANY))
		count_loss(SENTRY_LOSS_INFLIGHT_FULL);
	return 0;
}

/* The exit of a BPF_MAP_CREATE recorded at entry: reports it. 1: it was one. */
static __always_inline int map_create_exit(__u32 tid, __s64 ret)
{
	struct sentry_map_create *in = bpf_map_lookup_elem(&map_create_inflight, &tid);
	if (!in)
		return 0;
	struct sentry_map_create *m = bpf_ringbuf_reserve(&events, sizeof(*m), 0);
	if (!m) {
		bpf_map_delete_elem(&map_create_inflight, &tid);
		count_loss(SENTRY_LOSS_EXIT_RESERVE);
		return 1;
	}
	bpf_probe_read_kernel(m, sizeof(*m), in);
	bpf_map_delete_elem(&map_create_inflight, &tid);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	m->h.pid = pid_tgid >> 32;
	m->h.load_id = next_load_id(bpf_get_smp_processor_id());
	m->ret = ret;
	m->pid = pid_tgid >> 32;
	m->tid = (__u32)pid_tgid;
	m->uid = (__u32)uid_gid;
	m->gid = uid_gid >> 32;
	m->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(m->comm, sizeof(m->comm));
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe) {
		m->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
		m->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}
	if (ret >= 0) {
		struct file *f = attach_fd_file((__u32)ret);
		if (f) {
			struct bpf_map *map = BPF_CORE_READ(f, private_data);
			if (map)
				m->map_id = BPF_CORE_READ(map, id);
		}
	}
	bpf_ringbuf_submit(m, BPF_RB_FORCE_WAKEUP);
	return 1;
}

/* bpf() entry for every command but BPF_PROG_LOAD. */
static __always_inline int attach_enter(__u64 cmd, __u64 uattr, __u64 size, const int enforcer)
{
	__u32 op;
	if (cmd == CMD_MAP_CREATE)
		return map_create_enter(uattr, size);
	switch (cmd) {
	case CMD_LINK_CREATE:
		op = SENTRY_ATTACH_LINK_CREATE;
		break;
	case CMD_RAW_TRACEPOINT_OPEN:
		op = SENTRY_ATTACH_RAW_TP_OPEN;
		break;
	case CMD_PROG_ATTACH:
		op = SENTRY_ATTACH_PROG_ATTACH;
		break;
	case CMD_PROG_DETACH:
		op = SENTRY_ATTACH_PROG_DETACH;
		break;
	case CMD_LINK_UPDATE:
		op = SENTRY_ATTACH_LINK_UPDATE;
		break;
	case CMD_LINK_DETACH:
		op = SENTRY_ATTACH_LINK_DETACH;
		break;
	default:
		return 0;
	}
	__u64 start = bpf_ktime_get_ns();
	struct sentry_attach *a = attach_scratch_zeroed();
	if (!a)
		return 0;
	a->op = op;
	struct attach_attr at = {};
	__u64 sz = size;
	if (sz > sizeof(at))
		sz = sizeof(at);
	if (sz == 0 || bpf_probe_read_user(&at, sz, (const void *)uattr)) {
		count_loss(SENTRY_LOSS_ATTR_READ);
		__builtin_memset(&at, 0, sizeof(at));
	}
	struct sentry_attach_cfg *ac = attach_config();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct bpf_prog *prog = NULL;

	if (op == SENTRY_ATTACH_LINK_CREATE) {
		a->prog_fd = at.w[0];
		a->target_fd = at.w[1];
		a->attach_type = at.w[2];
		a->flags = at.w[3];
		__u32 t = a->attach_type;
		if (t == BPF_ATTACH_TYPE_PERF_EVENT) {
			a->cookie = ATTR_U64(&at, 4);
			attach_perf(ac, a, a->target_fd, tgid);
		} else if (t == BPF_ATTACH_TYPE_KPROBE_MULTI || t == BPF_ATTACH_TYPE_KPROBE_SESSION) {
			a->flags = at.w[4];
			a->count = at.w[5];
			__u64 syms = ATTR_U64(&at, 6), addrs = ATTR_U64(&at, 8);
#pragma clang loop unroll(full)
			for (int i = 0; i < SENTRY_ATTACH_SYMS; i++) {
				if (i >= a->count)
					break;
				if (syms) {
					__u64 p = 0;
					if (!bpf_probe_read_user(&p, sizeof(p), (void *)(syms + i * 8)) && p)
						bpf_probe_read_user_str(a->syms[i], SENTRY_ATTACH_SYM_LEN, (void *)p);
				} else if (addrs) {
					bpf_probe_read_user(&a->addrs[i], sizeof(__u64), (void *)(addrs + i * 8));
				}
			}
		} else if (t == BPF_ATTACH_TYPE_UPROBE_MULTI || t == BPF_ATTACH_TYPE_UPROBE_SESSION) {
			__u64 path = ATTR_U64(&at, 4), offs = ATTR_U64(&at, 6);
			a->count = at.w[12];
			a->flags = at.w[13];
			a->perf_offset = at.w[14]; /* pid filter */
			if (path && bpf_probe_read_user_str(a->name, sizeof(a->name), (void *)path) > 0)
				a->name_from = SENTRY_FROM_CALLER;
			else
				a->name[0] = 0;
#pragma clang loop unroll(full)
			for (int i = 0; i < SENTRY_ATTACH_SYMS; i++) {
				if (i >= a->count || !offs)
					break;
				bpf_probe_read_user(&a->addrs[i], sizeof(__u64), (void *)(offs + i * 8));
			}
		} else if (t >= BPF_ATTACH_TYPE_TRACE_RAW_TP && t <= BPF_ATTACH_TYPE_LSM_MAC) {
			/* tracing (raw tp, fentry, fexit, fmod_ret, freplace, lsm): a
			 * BTF id when the target is given here (else the program's) */
			a->target_btf_id = at.w[4];
			a->cookie = ATTR_U64(&at, 6);
		} else {
			/* netfilter: pf, hooknum, priority, flags; tcx/netkit:
			 * relative fd or id, expected revision: kept raw */
			a->perf_config = at.w[4] | ((__u64)at.w[5] << 32);
			a->perf_offset = at.w[6] | ((__u64)at.w[7] << 32);
		}
	} else if (op == SENTRY_ATTACH_RAW_TP_OPEN) {
		__u64 name = ATTR_U64(&at, 0);
		a->prog_fd = at.w[2];
		a->cookie = ATTR_U64(&at, 4);
		if (name && bpf_probe_read_user_str(a->name, sizeof(a->name), (void *)name) > 0)
			a->name_from = SENTRY_FROM_CALLER;
		else
			a->name[0] = 0;
	} else if (op == SENTRY_ATTACH_PROG_ATTACH || op == SENTRY_ATTACH_PROG_DETACH) {
		a->target_fd = at.w[0];
		a->prog_fd = at.w[1];
		a->attach_type = at.w[2];
		a->flags = at.w[3];
		a->replace_fd = at.w[4];
		if (a->flags & BPF_F_REPLACE)
			a->replace_prog_id = attach_fd_prog_id(ac, a->replace_fd);
	} else if (op == SENTRY_ATTACH_LINK_UPDATE) {
		a->link_id = attach_fd_link_id(ac, at.w[0]);
		a->prog_fd = at.w[1];
		a->flags = at.w[2];
		a->replace_fd = at.w[3];
		if (a->flags & BPF_F_REPLACE)
			a->replace_prog_id = attach_fd_prog_id(ac, a->replace_fd);
	} else {
		a->link_id = attach_fd_link_id(ac, at.w[0]);
	}
	if (op != SENTRY_ATTACH_LINK_DETACH) {
		prog = attach_fd_prog(ac, a->prog_fd);
		if (prog) {
			a->prog_id = BPF_CORE_READ(prog, aux, id);
			a->prog_type = BPF_CORE_READ(prog, type);
			if (!a->target_btf_id && op != SENTRY_ATTACH_LINK_UPDATE)
				a->target_btf_id = BPF_CORE_READ(prog, aux, attach_btf_id);
			attach_token(a, prog);
		}
	}
	if (op == SENTRY_ATTACH_PROG_ATTACH || op == SENTRY_ATTACH_PROG_DETACH || op == SENTRY_ATTACH_LINK_CREATE) {
		/* the target fd as a program (freplace, fentry on a program)
		 * or as a directory (a cgroup); not for ifindex targets */
		__u32 t = a->attach_type;
		if (t != BPF_ATTACH_TYPE_XDP && t != BPF_ATTACH_TYPE_TCX_INGRESS && t != BPF_ATTACH_TYPE_TCX_EGRESS &&
		    t != BPF_ATTACH_TYPE_NETKIT_PRIMARY && t != BPF_ATTACH_TYPE_NETKIT_PEER && t != BPF_ATTACH_TYPE_PERF_EVENT) {
			struct file *f = attach_fd_file(a->target_fd);
			if (f) {
				/* a program or a map only on the f_op the kernel gave
				 * the sensor's own (unknown: neither) */
				__u64 fop = (__u64)BPF_CORE_READ(f, f_op);
				__u64 prog_fops = attach_calibrated_fops(ac ? ac->prog_fops : 0, FOPS_PROG);
				__u64 map_fops = attach_calibrated_fops(ac ? ac->map_fops : 0, FOPS_MAP);
				if (prog_fops && fop == prog_fops) {
					struct bpf_prog *tp = BPF_CORE_READ(f, private_data);
					a->target_prog_id = BPF_CORE_READ(tp, aux, id);
				} else if (map_fops && fop == map_fops) {
					struct bpf_map *m = BPF_CORE_READ(f, private_data);
					a->target_map_id = BPF_CORE_READ(m, id);
				} else {
					a->target_cgroup = BPF_CORE_READ(f, f_inode, i_ino);
				}
			}
		}
	}
	attach_finish(a, enforcer, NULL, start);
	return 0;
}

/* bpf() exit: the result of an attach recorded at entry (0 if none). */
static __always_inline int attach_exit(__s64 ret, void *pending)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (!pending && map_create_exit(tid, ret))
		return 0;
	struct attach_inflight *in = bpf_map_lookup_elem(&attach_inflight, &tid);
	if (!in)
		return 0;
	struct attach_inflight copy = *in;
	bpf_map_delete_elem(&attach_inflight, &tid);
	if (pending)
		__sync_fetch_and_add((__u64 *)pending, -1);
	struct sentry_attach_exit e = {
		.h = {.kind = SENTRY_REC_ATTACH_EXIT, .pid = bpf_get_current_pid_tgid() >> 32, .load_id = copy.id},
		.ret = ret,
		.killed = copy.killed,
		.ktime_ns = bpf_ktime_get_ns(),
	};
	if (ret >= 0 && (copy.op == SENTRY_ATTACH_LINK_CREATE || copy.op == SENTRY_ATTACH_RAW_TP_OPEN))
		e.link_id = attach_fd_link_id(attach_config(), (__u32)ret);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), BPF_RB_FORCE_WAKEUP))
		count_loss(SENTRY_LOSS_ATTACH_RESERVE);
	return 0;
}

/* syscalls:sys_enter_* / sys_exit_* records of the generic shape. */
struct sys_enter_args_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

/* What a PERF_EVENT_IOC_SET_BPF names: the perf event behind fd and the
 * program behind prog_fd (the kernel takes both as 32-bit values). */
static __always_inline void ioctl_facts(struct sentry_attach *a, __u32 fd, __u32 prog_fd)
{
	struct sentry_attach_cfg *ac = attach_config();
	a->op = SENTRY_ATTACH_PERF_SET_BPF;
	a->target_fd = fd;
	a->prog_fd = prog_fd;
	a->attach_type = BPF_ATTACH_TYPE_PERF_EVENT;
	attach_perf(ac, a, fd, bpf_get_current_pid_tgid() >> 32);
	struct bpf_prog *prog = attach_fd_prog(ac, prog_fd);
	if (prog) {
		a->prog_id = BPF_CORE_READ(prog, aux, id);
		a->prog_type = BPF_CORE_READ(prog, type);
		attach_token(a, prog);
	}
}

/* The entry program: only where a block must stop the call (enforce mode,
 * and every mode on 5.10, whose exit cannot read the arguments). The
 * kernel truncates the command to 32 bits, so the upper half is ignored
 * here too (a caller setting it still attaches). */
static __always_inline int ioctl_enter(struct sys_enter_args_ctx *ctx, const int enforcer)
{
	if ((__u32)ctx->args[1] != PERF_IOC_SET_BPF)
		return 0;
	__u64 start = bpf_ktime_get_ns();
	struct sentry_attach *a = attach_scratch_zeroed();
	if (!a)
		return 0;
	ioctl_facts(a, ctx->args[0], ctx->args[2]);
	__u32 zero = 0;
	attach_finish(a, enforcer, bpf_map_lookup_elem(&attach_pending, &zero), start);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_ioctl")
int sentry_ioctl_enter(struct sys_enter_args_ctx *ctx)
{
	return ioctl_enter(ctx, ENF_KILL);
}

SEC("tracepoint/syscalls/sys_enter_ioctl")
int sentry_ioctl_enter_deny(struct sys_enter_args_ctx *ctx)
{
	return ioctl_enter(ctx, ENF_DENY);
}

/* The exit paired with an entry program that runs for every ioctl: it
 * returns at one array word unless an entry is pending. The 5.10 build's
 * exit, and the old pair the benchmark compares against. */
SEC("tracepoint/syscalls/sys_exit_ioctl")
int sentry_ioctl_exit_paired(struct sys_exit_bpf_ctx *ctx)
{
	__u32 zero = 0;
	__u64 *pending = bpf_map_lookup_elem(&attach_pending, &zero);
	if (!pending || !*pending)
		return 0;
	return attach_exit(ctx->ret, pending);
}

#ifndef SENTRY_NO_LOOP
/*
 * The exit on its own: the only program on ioctl in monitor mode. It reads
 * the command from the caller's syscall registers (di, si, dx: fd, cmd,
 * arg; the syscall tracepoints skip 32-bit callers, so these are the
 * 64-bit ones), which the call does not change, and returns at once
 * unless it is PERF_EVENT_IOC_SET_BPF. An attach the entry program already
 * reported (enforce mode) gets its exit record; any other is reported here
 * whole: the attach record, judged, then its result.
 */
SEC("tracepoint/syscalls/sys_exit_ioctl")
int sentry_ioctl_exit(struct sys_exit_bpf_ctx *ctx)
{
	struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if ((__u32)r->si != PERF_IOC_SET_BPF)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 zero = 0;
	if (bpf_map_lookup_elem(&attach_inflight, &tid))
		return attach_exit(ctx->ret, bpf_map_lookup_elem(&attach_pending, &zero));
	__u64 start = bpf_ktime_get_ns();
	__u32 fd = r->di, prog_fd = r->dx;
	struct sentry_attach *a = attach_scratch_zeroed();
	if (!a)
		return 0;
	ioctl_facts(a, fd, prog_fd);
	if (attach_finish(a, ENF_REPORT, NULL, start) == SENTRY_ACT_SELF)
		return 0;
	struct sentry_attach_exit e = {
		.h = {.kind = SENTRY_REC_ATTACH_EXIT, .pid = a->h.pid, .load_id = a->h.load_id},
		.ret = ctx->ret,
		.ktime_ns = bpf_ktime_get_ns(),
	};
	if (bpf_ringbuf_output(&events, &e, sizeof(e), BPF_RB_FORCE_WAKEUP))
		count_loss(SENTRY_LOSS_ATTACH_RESERVE);
	return 0;
}
#endif

/* perf_event_open of a dynamic PMU (kprobe, uprobe): keep the function or
 * binary path, which the kernel's copy of the attr does not hold. */
SEC("tracepoint/syscalls/sys_enter_perf_event_open")
int sentry_perf_open_enter(struct sys_enter_args_ctx *ctx)
{
	struct perf_event_attr attr = {};
	if (bpf_probe_read_user(&attr, __builtin_offsetof(struct perf_event_attr, config2) + sizeof(attr.config2), (void *)ctx->args[0]))
		return 0;
	if (attr.type < PERF_TYPE_DYNAMIC || !attr.config1)
		return 0;
	__u32 zero = 0;
	struct sentry_perf_open *po = bpf_map_lookup_elem(&perf_open_scratch, &zero);
	if (!po)
		return 0;
	po->type = attr.type;
	po->config = attr.config;
	po->config2 = attr.config2;
	if (bpf_probe_read_user_str(po->name, sizeof(po->name), (void *)attr.config1) < 0)
		po->name[0] = 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&perf_open_inflight, &tid, po, BPF_ANY);
	return 0;
}

/* A new perf event fd, for the on-demand ioctl hook: reported to user
 * space, which attaches the hook while the caller may hold the fd. While
 * the hook is not attached the caller is stopped before it returns to user
 * space (SIGSTOP, queued here, acts on the way out) and continued once the
 * hook is on, in both modes: in monitor mode too, an attacher that attached
 * and closed its fd before the hook was on would leave nothing to find. A
 * report the ring cannot take kills the caller in enforce mode (fail
 * closed) and is counted in both. The sensor's own opens (its tracepoint
 * attaches) are not reported. */
static __always_inline void perf_opened_report(__u64 pid_tgid, __s64 fd)
{
	__u32 zero = 0, one = 1;
	struct sentry_ioctl_gate *g = bpf_map_lookup_elem(&ioctl_gate, &zero);
	struct sentry_ioctl_gate *n = bpf_map_lookup_elem(&ioctl_gate, &one);
	if (!g || !n || !g->on_demand)
		return;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	/* by tgid alone: the agent attaches its own hooks (perf_event_open)
	 * before its start time is learnt, and must never stop itself */
	if (cfg && cfg->self_tgid == pid_tgid >> 32)
		return;
	int enforce = cfg && cfg->mode == SENTRY_MODE_ENFORCE;
	/* the agent's own opens (its hooks, attached before the config names
	 * it) are reported but never stopped: a stopped agent continues no one */
	int stop = !g->armed && g->stop && g->self_tgid != pid_tgid >> 32;
	struct sentry_perf_opened *r = bpf_ringbuf_reserve(&perf_opened, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&n->lost, 1);
		if (stop && enforce)
			bpf_send_signal(SIGKILL);
		return;
	}
	r->pid = pid_tgid >> 32;
	r->tid = (__u32)pid_tgid;
	r->fd = fd;
	r->state = g->armed ? SENTRY_PERF_OPENED_HOOKED : SENTRY_PERF_OPENED_UNSEEN;
	r->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	r->ktime_ns = bpf_ktime_get_ns();
	if (stop) {
		if (bpf_send_signal(SIGSTOP_NR))
			__sync_fetch_and_add(&n->stop_failed, 1);
		else
			r->state = SENTRY_PERF_OPENED_STOPPED;
	}
	__sync_fetch_and_add(&n->reported, 1);
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
}

/* The agent's own perf_event_open teaches the f_op of a perf event fd:
 * the kernel just made fd one. */
static __always_inline void perf_calibrate(__u64 pid_tgid, __s64 fd)
{
	__u32 zero = 0;
	struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cal || cal->perf_fops || !cfg || !is_self(cfg, pid_tgid >> 32, (struct task_struct *)bpf_get_current_task()))
		return;
	struct file *f = attach_fd_file((__u32)fd);
	if (f)
		cal->perf_fops = (__u64)BPF_CORE_READ(f, f_op);
}

SEC("tracepoint/syscalls/sys_exit_perf_event_open")
int sentry_perf_open_exit(struct sys_exit_bpf_ctx *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	if (ctx->ret >= 0) {
		perf_opened_report(pid_tgid, ctx->ret);
		perf_calibrate(pid_tgid, ctx->ret);
	}
	struct sentry_perf_open *po = bpf_map_lookup_elem(&perf_open_inflight, &tid);
	if (!po)
		return 0;
	if (ctx->ret >= 0) {
		__u64 key = (pid_tgid & 0xffffffff00000000ULL) | (__u32)ctx->ret;
		bpf_map_update_elem(&perf_fds, &key, po, BPF_ANY);
	}
	bpf_map_delete_elem(&perf_open_inflight, &tid);
	return 0;
}

/* The attach half of sys_enter_bpf for the LSM hooks, whose load programs
 * do not see other commands: reports, and marks blocked attaches for the
 * gates below. */
SEC("tracepoint/syscalls/sys_enter_bpf")
int sentry_attach_tp(struct sys_enter_bpf_ctx *ctx)
{
#ifndef SENTRY_NO_LOOP
	if (ctx->cmd == BPF_PROG_LOAD) {
		/* for the exit next to lsm/bpf_prog_load (on_exit_lsm) */
		struct load_attempt att = {.uattr = ctx->uattr, .size = ctx->size};
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		bpf_map_update_elem(&load_attempts, &tid, &att, BPF_ANY);
		return 0;
	}
#endif
	return attach_enter(ctx->cmd, ctx->uattr, ctx->size, ENF_DENY);
}

static __always_inline int attach_gate(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct attach_inflight *in = bpf_map_lookup_elem(&attach_inflight, &tid);
	return in && in->denied ? -EPERM : 0;
}

SEC("lsm/bpf")
int BPF_PROG(sentry_lsm_attach_gate, int cmd, union bpf_attr *kattr, unsigned int size)
{
	if (cmd == BPF_PROG_LOAD)
		return 0;
	return attach_gate();
}

SEC("lsm/file_ioctl")
int BPF_PROG(sentry_lsm_ioctl_gate, struct file *file, unsigned int cmd, unsigned long arg)
{
	if (cmd != PERF_IOC_SET_BPF)
		return 0;
	return attach_gate();
}
