package program

import (
	"slices"
	"strconv"
	"strings"
)

// Enum names the values of one uapi enum the way bpftool prints them: the
// constant lowercased without its BPF_PROG_TYPE_ / BPF_ / BPF_MAP_TYPE_
// prefix. Tables end at the newest values known here (Linux 6.18 and a few
// later ones); a test checks them against the running kernel's BTF.
type Enum struct {
	what   string
	names  []string // by value
	values map[string]uint32
}

func newEnum(what string, names ...string) *Enum {
	e := &Enum{what: what, names: names, values: make(map[string]uint32, len(names))}
	for v, n := range names {
		e.values[n] = uint32(v)
	}
	return e
}

// ProgTypes is enum bpf_prog_type.
var ProgTypes = newEnum("prog type",
	"unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
	"perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops",
	"sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr", "lwt_seg6local",
	"lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl", "raw_tracepoint_writable",
	"cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm", "sk_lookup", "syscall", "netfilter",
)

// AttachTypes is enum bpf_attach_type.
var AttachTypes = newEnum("attach type",
	"cgroup_inet_ingress", "cgroup_inet_egress", "cgroup_inet_sock_create", "cgroup_sock_ops",
	"sk_skb_stream_parser", "sk_skb_stream_verdict", "cgroup_device", "sk_msg_verdict",
	"cgroup_inet4_bind", "cgroup_inet6_bind", "cgroup_inet4_connect", "cgroup_inet6_connect",
	"cgroup_inet4_post_bind", "cgroup_inet6_post_bind", "cgroup_udp4_sendmsg",
	"cgroup_udp6_sendmsg", "lirc_mode2", "flow_dissector", "cgroup_sysctl", "cgroup_udp4_recvmsg",
	"cgroup_udp6_recvmsg", "cgroup_getsockopt", "cgroup_setsockopt", "trace_raw_tp",
	"trace_fentry", "trace_fexit", "modify_return", "lsm_mac", "trace_iter",
	"cgroup_inet4_getpeername", "cgroup_inet6_getpeername", "cgroup_inet4_getsockname",
	"cgroup_inet6_getsockname", "xdp_devmap", "cgroup_inet_sock_release", "xdp_cpumap",
	"sk_lookup", "xdp", "sk_skb_verdict", "sk_reuseport_select", "sk_reuseport_select_or_migrate",
	"perf_event", "trace_kprobe_multi", "lsm_cgroup", "struct_ops", "netfilter", "tcx_ingress",
	"tcx_egress", "trace_uprobe_multi", "cgroup_unix_connect", "cgroup_unix_sendmsg",
	"cgroup_unix_recvmsg", "cgroup_unix_getpeername", "cgroup_unix_getsockname", "netkit_primary",
	"netkit_peer", "trace_kprobe_session", "trace_uprobe_session", "trace_fsession",
)

// MapTypes is enum bpf_map_type.
var MapTypes = newEnum("map type",
	"unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash", "percpu_array",
	"stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash", "lpm_trie", "array_of_maps",
	"hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap", "sockhash", "cgroup_storage",
	"reuseport_sockarray", "percpu_cgroup_storage", "queue", "stack", "sk_storage", "devmap_hash",
	"struct_ops", "ringbuf", "inode_storage", "task_storage", "bloom_filter", "user_ringbuf",
	"cgrp_storage", "arena", "insn_array",
)

// Name returns the name of v, and false for a value newer than the table.
func (e *Enum) Name(v uint32) (string, bool) {
	if int(v) < len(e.names) {
		return e.names[v], true
	}
	return "", false
}

// NameOr returns the name of v, or "<what> N" for a value newer than the table.
func (e *Enum) NameOr(v uint32) string {
	if n, ok := e.Name(v); ok {
		return n
	}
	return e.what + " " + strconv.FormatUint(uint64(v), 10)
}

// Value returns the value named name (case-insensitive).
func (e *Enum) Value(name string) (uint32, bool) {
	v, ok := e.values[strings.ToLower(name)]
	return v, ok
}

// Names lists every name in value order.
func (e *Enum) Names() []string { return slices.Clone(e.names) }

// What says what the enum counts ("prog type", "attach type", "map type").
func (e *Enum) What() string { return e.what }
