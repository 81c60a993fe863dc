/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Loader groups in the kernel (docs/GROUPS.md). A group is the programs of
 * one loader: a process, identified by what the kernel vouches for (tgid and
 * its thread-group leader's start time, never a name), joined with other
 * processes' groups when they share a prog_array (one writes a program of
 * the other into it), when a load references a map of any type that
 * another group created or uses (however its fd was obtained: pin, id,
 * SCM_RIGHTS), or when a process that opened another group's pinned map
 * or program (BPF_OBJ_GET) loads.
 *
 * Per group the kernel keeps the sum of the helper histograms of its
 * programs that loaded (group_accs). The load judge evaluates the rules of
 * scope group against that sum plus the program being judged, so the load
 * that completes a profile split across programs is blocked at syscall
 * entry (or denied in the LSM). A load adds to its group only when it
 * succeeds (sys_exit with an fd): failed and blocked loads leave nothing.
 * Every map is an LRU with a fixed size: the state is bounded whatever the
 * load, and the oldest groups go first. User space drops a group once its
 * process has exited and none of its programs is loaded any more (the
 * kernel has no hook for a program's end on every kernel).
 *
 * Included by sensor.bpf.c after is_self, struct walk_ctx and the maps it
 * uses. The bounded-loop build (SENTRY_NO_LOOP, 5.10) keeps the prog_array
 * report but has no group judge: user space groups and alerts there.
 */
#ifndef SENTRY_GROUP_H
#define SENTRY_GROUP_H

#define GROUP_MAX 10240         /* groups with a sum: one per loader process at most */
#define GROUP_LINKS_MAX 8192    /* joined groups; processes that opened another group's pin */
#define GROUP_MAPS_MAX 16384    /* maps with a group: created by a loader or referenced by its programs */
#define GROUP_PROGS_MAX 16384   /* programs with a group: more than the 10,000 live programs budgeted */
#define GROUP_PENDING_MAX 1024  /* loads and prog_array writes between entry and exit */
#define GROUP_HOPS 4            /* joins followed from a process to its group */
#define MAP_TYPE_PROG_ARRAY 3

/* A loader process: its tgid and its leader's start_boottime, which a
 * process that gets the tgid again cannot choose. */
struct group_key {
	__u32 tgid;
	__u32 _pad;
	__u64 start;
};

/* What a group's programs call, summed over the programs that loaded.
 * Counts are 16-bit and saturate at 65535 (no rule asks for more calls):
 * half the memory per group. */
#define GROUP_CNT_MAX 0xffff
struct group_acc {
	__u32 progs;
	__u32 helper_other;
	__u64 used[RULES_HELPER_MAX / 64];
	__u16 helper_cnt[RULES_HELPER_MAX];
};

/* One write into (or delete from) a prog_array, reported at its exit. */
struct sentry_prog_array_rec {
	struct sentry_rec_hdr h; /* load_id: a sequence of its own */
	__u64 ktime_ns;
	__u32 tid;
	__u32 uid;
	__u32 cmd;         /* BPF_MAP_UPDATE_ELEM or BPF_MAP_DELETE_ELEM */
	__u32 map_id;
	__u32 key;         /* the slot */
	__u32 key_read;    /* 0: the key could not be read from the caller */
	__u32 value_fd;    /* the program fd written (update) */
	__u32 prog_id;     /* the program it names; 0 when the fd is no program */
	__u32 old_prog_id; /* what the slot held at entry; 0 when empty */
	__s32 ret;         /* 0, or -errno */
	struct group_key group; /* the writer's group after the write */
	char comm[SENTRY_COMM_LEN];
};

/* Learnt from the sensor's own calls: the f_op of a map fd and of a
 * program fd (its prog_array write), of a link fd (its BPF_LINK_DETACH of a
 * raw tracepoint link) and of a perf event fd (its perf_event_open, at the
 * exit), so that an fd is taken for one of them only when the kernel made
 * it one (struct file private_data is otherwise anything). */
struct group_calib {
	__u64 map_fops;
	__u64 prog_fops;
	__u64 link_fops;
	__u64 perf_fops;
};

/* Minimal CO-RE views (the ___grp flavour keeps them apart from the
 * sensor's own definitions of the same types). */
struct file___grp {
	const void *f_op;
	void *private_data;
} __attribute__((preserve_access_index));
struct bpf_map___grp {
	enum bpf_map_type map_type;
	__u32 max_entries;
	__u32 id;
} __attribute__((preserve_access_index));
struct bpf_array___grp {
	__u32 index_mask;
	union {
		char value[0];
		void *ptrs[0];
	};
} __attribute__((preserve_access_index));

const struct group_key *unused_group_key __attribute__((unused));
const struct group_acc *unused_group_acc __attribute__((unused));
const struct sentry_prog_array_rec *unused_prog_array_rec __attribute__((unused));
const struct group_calib *unused_group_calib __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_MAX);
	__type(key, struct group_key);
	__type(value, struct group_acc);
} group_accs SEC(".maps");

/* A group joined into another: key → the group it now belongs to. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_LINKS_MAX);
	__type(key, struct group_key);
	__type(value, struct group_key);
} group_parent SEC(".maps");

/* map id → the group that created it, or whose programs use it (a
 * prog_array: whose programs it holds). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_MAPS_MAX);
	__type(key, __u32);
	__type(value, struct group_key);
} group_maps SEC(".maps");

/* prog id → the group whose load created it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_PROGS_MAX);
	__type(key, __u32);
	__type(value, struct group_key);
} group_progs SEC(".maps");

/* A load's maps and groups noted by its judge: at most GROUP_REFS of each
 * (the kernel's MAX_USED_MAPS: a program uses no more maps); more are
 * counted (GROUP_STAT_REFS_OVER) and make the load unreadable. */
#define GROUP_REFS RULES_MAP_REFS

struct group_pending {
	struct group_key group;
	__u32 n_joined; /* joined[0..n_joined): the groups of its maps and of an opened pin, not group */
	__u32 n_maps;   /* map_id[0..n_maps): the distinct maps the program references */
	__u32 over;     /* references or groups past GROUP_REFS: not joined */
	__u32 unread;   /* fd_array entries not readable: not joined */
	struct group_key joined[GROUP_REFS];
	__u32 map_id[GROUP_REFS];
	struct group_acc add; /* this program's counts (progs = 1) */
};

/* A process that opened (BPF_OBJ_GET) a pinned map or program of another
 * group: its raw group key → that group. Its next load joins it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_LINKS_MAX);
	__type(key, struct group_key);
	__type(value, struct group_key);
} group_adopt SEC(".maps");

/* A BPF_MAP_CREATE or BPF_OBJ_GET until its exit, by thread id: the cmd. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_PENDING_MAX);
	__type(key, __u32);
	__type(value, __u32);
} group_opens SEC(".maps");

/* A judged load until its exit, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_PENDING_MAX);
	__type(key, __u32);
	__type(value, struct group_pending);
} group_pending SEC(".maps");

/* A prog_array write until its exit, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GROUP_PENDING_MAX);
	__type(key, __u32);
	__type(value, struct sentry_prog_array_rec);
} group_writes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct group_calib);
} group_calibration SEC(".maps");

/* Counters (index: GROUP_STAT_*), read by user space for the benchmark and
 * for doctor. */
#define GROUP_STAT_JUDGED 0    /* loads judged with a group view */
#define GROUP_STAT_COMMITTED 1 /* loads added to a group */
#define GROUP_STAT_JOINS 2     /* groups joined */
#define GROUP_STAT_WRITES 3    /* prog_array writes reported */
#define GROUP_STAT_NOSCRATCH 4 /* group view skipped: no scratch */
#define GROUP_STAT_WRITE_LOST 5 /* a prog_array write not reported (no room) */
#define GROUP_STAT_REFS_OVER 6 /* map references or groups of a load past GROUP_REFS: not joined */
#define GROUP_STAT_REFS_UNREAD 7 /* fd_array entries the judge could not read: not joined */
#define GROUP_STAT_NR 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GROUP_STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
} group_stats SEC(".maps");

static __always_inline void group_count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&group_stats, &what);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static const struct group_acc zero_acc;
static const struct group_pending zero_pending;
static const struct sentry_prog_array_rec zero_write;

static __always_inline struct group_key group_of_task(struct task_struct *task)
{
	struct group_key k = {};

	k.tgid = BPF_CORE_READ(task, tgid);
	k.start = BPF_CORE_READ(task, group_leader, start_boottime);
	return k;
}

static __always_inline int group_eq(const struct group_key *a, const struct group_key *b)
{
	return a->tgid == b->tgid && a->start == b->start;
}

/* Follows joins from k to the group it belongs to now. */
static __always_inline void group_find(struct group_key *k)
{
#pragma unroll
	for (int i = 0; i < GROUP_HOPS; i++) {
		struct group_key *p = bpf_map_lookup_elem(&group_parent, k);
		if (!p || group_eq(p, k))
			return;
		*k = *p;
	}
}

/* The struct file behind fd in task's table, or NULL. */
static __always_inline struct file___grp *group_fd_file(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file **fds;
	struct file___grp *file = NULL;

	if (!fdt || fd >= max)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
	return file;
}

/* The map behind fd when it is a prog_array (map ops the kernel vouches
 * for through f_op), else NULL. */
static __always_inline struct bpf_map___grp *group_prog_array(struct task_struct *task, __u32 fd,
							      const struct group_calib *cal)
{
	struct file___grp *file = group_fd_file(task, fd);

	if (!file || !cal->map_fops || (__u64)BPF_CORE_READ(file, f_op) != cal->map_fops)
		return NULL;
	struct bpf_map___grp *map = BPF_CORE_READ(file, private_data);
	if (!map || BPF_CORE_READ(map, map_type) != MAP_TYPE_PROG_ARRAY)
		return NULL;
	return map;
}

/* The map behind fd, of any type, or NULL. */
static __always_inline struct bpf_map___grp *group_any_map(struct task_struct *task, __u32 fd,
							   const struct group_calib *cal)
{
	struct file___grp *file = group_fd_file(task, fd);

	if (!file || !cal->map_fops || (__u64)BPF_CORE_READ(file, f_op) != cal->map_fops)
		return NULL;
	return BPF_CORE_READ(file, private_data);
}

/* The id of the program behind fd, or 0. */
static __always_inline __u32 group_prog_id(struct task_struct *task, __u32 fd, const struct group_calib *cal)
{
	struct file___grp *file = group_fd_file(task, fd);

	if (!file || !cal->prog_fops || (__u64)BPF_CORE_READ(file, f_op) != cal->prog_fops)
		return 0;
	struct bpf_prog *prog = BPF_CORE_READ(file, private_data);
	return prog ? BPF_CORE_READ(prog, aux, id) : 0;
}

#ifndef SENTRY_NO_LOOP
/* Histogram additions, one helper id per bpf_loop step: a group's 16-bit
 * counts (saturating) and a rules_facts' 32-bit ones. */
struct group_add_ctx {
	void *dst;
	const void *src;
};

#define GROUP_ADD_STEP(name, dtype, stype)                                       \
	static long name(__u64 i, struct group_add_ctx *c)                       \
	{                                                                        \
		if (i >= RULES_HELPER_MAX)                                       \
			return 1;                                                \
		dtype *d = (dtype *)c->dst + (i & (RULES_HELPER_MAX - 1));      \
		__u32 v = *d + ((const stype *)c->src)[i & (RULES_HELPER_MAX - 1)]; \
		if (sizeof(dtype) == 2 && v > GROUP_CNT_MAX)                     \
			v = GROUP_CNT_MAX;                                       \
		*d = v;                                                          \
		return 0;                                                        \
	}

GROUP_ADD_STEP(group_add_16_32, __u16, __u32)
GROUP_ADD_STEP(group_add_32_16, __u32, __u16)
GROUP_ADD_STEP(group_add_16_16, __u16, __u16)

static __always_inline void group_add_bits(__u64 *dst_used, __u32 *dst_other, const __u64 *src_used, __u32 src_other)
{
#pragma unroll
	for (int i = 0; i < RULES_HELPER_MAX / 64; i++)
		dst_used[i] |= src_used[i];
	*dst_other += src_other;
}

/* a program's facts into a group sum */
static __always_inline void group_add_facts(struct group_acc *dst, const struct rules_facts *f)
{
	struct group_add_ctx c = {.dst = dst->helper_cnt, .src = f->helper_cnt};

	bpf_loop(RULES_HELPER_MAX, group_add_16_32, &c, 0);
	group_add_bits(dst->used, &dst->helper_other, f->used, f->helper_other);
}

/* a group sum into a group view */
static __always_inline void group_add_to_facts(struct rules_facts *dst, const struct group_acc *a)
{
	struct group_add_ctx c = {.dst = dst->helper_cnt, .src = a->helper_cnt};

	bpf_loop(RULES_HELPER_MAX, group_add_32_16, &c, 0);
	group_add_bits(dst->used, &dst->helper_other, a->used, a->helper_other);
}

static __always_inline void group_add_acc(struct group_acc *dst, const struct group_acc *src)
{
	struct group_add_ctx c = {.dst = dst->helper_cnt, .src = src->helper_cnt};

	bpf_loop(RULES_HELPER_MAX, group_add_16_16, &c, 0);
	group_add_bits(dst->used, &dst->helper_other, src->used, src->helper_other);
	dst->progs += src->progs;
}

struct group_scratch {
	struct rules_facts f;
	struct rules_result res;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct group_scratch);
} group_scratch SEC(".maps");

/* The sleepable hook's group scratch: per task, like its other scratch. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct group_scratch);
} group_task_scratch SEC(".maps");

static __always_inline struct group_scratch *group_scratch_for(const int kernel)
{
	__u32 zero = 0;

	if (kernel == SRC_USER_SLEEPABLE)
		return bpf_task_storage_get(&group_task_scratch, bpf_get_current_task_btf(), 0,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);
	return bpf_map_lookup_elem(&group_scratch, &zero);
}

/* What the reference walk of one load needs (group_ref_step). */
struct group_ref_ctx {
	struct task_struct *task;
	const struct rules_facts *f;
	struct group_pending *p;
	const struct group_calib *cal;
	__u64 fd_array; /* attr->fd_array: user memory, or kernel memory for an inner load */
};
/* The counts the steps keep are in the pending entry (map memory), not in
 * this context on the stack: the verifier tracks the exact value of a
 * stack slot, so a count there would make every callback iteration a new
 * state and the loop would never converge. */

/* Whether a group is among p->joined[0..n): a bpf_loop, not a bounded
 * loop, for the reason of ref_table_has (bpf/sensor.bpf.c). */
struct group_find_ctx {
	const struct group_pending *p;
	struct group_key want;
	__u32 found;
};

static long group_joined_step(__u64 i, struct group_find_ctx *c)
{
	if (group_eq(&c->p->joined[RULES_MAP_REF_SLOT(i)], &c->want)) {
		c->found = 1;
		return 1;
	}
	return 0;
}

/* Adds g (resolved) to the load's joined groups unless it is the load's
 * own or already there. */
static __always_inline void group_note_joined(struct group_ref_ctx *c, struct group_key *g)
{
	struct group_pending *p = c->p;
	__u32 n = p->n_joined;

	group_find(g);
	if (group_eq(g, &p->group))
		return;
	struct group_find_ctx fc = {.p = p, .want = *g};
	if (n > GROUP_REFS)
		n = GROUP_REFS;
	if (n)
		bpf_loop(n, group_joined_step, &fc, 0);
	if (fc.found)
		return;
	if (n >= GROUP_REFS) {
		p->over++;
		return;
	}
	p->joined[RULES_MAP_REF_SLOT(n)] = *g;
	p->n_joined = n + 1;
}

/* Entry i of fd_array, or -1 when it cannot be read. An inner load's
 * fd_array is kernel memory; a user address the kernel would refuse
 * (EFAULT) fails both reads. The sleepable hook reads user memory with
 * bpf_copy_from_user, which faults in a page that is not resident (never
 * touched, swapped out, userfaultfd) as the kernel's own read will; the
 * other hooks cannot fault, and such a page is unread there. */
static __always_inline __s32 group_fd_array_entry(struct group_ref_ctx *c, __u32 i, const int sleepable)
{
	__s32 fd = -1;
	const void *at = (const void *)(c->fd_array + (__u64)i * sizeof(__s32));
	long err;

	if (!c->fd_array)
		return -1;
	if (sleepable)
		err = bpf_copy_from_user(&fd, sizeof(fd), at);
	else
		err = bpf_probe_read_user(&fd, sizeof(fd), at);
	if (err && bpf_probe_read_kernel(&fd, sizeof(fd), at)) {
		c->p->unread++;
		return -1;
	}
	return fd;
}

/* Reference i of the load: its ld_imm64 references first (f->map_ref),
 * then, from 6.13, the fd_array_cnt entries of fd_array, which the kernel
 * binds to the program whether or not an instruction names them. Notes
 * the map once, and its group. */
static __always_inline long group_ref_step(__u64 i, struct group_ref_ctx *c, const int sleepable)
{
	const struct rules_facts *f = c->f;
	struct group_pending *p = c->p;
	__u32 n = f->map_refs;
	__s32 fd;

	if (i >= 2 * GROUP_REFS)
		return 1;
	if (i < n) {
		__u32 ref = f->map_ref[i & (RULES_MAP_REFS - 1)];
		fd = ref & RULES_MAP_REF_IDX ? group_fd_array_entry(c, ref & ~RULES_MAP_REF_IDX, sleepable) : (__s32)ref;
	} else {
		fd = group_fd_array_entry(c, i - n, sleepable);
	}
	if (fd < 0)
		return 0;
	struct bpf_map___grp *map = group_any_map(c->task, fd, c->cal);
	if (!map)
		return 0;
	__u32 id = BPF_CORE_READ(map, id), m = p->n_maps;
	if (ref_table_has(p->map_id, m, id))
		return 0;
	if (m >= GROUP_REFS) {
		p->over++;
		return 0;
	}
	p->map_id[RULES_MAP_REF_SLOT(m)] = id;
	p->n_maps = m + 1;
	struct group_key *g = bpf_map_lookup_elem(&group_maps, &id);
	if (g) {
		struct group_key k = *g;
		group_note_joined(c, &k);
	}
	return 0;
}

/* The walk's callbacks: one per kind of hook, since a non-sleepable
 * program may not even name bpf_copy_from_user. */
static long group_ref_step_nofault(__u64 i, struct group_ref_ctx *c)
{
	return group_ref_step(i, c, 0);
}

static long group_ref_step_sleepable(__u64 i, struct group_ref_ctx *c)
{
	return group_ref_step(i, c, 1);
}

/* The groups a load joins: those of every map it references (ld_imm64 map
 * fds and fd_array indexes, noted by the walk; and the fd_array_cnt maps
 * the kernel binds), and that of a pin the loader opened. Every map is
 * noted for the exit. A reference left out (past a cap, or an fd_array
 * the judge cannot read) is counted, and the load is unreadable: *unread
 * (its read_errors) grows, so that block_unreadable blocks it; *over says
 * how much of that is references past the cap. */
static __always_inline void group_referenced(struct task_struct *task, const struct rules_facts *f,
					     struct group_pending *p, const struct group_key *raw,
					     __u64 fd_array, __u32 fd_array_cnt, __u32 *unread, __u32 *over, const int kernel)
{
	__u32 zero = 0;
	struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);

	if (!cal)
		return;
	struct group_ref_ctx c = {.task = task, .f = f, .p = p, .cal = cal, .fd_array = fd_array};
	__u32 steps = f->map_refs;
	p->over = f->map_refs_over;
	if (fd_array_cnt > GROUP_REFS) {
		p->over += fd_array_cnt - GROUP_REFS;
		fd_array_cnt = GROUP_REFS;
	}
	steps += fd_array_cnt;
	if (steps)
		bpf_loop(steps, kernel == SRC_USER_SLEEPABLE ? group_ref_step_sleepable : group_ref_step_nofault, &c, 0);
	struct group_key *a = bpf_map_lookup_elem(&group_adopt, raw);
	if (a) {
		struct group_key k = *a;
		group_note_joined(&c, &k);
	}
	if (p->over)
		group_count(GROUP_STAT_REFS_OVER);
	if (p->unread)
		group_count(GROUP_STAT_REFS_UNREAD);
	*unread += p->over + p->unread;
	*over += p->over;
}

/* Adds the sum of joined group i to a group view (group_judge). */
struct group_view_ctx {
	struct group_pending *p;
	struct rules_facts *f;
};

static long group_view_step(__u64 i, struct group_view_ctx *c)
{
	if (i >= GROUP_REFS)
		return 1;
	struct group_acc *a = bpf_map_lookup_elem(&group_accs, &c->p->joined[i & (GROUP_REFS - 1)]);
	if (a)
		group_add_to_facts(c->f, a);
	return 0;
}

/*
 * What group_judge needs of one load, gathered before the judge takes a
 * rule table: the load's group, the groups of the maps it references and
 * its own counts, which wait in group_pending for its exit. Reading
 * fd_array can sleep on the sleepable hook (a page fault the loader can
 * stall at will), so it must not hold a table meanwhile. NULL when there
 * is nothing to judge with (no scratch, or group_pending is full).
 */
static __always_inline struct group_pending *group_gather(const struct rules_facts *f, struct group_scratch *gs,
							   struct task_struct *task, __u32 tid,
							   __u64 fd_array, __u32 fd_array_cnt, __u32 *unread, __u32 *over,
							   const int kernel)
{
	if (!gs) {
		group_count(GROUP_STAT_NOSCRATCH);
		return NULL;
	}
	if (bpf_map_update_elem(&group_pending, &tid, &zero_pending, BPF_ANY))
		return NULL;
	struct group_pending *p = bpf_map_lookup_elem(&group_pending, &tid);
	if (!p)
		return NULL;
	struct group_key raw = group_of_task(task);
	p->group = raw;
	group_find(&p->group);
	group_referenced(task, f, p, &raw, fd_array, fd_array_cnt, unread, over, kernel);
	p->add.progs = 1;
	group_add_facts(&p->add, f);
	return p;
}

/*
 * The group view of one load: its group's sum (and that of the group it
 * joins by a referenced prog_array) plus its own counts, judged with the
 * rules of scope group; a match is merged into res. p is group_gather's.
 * gs is per-CPU scratch, or the task's for the sleepable hook.
 */
static __always_inline void group_judge(const struct rules_table *table, const struct rules_facts *f,
					struct rules_result *res, struct group_scratch *gs,
					struct group_pending *p)
{
	if (!gs || !p)
		return;
	if (!table->group_n)
		return;
	group_count(GROUP_STAT_JUDGED);
	/* The group view: the load's own facts with the group's counts added. */
	bpf_probe_read_kernel(&gs->f, sizeof(gs->f), f);
	gs->f.scope = RULES_SCOPE_GROUP;
	struct group_acc *a = bpf_map_lookup_elem(&group_accs, &p->group);
	if (a)
		group_add_to_facts(&gs->f, a);
	/* and every group it joins: the union, at this load */
	struct group_view_ctx vc = {.p = p, .f = &gs->f};
	__u32 nj = p->n_joined;
	if (nj)
		bpf_loop(nj, group_view_step, &vc, 0);
	rules_evaluate(table, &gs->f, &gs->res);
	if (gs->res.action == RULES_ACTION_NONE)
		return;
#pragma unroll
	for (int i = 0; i < RULES_MATCHED_WORDS; i++)
		res->matched[i] |= gs->res.matched[i];
	if (res->first < 0 || (gs->res.first >= 0 && gs->res.first < res->first)) {
		res->first = gs->res.first;
		res->first_action = gs->res.first_action;
	}
	if (gs->res.first_block >= 0 && (res->first_block < 0 || gs->res.first_block < res->first_block))
		res->first_block = gs->res.first_block;
	if (gs->res.action > res->action)
		res->action = gs->res.action;
}

/* Joins group from into group to: to's sum takes from's, and from now
 * resolves to to. */
static __always_inline void group_join(const struct group_key *from, const struct group_key *to)
{
	if (group_eq(from, to))
		return;
	struct group_acc *src = bpf_map_lookup_elem(&group_accs, from);
	if (src) {
		struct group_acc *dst = bpf_map_lookup_elem(&group_accs, to);
		if (!dst) {
			bpf_map_update_elem(&group_accs, to, &zero_acc, BPF_NOEXIST);
			dst = bpf_map_lookup_elem(&group_accs, to);
		}
		if (dst)
			group_add_acc(dst, src);
		bpf_map_delete_elem(&group_accs, from);
	}
	bpf_map_update_elem(&group_parent, from, to, BPF_ANY);
	group_count(GROUP_STAT_JOINS);
}

/* The exit of a load that returned an fd: its joined groups and its maps
 * go into target (group_load_exit). */
struct group_exit_ctx {
	struct group_pending *p;
	struct group_key target;
};

/* joined[1 + i] into the target (joined[0], resolved) */
static long group_exit_join_rest(__u64 i, struct group_exit_ctx *c)
{
	if (i + 1 >= GROUP_REFS)
		return 1;
	struct group_key from = c->p->joined[(i + 1) & (GROUP_REFS - 1)];
	group_find(&from);
	group_join(&from, &c->target);
	return 0;
}

static long group_exit_map_step(__u64 i, struct group_exit_ctx *c)
{
	if (i >= GROUP_REFS)
		return 1;
	__u32 mid = c->p->map_id[i & (GROUP_REFS - 1)];
	/* a map whose group the judge did not note (past the cap) joins too */
	struct group_key *mg = bpf_map_lookup_elem(&group_maps, &mid);
	if (mg) {
		struct group_key from = *mg;
		group_find(&from);
		group_join(&from, &c->target);
	}
	bpf_map_update_elem(&group_maps, &mid, &c->target, BPF_ANY);
	return 0;
}

/* A judged load's exit: a load that returned an fd joins its group and
 * every group it referenced into one (the first referenced), which takes
 * its counts and all its maps; any other outcome drops them. */
static __always_inline void group_load_exit(__u32 tid, __s64 ret)
{
	struct group_pending *p = bpf_map_lookup_elem(&group_pending, &tid);
	if (!p)
		return;
	if (ret < 0) {
		bpf_map_delete_elem(&group_pending, &tid);
		return;
	}
	struct group_exit_ctx c = {.p = p, .target = p->group};
	__u32 nj = p->n_joined, nm = p->n_maps;
	if (nj) {
		c.target = p->joined[0];
		group_find(&c.target);
		struct group_key own = p->group;
		group_find(&own);
		group_join(&own, &c.target);
		if (nj > 1)
			bpf_loop(nj - 1, group_exit_join_rest, &c, 0);
	}
	struct group_key target = c.target;
	struct group_acc *dst = bpf_map_lookup_elem(&group_accs, &target);
	if (!dst) {
		bpf_map_update_elem(&group_accs, &target, &zero_acc, BPF_NOEXIST);
		dst = bpf_map_lookup_elem(&group_accs, &target);
	}
	if (dst)
		group_add_acc(dst, &p->add);
	/* Every map the program references is now the target's. */
	if (nm)
		bpf_loop(nm, group_exit_map_step, &c, 0);
	__u32 zero = 0;
	struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);
	if (cal) {
		__u32 id = group_prog_id((struct task_struct *)bpf_get_current_task(), ret, cal);
		if (id)
			bpf_map_update_elem(&group_progs, &id, &target, BPF_ANY);
	}
	group_count(GROUP_STAT_COMMITTED);
	bpf_map_delete_elem(&group_pending, &tid);
}
#else
static __always_inline void group_load_exit(__u32 tid, __s64 ret)
{
}
#endif

/* The part of union bpf_attr that BPF_MAP_*_ELEM uses. */
struct map_elem_attr {
	__u32 map_fd;
	__u32 _pad;
	__u64 key;
	__u64 value;
	__u64 flags;
};

/*
 * bpf() entry: a write into or delete from a prog_array is remembered until
 * its exit. The sensor's own writes teach it the f_op of map and program
 * fds (user space writes one program into a prog_array at start-up) and are
 * not reported.
 */
static __always_inline int group_on_enter(__u64 cmd, __u64 uattr, __u64 size)
{
#ifndef SENTRY_NO_LOOP
	if (cmd == BPF_MAP_CREATE || cmd == BPF_OBJ_GET) {
		__u32 zero = 0;
		struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		__u32 tid = (__u32)pid_tgid, c = cmd;
		if (cfg && !is_self(cfg, pid_tgid >> 32, (struct task_struct *)bpf_get_current_task()))
			bpf_map_update_elem(&group_opens, &tid, &c, BPF_ANY);
		return 0;
	}
#endif
	if (cmd == BPF_LINK_DETACH) {
		/* only the agent's own: its fd is a link the kernel made */
		__u32 zero = 0, lfd = 0;
		struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);
		struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		if (!cal || cal->link_fops || !cfg || !is_self(cfg, bpf_get_current_pid_tgid() >> 32, task) ||
		    size < sizeof(lfd) || bpf_probe_read_user(&lfd, sizeof(lfd), (const void *)uattr))
			return 0;
		struct file___grp *lf = group_fd_file(task, lfd);
		if (lf)
			cal->link_fops = (__u64)BPF_CORE_READ(lf, f_op);
		return 0;
	}
	if (cmd != BPF_MAP_UPDATE_ELEM && cmd != BPF_MAP_DELETE_ELEM)
		return 0;
	__u32 zero = 0;
	struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cal || !cfg)
		return 0;
	struct map_elem_attr attr = {};
	__u64 sz = size;
	if (sz > sizeof(attr))
		sz = sizeof(attr);
	if (sz < 24 || bpf_probe_read_user(&attr, sz, (const void *)uattr))
		return 0; /* the kernel fails it with EFAULT/EINVAL: nothing written */
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	int self = is_self(cfg, tgid, task);
	if (self) {
		struct file___grp *mf = group_fd_file(task, attr.map_fd);
		if (!mf)
			return 0;
		if (!cal->map_fops)
			cal->map_fops = (__u64)BPF_CORE_READ(mf, f_op);
		if (cmd == BPF_MAP_UPDATE_ELEM && !cal->prog_fops && group_prog_array(task, attr.map_fd, cal)) {
			__u32 vfd = 0;
			if (!bpf_probe_read_user(&vfd, sizeof(vfd), (const void *)attr.value)) {
				struct file___grp *pf = group_fd_file(task, vfd);
				if (pf)
					cal->prog_fops = (__u64)BPF_CORE_READ(pf, f_op);
			}
		}
		return 0;
	}
	struct bpf_map___grp *map = group_prog_array(task, attr.map_fd, cal);
	if (!map)
		return 0;
	if (bpf_map_update_elem(&group_writes, &tid, &zero_write, BPF_ANY)) {
		group_count(GROUP_STAT_WRITE_LOST);
		return 0;
	}
	struct sentry_prog_array_rec *w = bpf_map_lookup_elem(&group_writes, &tid);
	if (!w)
		return 0;
	w->h.kind = SENTRY_REC_PROG_ARRAY;
	w->h.pid = tgid;
	w->tid = tid;
	w->uid = (__u32)bpf_get_current_uid_gid();
	w->cmd = cmd;
	w->map_id = BPF_CORE_READ(map, id);
	w->key_read = !bpf_probe_read_user(&w->key, sizeof(w->key), (const void *)attr.key);
	bpf_get_current_comm(w->comm, sizeof(w->comm));
	if (cmd == BPF_MAP_UPDATE_ELEM && !bpf_probe_read_user(&w->value_fd, sizeof(w->value_fd), (const void *)attr.value))
		w->prog_id = group_prog_id(task, w->value_fd, cal);
	__u32 max = BPF_CORE_READ(map, max_entries);
	if (w->key_read && w->key < max) {
		struct bpf_array___grp *arr = (void *)map;
		__u32 mask = BPF_CORE_READ(arr, index_mask);
		void *slot = (void *)arr + bpf_core_field_offset(struct bpf_array___grp, ptrs) +
			     (__u64)(w->key & mask) * sizeof(void *);
		struct bpf_prog *old = NULL;
		bpf_probe_read_kernel(&old, sizeof(old), slot);
		if (old)
			w->old_prog_id = BPF_CORE_READ(old, aux, id);
	}
	return 0;
}

/* bpf() exit: report a remembered prog_array write with its result; a
 * write that succeeded joins the writer's group, the written program's and
 * the prog_array's into one. */
#ifndef SENTRY_NO_LOOP
/* bpf() exit of a BPF_MAP_CREATE or BPF_OBJ_GET that returned an fd: a new
 * map is its creator's (until a load joins it elsewhere); a pinned map or
 * program another group holds is adopted: the opener's next load joins
 * that group. */
static __always_inline void group_open_exit(__u32 tid, __s64 ret)
{
	__u32 *cmd = bpf_map_lookup_elem(&group_opens, &tid);
	if (!cmd)
		return;
	__u32 c = *cmd;
	bpf_map_delete_elem(&group_opens, &tid);
	__u32 zero = 0;
	struct group_calib *cal = bpf_map_lookup_elem(&group_calibration, &zero);
	if (ret < 0 || !cal)
		return;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct group_key raw = group_of_task(task);
	struct group_key *owner = NULL;
	struct bpf_map___grp *map = group_any_map(task, ret, cal);
	__u32 id = 0;
	if (map) {
		id = BPF_CORE_READ(map, id);
		if (c == BPF_MAP_CREATE) {
			struct group_key g = raw;
			group_find(&g);
			bpf_map_update_elem(&group_maps, &id, &g, BPF_NOEXIST);
			return;
		}
		owner = bpf_map_lookup_elem(&group_maps, &id);
	} else if (c == BPF_OBJ_GET) {
		id = group_prog_id(task, ret, cal);
		if (id)
			owner = bpf_map_lookup_elem(&group_progs, &id);
	}
	if (!owner)
		return;
	struct group_key o = *owner, g = raw;
	group_find(&o);
	group_find(&g);
	if (!group_eq(&o, &g))
		bpf_map_update_elem(&group_adopt, &raw, &o, BPF_ANY);
}
#endif

static __always_inline void group_on_exit(__u32 tid, __s64 ret)
{
#ifndef SENTRY_NO_LOOP
	group_open_exit(tid, ret);
#endif
	struct sentry_prog_array_rec *w = bpf_map_lookup_elem(&group_writes, &tid);
	if (!w)
		return;
	w->ret = ret;
	w->ktime_ns = bpf_ktime_get_ns();
	struct group_key g = group_of_task((struct task_struct *)bpf_get_current_task());
	group_find(&g);
#ifndef SENTRY_NO_LOOP
	if (ret == 0 && w->cmd == BPF_MAP_UPDATE_ELEM) {
		/* The array's group, if any, is where everything goes. */
		struct group_key *mg = bpf_map_lookup_elem(&group_maps, &w->map_id);
		struct group_key target = g;
		if (mg) {
			target = *mg;
			group_find(&target);
			group_join(&g, &target);
		}
		struct group_key *pg = w->prog_id ? bpf_map_lookup_elem(&group_progs, &w->prog_id) : NULL;
		if (pg) {
			struct group_key from = *pg;
			group_find(&from);
			group_join(&from, &target);
		}
		bpf_map_update_elem(&group_maps, &w->map_id, &target, BPF_ANY);
		g = target;
	}
#endif
	w->group = g;
	if (bpf_ringbuf_output(&events, w, sizeof(*w), BPF_RB_FORCE_WAKEUP))
		group_count(GROUP_STAT_WRITE_LOST);
	else
		group_count(GROUP_STAT_WRITES);
	bpf_map_delete_elem(&group_writes, &tid);
}

SEC("tracepoint/syscalls/sys_enter_bpf")
int sentry_group_enter_tp(struct sys_enter_bpf_ctx *ctx)
{
	return group_on_enter(ctx->cmd, ctx->uattr, ctx->size);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sentry_group_enter_btf, struct pt_regs *regs, long id)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	int compat = BPF_CORE_READ(t, thread_info.status) & TS_COMPAT;

	if (id == NR_BPF_X86_64 && !compat)
		return group_on_enter(regs->di, regs->si, regs->dx);
	if (id == NR_BPF_IA32 && compat)
		return group_on_enter((__u32)regs->bx, (__u32)regs->cx, (__u32)regs->dx);
	return 0;
}

#endif
