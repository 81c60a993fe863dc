/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Shared by the ebpf-sentry test programs: the libbpf headers plus the few
 * kernel types the programs touch. The kernel types are written here by hand
 * with preserve_access_index, so CO-RE relocates every field access against
 * the running kernel's BTF and the repository needs no vmlinux.h.
 */
#ifndef SENTRY_TEST_H
#define SENTRY_TEST_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

typedef __u8 u8;
typedef __s8 s8;
typedef __u16 u16;
typedef __s16 s16;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __s64 s64;

#define TASK_COMM_LEN 16

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	char comm[TASK_COMM_LEN];
} __attribute__((preserve_access_index));

/* The context of syscalls/sys_enter_* and syscalls/sys_exit_* tracepoints. */
struct trace_event_raw_sys_enter {
	long id;
	unsigned long args[6];
} __attribute__((preserve_access_index));

struct trace_event_raw_sys_exit {
	long id;
	long ret;
} __attribute__((preserve_access_index));

/* One record of the buffer getdents64 fills. */
struct linux_dirent64 {
	u64 d_ino;
	s64 d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
} __attribute__((preserve_access_index));

#endif /* SENTRY_TEST_H */
