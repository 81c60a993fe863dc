package analysis

import (
	"strconv"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

// Program and map type names as bpftool prints them, indexed by the uapi
// enum value (enum bpf_prog_type, enum bpf_map_type).
var (
	progTypeNames = [...]string{
		"unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
		"perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops",
		"sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr",
		"lwt_seg6local", "lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl",
		"raw_tracepoint_writable", "cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm",
		"sk_lookup", "syscall", "netfilter",
	}
	mapTypeNames = [...]string{
		"unspec", "hash", "array", "prog_array", "perf_event_array", "percpu_hash",
		"percpu_array", "stack_trace", "cgroup_array", "lru_hash", "lru_percpu_hash",
		"lpm_trie", "array_of_maps", "hash_of_maps", "devmap", "sockmap", "cpumap", "xskmap",
		"sockhash", "cgroup_storage", "reuseport_sockarray", "percpu_cgroup_storage", "queue",
		"stack", "sk_storage", "devmap_hash", "struct_ops", "ringbuf", "inode_storage",
		"task_storage", "bloom_filter", "user_ringbuf", "cgrp_storage", "arena",
	}
)

// ProgTypeName is bpftool's name for a program type, or "type N" when unknown.
func ProgTypeName(t uint32) string {
	if int(t) < len(progTypeNames) {
		return progTypeNames[t]
	}
	return "type " + strconv.FormatUint(uint64(t), 10)
}

// MapTypeName is bpftool's name for a map type, or "type N" when unknown.
func MapTypeName(t uint32) string {
	if int(t) < len(mapTypeNames) {
		return mapTypeNames[t]
	}
	return "type " + strconv.FormatUint(uint64(t), 10)
}

// DefaultHelperName names helper id as the kernel does ("bpf_map_lookup_elem")
// from package helper's table (running kernel's BTF, static table for the
// gaps); unknown ids become "helper#N" so a newer helper is still counted.
var DefaultHelperName = func(id int32) string {
	if n, ok := helper.Default().Name(id); ok {
		return n
	}
	return "helper#" + strconv.FormatInt(int64(id), 10)
}
