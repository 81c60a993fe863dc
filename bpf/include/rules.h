/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kernel rule tables: the part of the rule language the kernel can evaluate
 * synchronously at BPF_PROG_LOAD (helper counts, helpers_only, helpers_any,
 * prog_type, expected attach type, instruction-count range, prog_name and
 * loader comm exact/prefix, loader uid, loader executable identity, allowlist by instruction hash).
 * User space (package rules) compiles YAML rules into struct rules_table;
 * Go types are generated from this file by bpf2go (-type), never mirrored
 * by hand. The evaluator is in rules_eval.h.
 *
 * Include after a header that defines __u8/__u32/__u64 (vmlinux.h or
 * linux/types.h).
 */
#ifndef EBPF_SENTRY_RULES_H
#define EBPF_SENTRY_RULES_H

#define RULES_MAX 1024        /* rules in one table */
#define RULES_MATCHED_WORDS (RULES_MAX / 64) /* the result bitmap's words */
#define RULES_HELPER_MAX 256  /* helper ids counted; calls of higher ids go to helper_other */
#define RULES_NAME_LEN 16     /* BPF_OBJ_NAME_LEN and TASK_COMM_LEN */
#define RULE_HELPERS 16       /* minimum-count entries per rule */
#define RULE_NAMES 4          /* prog_name patterns per rule (any of) */
#define RULE_COMMS 4          /* loader comm patterns per rule (any of) */
#define RULE_UIDS 4           /* loader uids per rule (any of) */
#define RULE_HASHES 8         /* allowlisted instruction hashes per rule */
#define RULE_EXES 4           /* loader executable identities per rule (any of) */
#define RULES_MAP_REFS 64     /* distinct map references of a load noted for its group (a power of 2; the kernel's MAX_USED_MAPS) */
/* n masked for an index below RULES_MAP_REFS, in a form the compiler
 * cannot drop after a bounds check (the verifier may not link the copy it
 * checked to the one it indexes with). */
#define RULES_MAP_REF_SLOT(n) ({ __u64 _s = (n); asm volatile("%0 &= %1" : "+r"(_s) : "i"(RULES_MAP_REFS - 1)); _s; })
#define RULES_MAP_REF_IDX 0x80000000U /* in rules_facts.map_ref: an fd_array index, not an fd */

enum rules_action {
	RULES_ACTION_NONE = 0,  /* empty slot: never matches */
	RULES_ACTION_ALERT = 1,
	RULES_ACTION_BLOCK = 2,
};

enum rules_flag {
	RULES_F_HELPERS_ONLY = 1 << 0,   /* no helper outside allowed[] is called */
	RULES_F_HELPERS_ANY = 1 << 1,    /* at least one helper of any_of[] is called */
	RULES_F_HELPERS_CALLED = 1 << 2, /* helper minimums apply only to called helpers, and
	                                    at least one listed helper is called (the seed) */
	RULES_F_PROG_TYPE = 1 << 3,      /* prog_type bit set in prog_types */
	RULES_F_ATTACH_TYPE = 1 << 4,    /* expected_attach_type bit set in attach_types */
	RULES_F_INSN_RANGE = 1 << 5,     /* insn_min <= insn_cnt <= insn_max */
	RULES_F_NAME_NOT = 1 << 6,       /* names[] is an exception: none may match */
	/* 1 << 7 was a comm exception: a comm is chosen by the process
	 * (prctl PR_SET_NAME), so it can never be an exception. */
	RULES_F_UID_NOT = 1 << 8,
	RULES_F_EXE_NOT = 1 << 9,        /* exes[] is an exception: none may match */
	RULES_F_GROUP = 1 << 10,         /* scope group: judged only against a group view */
};

/* What a rules_facts describes (docs/GROUPS.md). */
enum rules_scope {
	RULES_SCOPE_PROGRAM = 0, /* one program's load */
	RULES_SCOPE_GROUP = 1,   /* the load's metadata, helper counts summed over its loader group */
};

/*
 * Where a load comes from (docs/PROVENANCE.md): what its attr says about a
 * signature and a BPF token. Exactly one RULES_PROV_KEYRING_* bit is set.
 */
enum rules_prov {
	RULES_PROV_SIGNED = 1 << 0,    /* attr->signature is set */
	RULES_PROV_TOKEN = 1 << 1,     /* prog_flags has BPF_F_TOKEN_FD */
	RULES_PROV_VERIFIED = 1 << 2,  /* the kernel verified the signature (known on lsm/bpf_prog_load only) */
	RULES_PROV_KEYRING_NONE = 1 << 8,    /* unsigned */
	RULES_PROV_KEYRING_SYSTEM = 1 << 9,  /* keyring_id 0..2: builtin, secondary, platform */
	RULES_PROV_KEYRING_BPF = 1 << 10,    /* a dedicated BPF keyring (no mainline kernel yet) */
	RULES_PROV_KEYRING_USER = 1 << 11,   /* KEY_SPEC_USER_KEYRING or a key serial */
	RULES_PROV_KEYRING_SESSION = 1 << 12, /* the caller's thread/process/session keyrings */
};

/*
 * A 16-byte string pattern, compared eight bytes at a time: a string s
 * matches when (s ^ text) & mask is zero in both words. An exact pattern's
 * mask covers its bytes and the terminating NUL, a prefix pattern's only its
 * bytes. Bytes are in memory order (the words are little-endian loads).
 */
struct rules_str {
	__u64 text[2];
	__u64 mask[2];
};

/*
 * An executable the kernel can vouch for: the inode and device (the
 * kernel's dev_t, MAJOR << 20 | MINOR) of the loader's mm->exe_file.
 * Neither can be chosen by the loader; user space also checks the file's
 * sha256, which the kernel cannot compute at load time.
 */
struct rules_exe {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

/* One kernel rule: every present condition must hold. */
struct rules_rule {
	enum rules_action action; /* 4 bytes, like __u32 */
	enum rules_flag flags;    /* an OR of rules_flag bits */
	__u32 helper_n;   /* entries used in helper_id/helper_min: all must hold */
	__u32 name_n;     /* 0: no prog_name condition */
	__u32 comm_n;     /* 0: no loader comm condition */
	__u32 uid_n;      /* 0: no loader uid condition */
	__u32 hash_n;     /* allowlisted instruction hashes */
	__u32 insn_min;
	__u32 insn_max;
	__u32 exe_n;      /* 0: no loader executable condition */
	/* Provenance (enum rules_prov bits of facts.prov): every prov_set bit
	 * set, no prov_clear bit set, and, when prov_any is non-zero, one of
	 * its bits set (the keyring kinds). */
	__u32 prov_set;
	__u32 prov_clear;
	__u32 prov_any;
	__u32 _pad_prov;
	__u64 prog_types;      /* bit n: enum bpf_prog_type n */
	__u64 attach_types[2]; /* bit n: enum bpf_attach_type n */
	__u64 allowed[RULES_HELPER_MAX / 64]; /* helpers_only */
	__u64 any_of[RULES_HELPER_MAX / 64];  /* helpers_any */
	__u32 helper_id[RULE_HELPERS];
	__u32 helper_min[RULE_HELPERS];
	struct rules_str names[RULE_NAMES];
	struct rules_str comms[RULE_COMMS];
	__u32 uids[RULE_UIDS];
	__u64 allow_hash[RULE_HASHES]; /* a program with one of these hashes never matches */
	struct rules_exe exes[RULE_EXES];
};

/* The rule table: one value of a one-entry array map. */
struct rules_table {
	__u32 count;      /* rules[0, count) are evaluated, in order */
	__u32 generation; /* bumped by user space on every reload, for reporting */
	__u32 group_n;    /* rules with RULES_F_GROUP: 0 skips the group view */
	__u32 _pad;
	struct rules_rule rules[RULES_MAX];
};

/*
 * What the kernel knows about one BPF_PROG_LOAD, filled by the sensor while it
 * walks the instructions (rules_facts_add_insn) and from bpf_attr / the task.
 */
struct rules_facts {
	__u32 prog_type;
	__u32 expected_attach_type;
	__u32 insn_cnt;      /* attr->insn_cnt, as declared */
	__u32 uid;           /* loader's uid */
	__u32 helper_other;  /* helper calls with id >= RULES_HELPER_MAX */
	__u32 scope;         /* enum rules_scope: one program, or its loader group's sum */
	__u32 prov;          /* enum rules_prov bits */
	__u64 insn_hash;     /* rules_hash over the normalised instructions; start at RULES_HASH_INIT */
	__u64 exe_ino;       /* loader's mm->exe_file inode (0: none) */
	__u32 exe_dev;       /* and its superblock's dev_t */
	__u32 _pad2;
	__u64 used[RULES_HELPER_MAX / 64]; /* bit n: helper n is called at least once */
	char prog_name[RULES_NAME_LEN];    /* attr->prog_name, NUL-terminated */
	char comm[RULES_NAME_LEN];         /* loader's task comm */
	__u32 helper_cnt[RULES_HELPER_MAX];
	/* The distinct map references of the load's ld_imm64 slots, in
	 * order: an fd (BPF_PSEUDO_MAP_FD, _MAP_VALUE) or RULES_MAP_REF_IDX |
	 * an fd_array index (BPF_PSEUDO_MAP_IDX, _MAP_IDX_VALUE). The first
	 * RULES_MAP_REFS are noted; map_refs_over counts the references past
	 * them (bpf/group.h joins the maps' groups, docs/GROUPS.md). */
	__u32 map_refs;
	__u32 map_refs_over;
	__u32 map_ref[RULES_MAP_REFS];
};

/* The evaluator's answer. */
struct rules_result {
	__s32 first;       /* index of the first matching rule, -1 when none */
	enum rules_action first_action;
	__s32 first_block; /* index of the first matching block rule, -1 when none */
	enum rules_action action; /* strongest action among matching rules */
	__u64 matched[RULES_MATCHED_WORDS]; /* bit i % 64 of word i / 64: rule i matched */
};

#endif
