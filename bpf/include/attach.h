/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Attach records: what the kernel programs report when a loaded program is
 * attached, replaced or detached, and the table user space fills to block
 * attaches by target. Go types are generated from this file (bpf2go
 * -type), like sentry.h.
 */
#ifndef SENTRY_ATTACH_H
#define SENTRY_ATTACH_H

#define SENTRY_ATTACH_NAME_LEN 256 /* tracepoint, kprobe function or uprobe binary path */
#define SENTRY_ATTACH_SYMS 4       /* kprobe_multi symbols / uprobe_multi offsets carried */
#define SENTRY_ATTACH_SYM_LEN 64

/* Record kinds after sentry_record_kind's. */
enum sentry_attach_record_kind {
	SENTRY_REC_ATTACH = 16,
	SENTRY_REC_ATTACH_EXIT = 17,
};

/* How a program is attached (or detached): the operation. */
enum sentry_attach_op {
	SENTRY_ATTACH_LINK_CREATE = 1,    /* bpf(BPF_LINK_CREATE) */
	SENTRY_ATTACH_RAW_TP_OPEN = 2,    /* bpf(BPF_RAW_TRACEPOINT_OPEN) */
	SENTRY_ATTACH_PROG_ATTACH = 3,    /* bpf(BPF_PROG_ATTACH) */
	SENTRY_ATTACH_PROG_DETACH = 4,    /* bpf(BPF_PROG_DETACH) */
	SENTRY_ATTACH_LINK_UPDATE = 5,    /* bpf(BPF_LINK_UPDATE): a link's program replaced */
	SENTRY_ATTACH_LINK_DETACH = 6,    /* bpf(BPF_LINK_DETACH) */
	SENTRY_ATTACH_PERF_SET_BPF = 7,   /* ioctl(perf fd, PERF_EVENT_IOC_SET_BPF, prog fd) */
};

/* Where an attach record's name and perf fields come from (bits). */
enum sentry_attach_from {
	SENTRY_FROM_CALLER = 1,     /* name read from the caller's memory at entry */
	SENTRY_FROM_PERF_OPEN = 2,  /* name from what perf_event_open was given (kept per fd) */
	SENTRY_FROM_PERF_EVENT = 4, /* the target fd is a perf event: perf_type/config are its */
};

/* What the kernel table keys a blocked target by (struct sentry_attach_key.kind). */
enum sentry_attach_key_kind {
	SENTRY_KEY_TP_ID = 1,   /* a tracepoint's id (tracefs events/<sys>/<name>/id) */
	SENTRY_KEY_NAME = 2,    /* sentry_name_hash of a raw tracepoint, kprobe function or uprobe path */
	SENTRY_KEY_BTF_ID = 3,  /* the vmlinux BTF id of a traced function (fentry, tp_btf, lsm) */
	SENTRY_KEY_IFINDEX = 4, /* netns inode << 32 | ifindex: the index as the caller's namespace has it */
	SENTRY_KEY_CGROUP = 5,  /* cgroup id (the cgroup directory's inode) */
	SENTRY_KEY_NETNS = 6,   /* a flow dissector's network namespace (inode) */
	SENTRY_KEY_MAP_ID = 7,  /* a sockmap / sockhash (map id) */
};

struct sentry_attach_key {
	__u32 kind; /* enum sentry_attach_key_kind */
	__u32 _pad;
	__u64 value;
};

/* One attach, detach or replace, reported at syscall entry. */
struct sentry_attach {
	struct sentry_rec_hdr h; /* load_id: this operation's id, shared with its exit record */
	__u64 ktime_ns;
	__u64 cgroup_id;     /* the caller's cgroup */
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 op;            /* enum sentry_attach_op */
	__u32 attach_type;   /* enum bpf_attach_type as passed (0 where the op has none) */
	__u32 prog_fd;
	__u32 prog_id;       /* resolved from prog_fd in the caller's fd table (0: not a program) */
	__u32 prog_type;
	__u32 target_fd;     /* or ifindex (tcx, netkit, xdp, PROG_ATTACH with BPF_F_ATTACH... ) */
	__u32 flags;
	__u32 target_btf_id; /* LINK_CREATE's, else the program's own attach_btf_id */
	__u32 target_prog_id; /* target_fd resolved as a program (freplace) */
	__u32 replace_fd;     /* PROG_ATTACH replace_bpf_fd, LINK_UPDATE old_prog_fd */
	__u32 replace_prog_id;
	__u32 link_id;        /* LINK_UPDATE/LINK_DETACH: the link */
	__u64 target_cgroup;  /* target_fd resolved as a directory inode (cgroup id) */
	__u32 perf_type;      /* the perf event (ioctl, LINK_CREATE perf_event): attr.type */
	__u32 count;          /* kprobe_multi / uprobe_multi count */
	__u64 perf_config;    /* attr.config: the tracepoint id for PERF_TYPE_TRACEPOINT */
	__u64 perf_offset;    /* kprobe / uprobe offset (attr.config2), uprobe_multi pid */
	__u64 cookie;
	__u32 verdict;        /* enum sentry_verdict: kernel table on the target */
	__u32 action;         /* enum sentry_action */
	__s32 rule;           /* attach table entry that blocked (-1 none) */
	__u32 name_from;      /* enum sentry_attach_from bits: where name and the perf fields come from */
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 target_map_id;  /* target_fd resolved as a map (sockmap, sockhash: sk_msg, sk_skb) */
	__u32 netns_ino;      /* the caller's network namespace (ifindex and flow dissector targets are in it) */
	/* 1: the program was loaded through a BPF token (prog->aux->token,
	 * 6.9+): the kernel holds the token with the program. */
	__u32 via_token;
	__u64 judge_ns;       /* time from the hook's start to the report: what the sensor adds at entry */
	__u64 token_addr;     /* that struct bpf_token's address (the token record's token_addr) */
	__u64 token_userns;   /* token->userns->ns.inum */
	__u64 addrs[SENTRY_ATTACH_SYMS]; /* kprobe_multi addresses or uprobe_multi offsets */
	char comm[16];
	char name[SENTRY_ATTACH_NAME_LEN];
	char syms[SENTRY_ATTACH_SYMS][SENTRY_ATTACH_SYM_LEN]; /* kprobe_multi symbols */
};

/* The syscall's result for one attach record. */
struct sentry_attach_exit {
	struct sentry_rec_hdr h;
	__s64 ret;       /* link / perf fd, 0, or -errno */
	__u32 link_id;   /* the link created (LINK_CREATE, RAW_TP_OPEN) */
	__u32 killed;    /* a SIGKILL is pending on the caller */
	__u64 ktime_ns;
};

/* What perf_event_open was asked for, kept per (tgid, fd) for the attach. */
struct sentry_perf_open {
	__u32 type;
	__u32 _pad;
	__u64 config;
	__u64 config2;
	char name[SENTRY_ATTACH_NAME_LEN];
};

/*
 * The on-demand ioctl hook (sensor/ioctlgate.go): the ioctl programs are
 * attached only while a process that opened a perf event may still hold
 * one. The exit of every perf_event_open reports the new fd here, and in
 * enforce mode, while the hook is not attached, stops the caller
 * (SIGSTOP) until user space has attached it and continues it.
 */
struct sentry_ioctl_gate {
	__u32 on_demand;  /* 1: report perf_event_open results (the on-demand hook) */
	__u32 armed;      /* 1: the ioctl programs of the current mode are attached */
	__u32 stop;       /* 1: stop a caller while not armed (both modes; 0 only in tests) */
	__u32 self_tgid;  /* the agent, never stopped (known here before on_demand is set) */
	__u64 reported;   /* perf_event_open results reported */
	__u64 lost;       /* reports the ring could not take (the caller is killed in enforce mode) */
	__u64 stop_failed; /* bpf_send_signal(SIGSTOP) failed (the caller is reported, not stopped) */
};

/* What the ioctl hook was when a perf_event_open returned. */
enum sentry_perf_opened_state {
	SENTRY_PERF_OPENED_HOOKED = 0,  /* the ioctl programs were attached */
	SENTRY_PERF_OPENED_STOPPED = 1, /* not attached: the caller is stopped (SIGSTOP queued) */
	SENTRY_PERF_OPENED_UNSEEN = 2,  /* not attached, the caller runs on (the stop failed, or stops are off) */
};

/* One successful perf_event_open, seen at its exit. */
struct sentry_perf_opened {
	__u32 pid;        /* tgid */
	__u32 tid;
	__s32 fd;
	__u32 state;      /* enum sentry_perf_opened_state */
	__u64 start_ns;   /* the thread group leader's start_boottime: the process, not just its pid */
	__u64 ktime_ns;
};

#endif
