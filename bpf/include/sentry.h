/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Records the sensor's kernel programs write to the ring buffer, and the
 * tables user space fills. Go types are generated from these by bpf2go
 * (-type), so this file is the single definition shared by C and Go.
 */
#ifndef SENTRY_H
#define SENTRY_H

#define SENTRY_COMM_LEN 16
#define SENTRY_NAME_LEN 16     /* BPF_OBJ_NAME_LEN */
#define SENTRY_LICENSE_LEN 64
#define SENTRY_EXE_LEN 512     /* task->mm->exe_file path, components leaf first */
#define SENTRY_EXE_DEPTH 32    /* path components walked at most */
#define SENTRY_CHUNK_INSNS 512 /* instructions per chunk record */
#define SENTRY_MAX_INSNS 1000000
#define SENTRY_HELPER_MAX 256 /* RULES_HELPER_MAX: higher ids are counted in helper_other */
#define SENTRY_MATCHED_WORDS 16 /* RULES_MATCHED_WORDS: the verdict's bitmap of matching slots */

enum sentry_record_kind {
	SENTRY_REC_HEADER = 1,
	SENTRY_REC_CHUNK = 2,
	SENTRY_REC_VERDICT = 3,
	SENTRY_REC_EXIT = 4,
	SENTRY_REC_TAMPER = 5, /* another process reached for the sentry's own BPF objects */
	SENTRY_REC_PROG_ARRAY = 6, /* a write into a prog_array (bpf/group.h) */
	SENTRY_REC_TOKEN = 7, /* a BPF_TOKEN_CREATE returned */
	SENTRY_REC_MAP_CREATE = 8, /* a BPF_MAP_CREATE through a BPF token returned */
};

/* The kind of one of the sentry's own BPF objects (struct sentry_tamper). */
enum sentry_obj {
	SENTRY_OBJ_MAP = 1,
	SENTRY_OBJ_PROG = 2,
	SENTRY_OBJ_LINK = 3,
	SENTRY_OBJ_AGENT = 4, /* a signal to the agent: cmd is the signal, obj_id the agent's tgid */
};

/* Why something was lost or could not be read: index into the losses map. */
enum sentry_loss {
	SENTRY_LOSS_HEADER_RESERVE = 0, /* ring buffer full: header record dropped */
	SENTRY_LOSS_CHUNK_RESERVE = 1,  /* ring buffer full: an instruction chunk dropped */
	SENTRY_LOSS_VERDICT_RESERVE = 2,
	SENTRY_LOSS_EXIT_RESERVE = 3,
	SENTRY_LOSS_ATTR_READ = 4,      /* bpf_attr unreadable from user memory */
	SENTRY_LOSS_INSN_READ = 5,      /* an instruction chunk unreadable (not resident, bad pointer) */
	SENTRY_LOSS_INFLIGHT_FULL = 6,  /* enter/exit pairing table full: outcome unknown */
	SENTRY_LOSS_TOO_MANY_INSNS = 7, /* insn_cnt above SENTRY_MAX_INSNS: only the first ones read */
	/* A load that could not be judged, decided by sentry_config.on_error: */
	SENTRY_LOSS_NO_SCRATCH = 8,     /* no facts/chunk scratch (task storage allocation failed) */
	SENTRY_LOSS_NO_TABLE = 9,       /* config or rule table lookup failed */
	SENTRY_LOSS_GATE_UNJUDGED = 10, /* the 5.10 LSM gate saw a load its judge did not record */
	SENTRY_LOSS_TAMPER_RESERVE = 11, /* ring buffer full: a tamper record dropped (the action was still taken) */
	SENTRY_LOSS_RATE_LIMITED = 12,  /* a load judged but not captured: its loader is over its rate */
	SENTRY_LOSS_ATTACH_RESERVE = 13, /* ring buffer full: an attach or its exit record dropped */
	SENTRY_LOSS_NR = 14,
};

/* What a load that cannot be judged gets in enforce mode (--on-error). */
enum sentry_on_error {
	SENTRY_ON_ERROR_BLOCK = 0, /* the default: fail closed */
	SENTRY_ON_ERROR_ALLOW = 1,
};

enum sentry_verdict {
	SENTRY_VERDICT_ALLOW = 0,
	SENTRY_VERDICT_ALERT = 1,
	SENTRY_VERDICT_BLOCK = 2,
};

/* What the kernel side did about a block verdict. */
enum sentry_action {
	SENTRY_ACT_NONE = 0,
	SENTRY_ACT_KILLED = 1,     /* bpf_send_signal(SIGKILL) succeeded */
	SENTRY_ACT_KILL_FAILED = 2,
	SENTRY_ACT_CORRUPTED = 3,  /* insn 0 rewritten to BPF_EXIT */
	SENTRY_ACT_CORRUPT_FAILED = 4,
	SENTRY_ACT_MONITOR = 5,    /* block verdict, but monitor mode */
	SENTRY_ACT_SELF = 6,       /* the sensor's own load: never blocked */
	SENTRY_ACT_DENIED = 7,     /* an LSM hook returned -EPERM: never verified, no id */
};

enum sentry_mode {
	SENTRY_MODE_MONITOR = 0,
	SENTRY_MODE_ENFORCE = 1,
};

/*
 * What the allowlist (lock mode, bpf/allowlist.h) said about a load; the
 * verdict record's lock field. Anything from NOT_LISTED on blocks.
 */
enum sentry_lock {
	SENTRY_LOCK_OFF = 0,        /* lock mode off, or the load is outside its scope */
	SENTRY_LOCK_LISTED = 1,     /* the fingerprint is on the allowlist */
	SENTRY_LOCK_SELF = 2,       /* the agent's own load (tgid and start time) */
	SENTRY_LOCK_REFUSED = 3,    /* the kernel refuses it anyway (no CAP_BPF/CAP_SYS_ADMIN) */
	SENTRY_LOCK_NOT_LISTED = 4, /* the fingerprint is not on the allowlist */
	SENTRY_LOCK_NO_LIST = 5,    /* no allowlist installed (lookup failed): fail closed */
	SENTRY_LOCK_PARTIAL = 6,    /* instructions not all read: no whole fingerprint */
};

/* Every record starts with this. */
struct sentry_rec_hdr {
	__u32 kind;     /* enum sentry_record_kind */
	__u32 pid;      /* loader's tgid: attributes a load even when its header was lost */
	__u64 load_id;  /* unique per BPF_PROG_LOAD call: (cpu << 48) | per-CPU sequence */
};

struct sentry_header {
	struct sentry_rec_hdr h;
	__u64 ktime_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 attr_size;   /* the size argument of bpf() */
	__u32 prog_type;
	__u32 insn_cnt;    /* as declared in the attr */
	__u32 prog_flags;
	__u32 expected_attach_type;
	__u32 attach_btf_id;
	__u32 attach_btf_obj_fd; /* or attach_prog_fd */
	__u32 kern_version;
	__u32 chunks;      /* chunk records that follow (ceil(read insns / CHUNK)) */
	__u32 exe_truncated; /* the path walk stopped before the root */
	/* The loader has neither CAP_BPF nor CAP_SYS_ADMIN and the type needs
	 * one: the kernel will refuse the load (EPERM), so its instructions
	 * were neither read nor judged (chunks = 0). */
	__u32 unprivileged;
	__u64 insns_ptr;
	__u64 exe_ino;     /* the executable's identity, as the kernel sees it (0: no mm) */
	__u32 exe_dev;     /* kernel dev_t: MAJOR << 20 | MINOR */
	/* The loader (tgid) had more instructions captured in the current
	 * window than sentry_config.loader_insns allows: judged in full, but
	 * its instructions are not copied to the ring buffer (chunks = 0). */
	__u32 rate_limited;
	/* Provenance (docs/PROVENANCE.md), from the attr: zero where the attr
	 * (or, on the LSM hooks, the running kernel's union bpf_attr) has no
	 * such field. */
	__u64 signature;        /* user pointer to a PKCS#7 signature; 0: unsigned */
	__u32 signature_size;
	__s32 keyring_id;       /* 0..2 system keyrings, negative KEY_SPEC_*, else a key serial */
	__s32 prog_token_fd;    /* meaningful when prog_flags has BPF_F_TOKEN_FD */
	/* 1: judged on lsm/bpf_prog_load with a signature: the kernel verified
	 * it before that hook runs, so reaching the hook proves it valid. */
	__u32 sig_verified;
	/* The file behind prog_token_fd when BPF_F_TOKEN_FD is set, read at
	 * the load (the loader may be gone before user space looks): its
	 * inode and the kernel dev_t of its superblock; 0 when no such fd. */
	__u32 token_dev;
	__u64 token_ino;
	/* 1: reported from the syscall's exit on the lsm/bpf_prog_load hook:
	 * the kernel refused the load before that hook ran (a token that does
	 * not allow it, a bad attr, a signature), so no hook judged it. */
	__u32 before_hook;
	__u32 _pad_bh;
	char comm[SENTRY_COMM_LEN];
	char name[SENTRY_NAME_LEN];
	char license[SENTRY_LICENSE_LEN];
	/* The loader's executable path, components from the file up to the
	 * root, each followed by '/': "bpfload/tmp/" for /tmp/bpfload. */
	char exe[SENTRY_EXE_LEN];
};

struct sentry_chunk {
	struct sentry_rec_hdr h;
	__u32 index;  /* chunk number, 0-based */
	__u32 count;  /* valid instructions in data */
	__u32 read_err; /* non-zero: bpf_probe_read_user failed, data is zeros */
	__u32 _pad;
	__u8 data[SENTRY_CHUNK_INSNS * 8];
};

struct sentry_verdict_rec {
	struct sentry_rec_hdr h;
	__u32 verdict;       /* enum sentry_verdict (= enum rules_action) */
	__u32 action;        /* enum sentry_action */
	__s32 rule_index;    /* rules_table slot: first block rule, else first match; -1 none */
	__u32 generation;    /* rules_table.generation the verdict was made with */
	__u64 matched;       /* bitmap of matching rule slots 0-63 (matched_more: the rest) */
	__u64 insn_hash;     /* rules_hash (rules_eval.h) over all instructions read */
	__u32 insns_read;
	__u32 read_errors;
	__u32 chunks_lost;   /* chunk records that could not be reserved */
	__u32 calls_helper;
	__u32 calls_sub;
	__u32 calls_kfunc;
	__u32 helper_other;  /* helper calls with ids ≥ SENTRY_HELPER_MAX */
	__u32 error;         /* 1 + enum sentry_loss that kept the load from being judged
	                        (verdict by on_error); 0: judged */
	__u64 walk_ns;       /* time spent reading and walking the instructions */
	__u32 lock;          /* enum sentry_lock */
	__u32 refs_over;     /* of read_errors: group map references past the cap
	                        (GROUP_REFS), which block_unreadable blocks too */
	__u32 helper_count[SENTRY_HELPER_MAX];
	__u64 matched_more[SENTRY_MATCHED_WORDS - 1]; /* matching slots 64 and up */
};

struct sentry_exit {
	struct sentry_rec_hdr h;
	__s64 ret;        /* fd, or -errno */
	__u32 prog_id;    /* resolved from the new fd in the loader's fd table */
	__u32 killed;     /* this sensor sent the loader SIGKILL */
	__u8 tag[8];
	__u64 ktime_ns;
	/* A load issued from inside the kernel (a syscall program's
	 * bpf_sys_bpf during its caller's BPF_PROG_TEST_RUN), seen by an LSM
	 * hook: SENTRY_INNER_* flags, and the loader program the caller ran
	 * (0: not resolved). For an inner load ret is not an fd: 0 loaded
	 * (prog_id set), -errno denied by the sentry. */
	__u32 inner;
	__u32 loader_prog_id;
	__u8 loader_tag[8];
	/* a SIGKILL is pending on the loader at the call's return, whoever
	 * sent it: with killed 0, another sensor (an older pinned instance)
	 * or another process killed it */
	__u32 sigkill;
	__u32 _pad;
};

#define SENTRY_INNER 1		/* an inner load (the flags below only with it) */
#define SENTRY_INNER_FAILED 2	/* judged, then failed later (verifier, another LSM): errno unknown */

/*
 * A bpf() call of another process on one of the sentry's own objects that
 * could change or stop it (bpf/include/selfprotect.h): a writable fd on
 * one of its maps, an update or delete of their elements, a detach or
 * update of one of its links, a load or link attaching to one of its
 * programs; or a signal of another process to the agent (obj_kind
 * SENTRY_OBJ_AGENT, cmd: the signal). action: what was done (enum
 * sentry_action: KILLED, DENIED, MONITOR, KILL_FAILED; NONE: a signal seen
 * by a syscall hook, which cannot stop it).
 */
struct sentry_tamper {
	struct sentry_rec_hdr h; /* load_id 0 */
	__u32 cmd;      /* enum bpf_cmd */
	__u32 obj_kind; /* enum sentry_obj */
	__u32 obj_id;   /* the object's kernel id */
	__u32 action;
	__u32 uid;
	__u32 tid;
	char comm[SENTRY_COMM_LEN];
};

/* Ids of the sentry's programs and links, filled by user space after
 * attaching (its maps the kernel side knows by itself). */
struct sentry_own_key {
	__u32 kind; /* enum sentry_obj */
	__u32 id;
};

/*
 * One BPF_TOKEN_CREATE (6.9+), seen at the syscall's exit: who created it
 * and, when it succeeded, the token as the kernel holds it (struct
 * bpf_token behind the new fd). Tokens do not exist before 6.9: there the
 * record never comes.
 */
struct sentry_token_rec {
	struct sentry_rec_hdr h;
	__s64 ret;          /* the token fd, or -errno */
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 bpffs_fd;     /* attr->token_create.bpffs_fd */
	__u64 exe_ino;      /* the creator's executable */
	__u32 exe_dev;
	__u32 resolved;     /* 1: the fields below were read from the new token */
	__u64 token_ino;    /* the token file's inode, on the bpffs superblock */
	__u32 token_dev;
	__u32 _pad;
	__u64 userns;       /* token->userns->ns.inum */
	__u64 allowed_cmds;
	__u64 allowed_maps;
	__u64 allowed_progs;
	__u64 allowed_attachs;
	__u64 ktime_ns;
	/* The struct bpf_token's kernel address: what a program loaded
	 * through it points to (prog->aux->token), for its attaches. */
	__u64 token_addr;
	char comm[SENTRY_COMM_LEN];
};

/*
 * A BPF_MAP_CREATE with BPF_F_TOKEN_FD (6.9+): a map made with the power a
 * token delegates. Reported at the syscall's exit with the attr as passed.
 */
struct sentry_map_create {
	struct sentry_rec_hdr h;
	__s64 ret;          /* the map fd, or -errno */
	__u64 ktime_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 map_type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
	__s32 token_fd;     /* attr->map_token_fd */
	__u64 token_ino;    /* the file behind token_fd at entry (0: none) */
	__u32 token_dev;
	__u32 map_id;       /* the new map's id (0: failed) */
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 _pad;
	char comm[SENTRY_COMM_LEN];
	char name[SENTRY_NAME_LEN];
};

struct sentry_config {
	__u32 mode;        /* enum sentry_mode */
	/* The agent's identity: its tgid and its thread group leader's
	 * start_boottime in nanoseconds. Both must match, so a process that
	 * gets a dead agent's pid again (even within the same clock tick) is
	 * not the agent. tgid 0: no agent (cleared on exit). start 0: not yet
	 * learnt; the exit hook fills it in from the first bpf() call the
	 * agent makes after writing its tgid (user space cannot read the
	 * nanosecond value: /proc rounds it to 10 ms ticks). */
	__u32 self_tgid;
	__u32 block_unreadable; /* block when instructions could not be read */
	__u32 on_error;    /* enum sentry_on_error */
	__u64 self_start_ns;
	/* Which of the two rule tables (rules map, index 0 or 1) is judged
	 * with. A reload writes the other one, then switches this index, so
	 * a load never sees a half-written table (see rules_readers). */
	__u32 rules_active;
	/* Per-loader capture rate: a tgid may have at most loader_insns
	 * instructions copied into the ring buffer per loader_window_ns (the
	 * first load of a window always is); 0: no limit. */
	__u32 loader_insns;
	__u64 loader_window_ns;
	/* Lock mode: a load whose fingerprint is not in the allowlist map is
	 * blocked (bpf/allowlist.h); the agent's own loads excepted. */
	__u32 lock;
	/* Non-zero: on LSM kernels refuse (task_kill) signals that would stop
	 * or end the agent from any process but the agent, its parent and
	 * init (selfprotect.h); 0: report them only. */
	__u32 guard_signals;
	/* Non-zero: the lock applies only to loaders in this cgroup v2 (its
	 * id, exactly; not its descendants). 0: every loader. */
	__u64 lock_cgroup;
	/* enum sentry_kattr bits: which provenance fields the running kernel's
	 * union bpf_attr has (from its BTF). The LSM hooks read the kernel's
	 * copy, whose tail past its own union is other stack data. */
	__u32 kattr;
	__u32 _pad_kattr;
};

enum sentry_kattr {
	SENTRY_KATTR_TOKEN = 1 << 0,     /* prog_token_fd (6.9+) */
	SENTRY_KATTR_SIGNATURE = 1 << 1, /* signature, signature_size, keyring_id (6.18+) */
};

#endif
