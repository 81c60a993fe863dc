// SPDX-License-Identifier: GPL-2.0
/*
 * OBJECT-LOADER-REFUSES: cilium/ebpf's object loader refuses this object;
 * ebpf-sentry reads it directly (program/elfdirect.go).
 *
 * Map-in-map whose inner map is described by a struct the object loader does
 * not recognise as a map definition (tracee declares inner maps this way): an
 * anonymous inner struct with only a value pointer to a plain struct.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

struct inner_value {
	u32 a;
	u64 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, u32);
	__array(values, struct inner_value);
} mim_outer SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int mim_lookup(void *ctx)
{
	u32 key = 1;
	void *inner = bpf_map_lookup_elem(&mim_outer, &key);

	if (!inner)
		return 0;
	return bpf_map_lookup_elem(inner, &key) != 0;
}
