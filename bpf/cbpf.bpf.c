// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Classic BPF capture: every setsockopt(SOL_SOCKET, SO_ATTACH_FILTER |
 * SO_ATTACH_REUSEPORT_CBPF | SO_ATTACH_BPF) is copied to user space with the
 * filter it attaches (up to the kernel's 4,096 instructions), from the
 * syscalls:sys_enter_setsockopt tracepoint. Other setsockopt calls return
 * after three comparisons.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define SOL_SOCKET 1
#define SO_ATTACH_FILTER 26
#define SO_ATTACH_BPF 50
#define SO_ATTACH_REUSEPORT_CBPF 51
#define CBPF_MAX_INSNS 4096

struct cbpf_event {
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__s32 fd;
	__s32 optname;
	__u32 optlen;
	__u32 len;      /* sock_fprog.len as the caller gave it; for SO_ATTACH_BPF the prog fd */
	__s32 read_err; /* reading optval or the filter failed (0: fine) */
	char comm[16];
	__u8 insns[CBPF_MAX_INSNS * 8];
};

/* Keeps the record's type in BTF for bpf2go -type. */
const struct cbpf_event *unused_cbpf_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} cbpf_events SEC(".maps");

/* Records the ring had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cbpf_lost SEC(".maps");

struct setsockopt_args {
	__u64 common;
	__s64 nr;
	__u64 fd;
	__u64 level;
	__u64 optname;
	__u64 optval;
	__u64 optlen;
};

struct sock_fprog_user {
	__u16 len;
	__u16 pad[3];
	__u64 filter;
};

SEC("tracepoint/syscalls/sys_enter_setsockopt")
int cbpf_setsockopt(struct setsockopt_args *ctx)
{
	if (ctx->level != SOL_SOCKET)
		return 0;
	if (ctx->optname != SO_ATTACH_FILTER && ctx->optname != SO_ATTACH_REUSEPORT_CBPF &&
	    ctx->optname != SO_ATTACH_BPF)
		return 0;

	struct cbpf_event *e = bpf_ringbuf_reserve(&cbpf_events, sizeof(*e), 0);
	if (!e) {
		__u32 k = 0;
		__u64 *n = bpf_map_lookup_elem(&cbpf_lost, &k);
		if (n)
			__sync_fetch_and_add(n, 1);
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->fd = (__s32)ctx->fd;
	e->optname = (__s32)ctx->optname;
	e->optlen = (__u32)ctx->optlen;
	e->len = 0;
	e->read_err = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	if (ctx->optname == SO_ATTACH_BPF) {
		__u32 progfd = 0;
		e->read_err = bpf_probe_read_user(&progfd, sizeof(progfd), (void *)ctx->optval);
		e->len = progfd;
		bpf_ringbuf_submit(e, 0);
		return 0;
	}
	struct sock_fprog_user fprog = {};
	e->read_err = bpf_probe_read_user(&fprog, sizeof(fprog), (void *)ctx->optval);
	if (!e->read_err) {
		e->len = fprog.len;
		__u32 size = (__u32)fprog.len * 8;
		if (size > CBPF_MAX_INSNS * 8)
			size = CBPF_MAX_INSNS * 8;
		if (size)
			e->read_err = bpf_probe_read_user(e->insns, size, (void *)fprog.filter);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}
