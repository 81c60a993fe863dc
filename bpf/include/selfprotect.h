/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The sentry protects its own BPF state from other processes, root
 * included: a bpf() call that would change one of its maps' elements
 * (update, delete, lookup-and-delete, freeze, batches), ask for a
 * write-only fd on one of them (MAP_GET_FD_BY_ID with BPF_F_WRONLY; the LSM
 * kernels also refuse write-only fds from OBJ_GET on its pins), or detach
 * or replace one of its links (LINK_DETACH, LINK_UPDATE) is refused (LSM
 * kernels: -EPERM from the bpf and bpf_map hooks) or answered with SIGKILL
 * before the call runs (the syscall hooks), in enforce mode; it is
 * reported (struct sentry_tamper) in every mode. The agent itself
 * (is_self) is exempt.
 *
 * Read access stays open: fds on its maps asked for with no flags or
 * BPF_F_RDONLY (bpftool map show and dump ask with no flags, and
 * inventories), on its programs and on its links (bpftool prog and link
 * show). Such an fd changes nothing by itself; the calls that would use it
 * to change something are the ones guarded here.
 *
 * Killing the caller at syscall entry does not stop the call itself (the
 * kill lands when it returns), so what the judges read cannot be written
 * through bpf() at all: config and rules are frozen, and the agent's
 * updates of config_staged and rules_staged are copied into them when the
 * update completes (commit_staged). Another process's update of a staged
 * map is reported, and its caller killed, but never copied.
 *
 * Included by sensor.bpf.c after its maps, is_self and the task views.
 */
#ifndef SENTRY_SELFPROTECT_H
#define SENTRY_SELFPROTECT_H

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2

#include "kstructs.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct sentry_own_key);
	__type(value, __u32);
} own_ids SEC(".maps");

/* The agent's thread group leader (struct task_struct *), written in the
 * agent's own context when its start is learnt (learn_self): the syscall
 * signal hooks find its parent through it. Trusted only while its tgid and
 * start still match config. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} self_task SEC(".maps");

#define STAGED_CONFIG 1
#define STAGED_RULES 2

/* An update of a staged map by the agent, from its entry to its exit
 * (commit_staged), by thread id. */
struct staged_commit {
	__u32 which; /* STAGED_CONFIG or STAGED_RULES */
	__u32 key;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct staged_commit);
} commits SEC(".maps");

const struct sentry_tamper *unused_tamper __attribute__((unused));
const enum sentry_obj *unused_obj __attribute__((unused));

/* A map's kernel address as a number: pointers to maps take no
 * arithmetic, so the address is copied out of the stack slot holding it. */
static __always_inline __u64 map_addr(void *m)
{
	__u64 a = 0;
	bpf_probe_read_kernel(&a, sizeof(a), &m);
	return a;
}

#ifndef SENTRY_NO_LOOP
#define SENTRY_OWN_MAPS_EXTRA(X) X(task_scratch) X(result_scratch)
#else
#define SENTRY_OWN_MAPS_EXTRA(X) X(legacy_state)
#endif
#define SENTRY_OWN_MAPS(X) X(events) X(inflight) X(losses) X(load_seq) X(facts_scratch) \
	X(chunk_scratch) X(rules) X(rules_readers) X(config) X(own_ids) X(config_staged) \
	X(rules_staged) X(commits) X(loader_rate) X(self_task) SENTRY_OWN_MAPS_EXTRA(X)

/* Whether addr is one of the sentry's maps. */
static __always_inline int own_map(__u64 addr)
{
	if (!addr)
		return 0;
#define SENTRY_IS(name) if (addr == map_addr(&name)) return 1;
	SENTRY_OWN_MAPS(SENTRY_IS)
#undef SENTRY_IS
	return 0;
}

/* Whether id is the id of one of the sentry's maps. */
static __always_inline int own_map_id(__u32 id)
{
	if (!id)
		return 0;
#define SENTRY_IS(name) if (id == BPF_CORE_READ((struct bpf_map *)map_addr(&name), id)) return 1;
	SENTRY_OWN_MAPS(SENTRY_IS)
#undef SENTRY_IS
	return 0;
}

static __always_inline int own_id(__u32 kind, __u32 id)
{
	struct sentry_own_key k = {.kind = kind, .id = id};
	return id && bpf_map_lookup_elem(&own_ids, &k) != NULL;
}

/* Whether op is the f_op of a link's file (attach.h: kallsyms' or the one
 * learnt from the sensor's own link; while neither is known, any). */
static __always_inline int guard_link_fops(__u64 op);

/* The private data of the current task's file descriptor fd (a struct
 * bpf_map or bpf_link for the commands guarded), its file's f_op in *op;
 * 0 if none. */
static __always_inline __u64 fd_private_op(__u32 fd, __u64 *op)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
	if (!file)
		return 0;
	*op = (__u64)BPF_CORE_READ(file, f_op);
	return (__u64)BPF_CORE_READ(file, private_data);
}

static __always_inline __u64 fd_private(__u32 fd)
{
	__u64 op;
	return fd_private_op(fd, &op);
}

/* Whether fd of the current task is one of the sentry's programs; its id
 * in *id. The file's private data is a struct bpf_prog only if its aux
 * points back to it (other fds hold a map, a link, a BTF, a cgroup...). */
static __always_inline int own_prog_fd(__u32 fd, __u32 *id)
{
	__u64 p = fd_private(fd);
	if (!p)
		return 0;
	struct bpf_prog_aux *aux = BPF_CORE_READ((struct bpf_prog *)p, aux);
	if (!aux || (__u64)BPF_CORE_READ(aux, prog) != p)
		return 0;
	__u32 pid = BPF_CORE_READ(aux, id);
	if (!own_id(SENTRY_OBJ_PROG, pid))
		return 0;
	*id = pid;
	return 1;
}

/* The first 48 bytes of union bpf_attr, as 32-bit words: every field the
 * guard reads is there. */
#define GUARD_ATTR_WORDS 12

/*
 * Whether the bpf() command cmd with attribute words w reaches for one of
 * the sentry's objects in a way that could change or stop it; *kind and
 * *id say which object.
 */
static __always_inline int guard_targets(__u32 cmd, const __u32 *w, __u32 *kind, __u32 *id)
{
	__u64 obj = 0;
	switch (cmd) {
	case BPF_MAP_GET_FD_BY_ID: /* map_id, next_id, open_flags */
		if (!(w[2] & BPF_F_WRONLY) || !own_map_id(w[0]))
			return 0;
		*kind = SENTRY_OBJ_MAP;
		*id = w[0];
		return 1;
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_DELETE_ELEM:
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
	case BPF_MAP_FREEZE: /* map_fd first */
		obj = fd_private(w[0]);
		break;
	case BPF_MAP_UPDATE_BATCH:
	case BPF_MAP_DELETE_BATCH:
	case BPF_MAP_LOOKUP_AND_DELETE_BATCH: /* batch: 4 pointers, count, map_fd */
		obj = fd_private(w[9]);
		break;
	case BPF_LINK_CREATE: /* prog_fd, target_fd: a program to attach to (freplace, fentry) */
		if (!own_prog_fd(w[1], id))
			return 0;
		*kind = SENTRY_OBJ_PROG;
		return 1;
	case BPF_LINK_UPDATE:
	case BPF_LINK_DETACH: { /* link_fd first */
		/* a link only if its file is one: another file's private data
		 * (a program's expected_attach_type, which the loader picks,
		 * sits where a link has its id) is not taken for a link */
		__u64 op = 0;
		__u64 l = fd_private_op(w[0], &op);
		if (!l || !guard_link_fops(op))
			return 0;
		__u32 lid = BPF_CORE_READ((struct bpf_link *)l, id);
		if (!own_id(SENTRY_OBJ_LINK, lid))
			return 0;
		*kind = SENTRY_OBJ_LINK;
		*id = lid;
		return 1;
	}
	default:
		return 0;
	}
	if (!own_map(obj))
		return 0;
	*kind = SENTRY_OBJ_MAP;
	*id = BPF_CORE_READ((struct bpf_map *)obj, id);
	return 1;
}

/* Reports the attempt and says what to do: SENTRY_ACT_MONITOR (let it
 * be), or the enforcer's action. The caller carries out a deny. */
static __always_inline __u32 guard_act(__u32 cmd, __u32 kind, __u32 id, const int enforcer)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 action;
	if (cfg && cfg->mode != SENTRY_MODE_ENFORCE)
		action = SENTRY_ACT_MONITOR;
	else if (enforcer == ENF_DENY)
		action = SENTRY_ACT_DENIED;
	else
		action = bpf_send_signal(SIGKILL) ? SENTRY_ACT_KILL_FAILED : SENTRY_ACT_KILLED;
	struct sentry_tamper *t = bpf_ringbuf_reserve(&events, sizeof(*t), 0);
	if (!t) {
		count_loss(SENTRY_LOSS_TAMPER_RESERVE);
		return action;
	}
	t->h.kind = SENTRY_REC_TAMPER;
	t->h.pid = pid_tgid >> 32;
	t->h.load_id = 0;
	t->cmd = cmd;
	t->obj_kind = kind;
	t->obj_id = id;
	t->action = action;
	t->uid = (__u32)bpf_get_current_uid_gid();
	t->tid = (__u32)pid_tgid;
	bpf_get_current_comm(t->comm, sizeof(t->comm));
	bpf_ringbuf_submit(t, BPF_RB_FORCE_WAKEUP);
	return action;
}

/* Whether the caller is the agent (exempt). Without a config nobody is. */
static __always_inline int guard_is_self(void)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	return cfg && is_self(cfg, bpf_get_current_pid_tgid() >> 32, (struct task_struct *)bpf_get_current_task());
}

/* Whether the caller may commit staged state: the agent, or anyone while
 * no agent is recorded (start-up, and a takeover after a clean exit). */
static __always_inline int may_commit(void)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	return cfg && (!cfg->self_tgid ||
		       is_self(cfg, bpf_get_current_pid_tgid() >> 32, (struct task_struct *)bpf_get_current_task()));
}

/*
 * An update of a staged map: remembered for its exit when the caller may
 * commit; 0 when it is not such an update. Reports for others go through
 * the guard as usual. key_ptr is the caller's pointer to the key.
 */
static __always_inline int stage(__u32 cmd, const __u32 *w)
{
	if (cmd != BPF_MAP_UPDATE_ELEM)
		return 0;
	__u64 m = fd_private(w[0]);
	__u32 which = 0;
	if (m && m == map_addr(&config_staged))
		which = STAGED_CONFIG;
	else if (m && m == map_addr(&rules_staged))
		which = STAGED_RULES;
	if (!which || !may_commit())
		return 0;
	struct staged_commit c = {.which = which};
	__u64 key_ptr = (__u64)w[2] | (__u64)w[3] << 32;
	if (bpf_probe_read_user(&c.key, sizeof(c.key), (const void *)key_ptr))
		return 1; /* the update fails the same way (EFAULT) */
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&commits, &tid, &c, BPF_ANY);
	return 1;
}

/* At a bpf() exit: copies what the agent just staged into the map the
 * judges read, if the update succeeded. */
static __always_inline void commit_staged(__s64 ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct staged_commit *c = bpf_map_lookup_elem(&commits, &tid);
	if (!c)
		return;
	struct staged_commit copy = *c;
	bpf_map_delete_elem(&commits, &tid);
	if (ret != 0)
		return;
	__u32 key = copy.key;
	if (copy.which == STAGED_CONFIG && key == 0) {
		struct sentry_config *v = bpf_map_lookup_elem(&config_staged, &key);
		if (v)
			bpf_map_update_elem(&config, &key, v, BPF_ANY);
	} else if (copy.which == STAGED_RULES && key < 2) {
		struct rules_table *v = bpf_map_lookup_elem(&rules_staged, &key);
		if (v)
			bpf_map_update_elem(&rules, &key, v, BPF_ANY);
	}
}

/* The syscall hooks' guard: attr is the caller's memory. */
static __always_inline void guard_syscall(__u64 cmd, __u64 uattr, __u64 size, const int enforcer)
{
	switch (cmd) {
	case BPF_MAP_GET_FD_BY_ID:
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_DELETE_ELEM:
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
	case BPF_MAP_FREEZE:
	case BPF_MAP_UPDATE_BATCH:
	case BPF_MAP_DELETE_BATCH:
	case BPF_MAP_LOOKUP_AND_DELETE_BATCH:
	case BPF_LINK_CREATE:
	case BPF_LINK_UPDATE:
	case BPF_LINK_DETACH:
		break;
	default:
		return;
	}
	__u32 w[GUARD_ATTR_WORDS] = {};
	__u64 sz = size;
	if (sz > sizeof(w))
		sz = sizeof(w);
	/* unreadable: the kernel's own copy fails the same way (EFAULT) */
	if (sz == 0 || bpf_probe_read_user(w, sz, (const void *)uattr))
		return;
	if (stage(cmd, w))
		return;
	__u32 kind = 0, id = 0;
	if (!guard_targets(cmd, w, &kind, &id) || guard_is_self())
		return;
	guard_act(cmd, kind, id, enforcer);
}

/* A BPF_PROG_LOAD whose attach_prog_fd (the union with attach_btf_obj_fd:
 * the kernel tries it as a program first) is one of the sentry's programs:
 * an fentry, fexit or freplace program on it. Reports it and says what to
 * do, as guard_act. */
static __always_inline __u32 guard_prog_load(__u32 attach_fd, const int enforcer)
{
	__u32 id = 0;
	if (!attach_fd || !own_prog_fd(attach_fd, &id) || guard_is_self())
		return SENTRY_ACT_NONE;
	return guard_act(BPF_PROG_LOAD, SENTRY_OBJ_PROG, id, enforcer);
}

/* The LSM kernels' guard: every bpf() command, with the kernel's copy of
 * attr. */
SEC("lsm/bpf")
int BPF_PROG(sentry_lsm_guard, int cmd, union bpf_attr *kattr, unsigned int size)
{
	__u32 w[GUARD_ATTR_WORDS] = {};
	if (cmd == BPF_PROG_LOAD) {
		/* the kernel's copy is zero past what the caller gave */
		__u32 fd = 0;
		bpf_probe_read_kernel(&fd, sizeof(fd), (void *)kattr + offsetof(struct prog_load_attr, attach_btf_obj_fd));
		return guard_prog_load(fd, ENF_DENY) == SENTRY_ACT_DENIED ? -EPERM : 0;
	}
	if (bpf_probe_read_kernel(w, sizeof(w), kattr))
		return 0;
	if (stage(cmd, w))
		return 0;
	__u32 kind = 0, id = 0;
	if (!guard_targets(cmd, w, &kind, &id) || guard_is_self())
		return 0;
	return guard_act(cmd, kind, id, ENF_DENY) == SENTRY_ACT_DENIED ? -EPERM : 0;
}

/* A new fd on a map, from any command (MAP_GET_FD_BY_ID, OBJ_GET on a
 * pin): refused when it is write-only on one of the sentry's maps (one
 * that can read serves inspection; its writes are refused by the bpf
 * hook). */
SEC("lsm/bpf_map")
int BPF_PROG(sentry_lsm_guard_map, struct bpf_map *map, unsigned int fmode)
{
	if ((fmode & (FMODE_READ | FMODE_WRITE)) != FMODE_WRITE)
		return 0;
	__u64 addr = map_addr(map);
	if (!own_map(addr) || guard_is_self())
		return 0;
	return guard_act(BPF_OBJ_GET, SENTRY_OBJ_MAP, BPF_CORE_READ(map, id), ENF_DENY) == SENTRY_ACT_DENIED ? -EPERM : 0;
}

/*
 * Signals to the agent. Another process may send it 0 (does it exist?),
 * SIGHUP (reload the rules) and the signals whose default action is to
 * ignore or continue (SIGCHLD, SIGCONT, SIGURG, SIGWINCH); every other one
 * would stop or end it (SIGKILL, SIGTERM, SIGINT, SIGQUIT, SIGSTOP,
 * SIGTSTP, SIGUSR1, real-time signals, ...). Signals the kernel itself
 * sends (a terminal's Ctrl-C, SIGPIPE, a fault) never reach these hooks.
 */
#define SIG_HUP 1
#define SIG_CHLD 17
#define SIG_CONT 18
#define SIG_URG 23
#define SIG_WINCH 28

static __always_inline int harmless_signal(__u32 sig)
{
	return sig == 0 || sig == SIG_HUP || sig == SIG_CHLD || sig == SIG_CONT || sig == SIG_URG || sig == SIG_WINCH;
}

/*
 * Whether the current task may stop the agent whose thread group leader is
 * agent: the agent itself, the init process of the initial pid namespace
 * (tgid 1 there, the service manager), or the agent's parent (whoever
 * started it: the service manager again, a shell, a supervisor, a test).
 * All by kernel task pointers, never by name or by a pid left behind.
 */
static __always_inline int signal_sender_allowed(struct task_struct *agent)
{
	if ((bpf_get_current_pid_tgid() >> 32) == 1)
		return 1;
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(cur, group_leader);
	if (leader == agent)
		return 1;
	return BPF_CORE_READ(agent, real_parent, group_leader) == leader;
}

static __always_inline void signal_report(__u32 sig, __u32 agent_tgid, __u32 action)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sentry_tamper *t = bpf_ringbuf_reserve(&events, sizeof(*t), 0);
	if (!t) {
		count_loss(SENTRY_LOSS_TAMPER_RESERVE);
		return;
	}
	t->h.kind = SENTRY_REC_TAMPER;
	t->h.pid = pid_tgid >> 32;
	t->h.load_id = 0;
	t->cmd = sig;
	t->obj_kind = SENTRY_OBJ_AGENT;
	t->obj_id = agent_tgid;
	t->action = action;
	t->uid = (__u32)bpf_get_current_uid_gid();
	t->tid = (__u32)pid_tgid;
	bpf_get_current_comm(t->comm, sizeof(t->comm));
	bpf_ringbuf_submit(t, BPF_RB_FORCE_WAKEUP);
}

/* LSM kernels: a signal from a user process (the kernel's own never come
 * here) to any thread of the agent. Refused in enforce mode when
 * guard_signals is set; reported always. */
SEC("lsm/task_kill")
int BPF_PROG(sentry_lsm_guard_kill, struct task_struct *p, void *info, int sig, const void *cred)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || harmless_signal(sig))
		return 0;
	__u32 tgid = BPF_CORE_READ(p, tgid);
	if (!is_self(cfg, tgid, p))
		return 0;
	struct task_struct *agent = BPF_CORE_READ(p, group_leader);
	if (signal_sender_allowed(agent))
		return 0;
	__u32 action = SENTRY_ACT_MONITOR;
	if (cfg->mode == SENTRY_MODE_ENFORCE && cfg->guard_signals)
		action = SENTRY_ACT_DENIED;
	signal_report(sig, tgid, action);
	return action == SENTRY_ACT_DENIED ? -EPERM : 0;
}

/*
 * The syscall hooks: a tracepoint cannot stop a signal, so a signal to the
 * agent is reported (action NONE) before it lands, if the agent lives long
 * enough to read it (SIGKILL: it is left in the ring; a pinned sensor keeps
 * enforcing without the agent). pid is the target as the sender names it:
 * senders in other pid namespaces name it by another number and are not
 * seen, nor are pidfds.
 */
static __always_inline int signal_enter(__s64 pid, __u64 sig)
{
	__u32 zero = 0;
	struct sentry_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || pid <= 0 || harmless_signal(sig) || sig > 64 || !cfg->self_tgid || (__u64)pid != cfg->self_tgid)
		return 0;
	__u64 *at = bpf_map_lookup_elem(&self_task, &zero);
	if (!at || !*at)
		return 0;
	struct task_struct *agent = (struct task_struct *)*at;
	/* the recorded task is still the agent (not freed and reused) */
	if (!is_self(cfg, BPF_CORE_READ(agent, tgid), agent) || signal_sender_allowed(agent))
		return 0;
	signal_report(sig, cfg->self_tgid, SENTRY_ACT_NONE);
	return 0;
}

/* syscalls:sys_enter_* records: the arguments as 64-bit words (the same
 * shape as attach.h's struct sys_enter_args_ctx). */
struct sys_enter_sig_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

SEC("tracepoint/syscalls/sys_enter_kill")
int sentry_signal_kill(struct sys_enter_sig_ctx *ctx)
{
	return signal_enter((__s32)ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_tgkill")
int sentry_signal_tgkill(struct sys_enter_sig_ctx *ctx)
{
	return signal_enter((__s32)ctx->args[0], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_tkill")
int sentry_signal_tkill(struct sys_enter_sig_ctx *ctx)
{
	return signal_enter((__s32)ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_rt_sigqueueinfo")
int sentry_signal_sigqueue(struct sys_enter_sig_ctx *ctx)
{
	return signal_enter((__s32)ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_rt_tgsigqueueinfo")
int sentry_signal_tgsigqueue(struct sys_enter_sig_ctx *ctx)
{
	return signal_enter((__s32)ctx->args[0], ctx->args[2]);
}

#endif
