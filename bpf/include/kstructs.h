/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel structs that more than one of the sensor's headers reads
 * through CO-RE: declared once here, with only the fields read, so that the
 * headers can be included together.
 */
#ifndef SENTRY_KSTRUCTS_H
#define SENTRY_KSTRUCTS_H

struct bpf_map {
	__u32 id;
} __attribute__((preserve_access_index));

struct bpf_link {
	__u32 id;
} __attribute__((preserve_access_index));

#endif
