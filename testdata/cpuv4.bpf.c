// SPDX-License-Identifier: GPL-2.0
/*
 * Feature coverage: the instructions of cpu v4 (kernel 6.6+), compiled with
 * -mcpu=v4: sign-extending moves (movsx, BPF_ALU64|BPF_MOV with off 8/16/32),
 * sign-extending loads (ldsx, BPF_MEMSX), unconditional byte swaps (bswap,
 * BPF_ALU64|BPF_END), signed division and modulo (sdiv/smod, off 1), a
 * 32-bit-offset jump (gotol, BPF_JMP32|BPF_JA) and may_goto. clang only emits
 * gotol for jumps beyond 32767 instructions, so that one and may_goto are
 * written in inline assembly.
 *
 * A syscall program: tests can BPF_PROG_RUN it with the struct v4_input below
 * as context and read the results from the v4_out global.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

struct v4_input {
	s8 b;
	s16 h;
	s32 w;
	s64 num;
	s64 den;
	u64 swap;
};

struct v4_output {
	s64 movsx8;
	s64 movsx16;
	s64 movsx32;
	s64 ldsx8;
	s64 ldsx16;
	s64 ldsx32;
	s64 quot;
	s64 rem;
	s32 quot32;
	s32 rem32;
	u64 bswap16;
	u64 bswap32;
	u64 bswap64;
	u64 jumped;
	u64 loops;
};

struct v4_output v4_out;

/* Keep the value in a register so the cast is a movsx, not a load. */
static __always_inline u64 opaque(u64 v)
{
	asm volatile("" : "+r"(v));
	return v;
}

SEC("syscall")
int cpuv4_all(struct v4_input *in)
{
	u64 r = opaque(in->num);
	u64 jumped = 0, loops = 0;

	v4_out.movsx8 = (s8)r;
	v4_out.movsx16 = (s16)r;
	v4_out.movsx32 = (s32)r;
	v4_out.ldsx8 = in->b;
	v4_out.ldsx16 = in->h;
	v4_out.ldsx32 = in->w;
	if (in->den) {
		v4_out.quot = in->num / in->den;
		/* opaque(): otherwise clang derives the remainder from the quotient. */
		v4_out.rem = (s64)opaque(in->num) % in->den;
		v4_out.quot32 = (s32)in->num / (s32)in->den;
		v4_out.rem32 = (s32)opaque(in->num) % (s32)in->den;
	}
	v4_out.bswap16 = __builtin_bswap16(in->swap);
	v4_out.bswap32 = __builtin_bswap32(in->swap);
	v4_out.bswap64 = __builtin_bswap64(in->swap);

	/*
	 * gotol over one instruction, which a conditional jump keeps reachable:
	 * jumped = 1 when in->b <= 5, else 2.
	 */
	asm volatile("%[j] = 1\n"
		     "if %[c] s> 5 goto +1\n"
		     "gotol +1\n"
		     "%[j] = 2\n"
		     : [j] "=&r"(jumped)
		     : [c] "r"((s64)in->b));
	v4_out.jumped = jumped;

	/* may_goto: the kernel bounds the loop, falling through when done. */
	asm volatile("1: may_goto 2f\n"
		     "%[n] += 1\n"
		     "if %[n] < 5 goto 1b\n"
		     "2:\n"
		     : [n] "+r"(loops));
	v4_out.loops = loops;
	return 0;
}
