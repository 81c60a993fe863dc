// SPDX-License-Identifier: GPL-2.0
/*
 * Feature coverage: every BPF_ATOMIC operation clang emits, on 64- and 32-bit
 * globals, compiled with -mcpu=v3 (the fetch forms of and/or/xor need it):
 * add, and, or, xor without fetch (result unused), their BPF_FETCH forms,
 * xchg and cmpxchg. A syscall program, so tests can BPF_PROG_RUN it and read
 * the globals back: starting from the initial values below, one run leaves
 * a64 = 0x17, a32 = 0x17, f64 = 0x1a, f32 = 0x1a, x64 = 7, x32 = 7,
 * c64 = 9, c32 = 9, and the fetched old values in the old_* globals.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

u64 a64 = 0x10;
u32 a32 = 0x10;
u64 f64 = 0x10;
u32 f32 = 0x10;
u64 x64 = 1;
u32 x32 = 1;
u64 c64 = 3;
u32 c32 = 3;
u64 old_add64, old_and64, old_or64, old_xor64, old_xchg64, old_cmpxchg64;
u32 old_add32, old_and32, old_or32, old_xor32, old_xchg32, old_cmpxchg32;

SEC("syscall")
int atomics_all(void *ctx)
{
	/* No fetch: the results are unused, so clang emits the plain forms. */
	__sync_fetch_and_add(&a64, 0x0f);	/* 0x1f */
	__sync_fetch_and_and(&a64, 0x1d);	/* 0x1d */
	__sync_fetch_and_or(&a64, 0x02);	/* 0x1f */
	__sync_fetch_and_xor(&a64, 0x08);	/* 0x17 */
	__sync_fetch_and_add(&a32, 0x0f);
	__sync_fetch_and_and(&a32, 0x1d);
	__sync_fetch_and_or(&a32, 0x02);
	__sync_fetch_and_xor(&a32, 0x08);

	/* Fetch: the old values are kept, so clang emits BPF_FETCH forms. */
	old_add64 = __sync_fetch_and_add(&f64, 0x0f);	/* old 0x10 -> 0x1f */
	old_and64 = __sync_fetch_and_and(&f64, 0x1b);	/* old 0x1f -> 0x1b */
	old_or64 = __sync_fetch_and_or(&f64, 0x0a);	/* old 0x1b -> 0x1b */
	old_xor64 = __sync_fetch_and_xor(&f64, 0x01);	/* old 0x1b -> 0x1a */
	old_add32 = __sync_fetch_and_add(&f32, 0x0f);
	old_and32 = __sync_fetch_and_and(&f32, 0x1b);
	old_or32 = __sync_fetch_and_or(&f32, 0x0a);
	old_xor32 = __sync_fetch_and_xor(&f32, 0x01);

	old_xchg64 = __sync_lock_test_and_set(&x64, 7);		/* old 1 */
	old_xchg32 = __sync_lock_test_and_set(&x32, 7);
	old_cmpxchg64 = __sync_val_compare_and_swap(&c64, 3, 9);	/* old 3 */
	old_cmpxchg32 = __sync_val_compare_and_swap(&c32, 3, 9);
	return 0;
}
