// SPDX-License-Identifier: GPL-2.0
/*
 * Feature coverage: load-acquire and store-release (BPF_ATOMIC with imm
 * BPF_LOAD_ACQ 0x100 / BPF_STORE_REL 0x110, kernel 6.15+) at all four sizes.
 * clang 19 cannot emit them (LLVM 21 can), so the instructions are written as
 * raw 64-bit words; llvm-objdump-19 misreads them as atomic adds.
 *
 * A syscall program: one run copies acq_src into rel_dst through registers,
 * so rel_dst ends up d64 = 0x1122334455667788, w32 = 0x55667788,
 * h16 = 0x7788, b8 = 0x88.
 */
#include "sentry_test.h"

char LICENSE[] SEC("license") = "GPL";

u64 acq_src = 0x1122334455667788ULL;

struct {
	u64 d64;
	u32 w32;
	u32 pad0;
	u16 h16;
	u16 pad1[3];
	u8 b8;
} rel_dst;

#define BPF_LOAD_ACQ 0x100
#define BPF_STORE_REL 0x110
/* One instruction as the kernel reads it: code, dst, src, off, imm. */
#define INSN(code, dst, src, off, imm)                                        \
	((u64)(code) | (u64)(dst) << 8 | (u64)(src) << 12 |                    \
	 (u64)(u16)(off) << 16 | (u64)(u32)(imm) << 32)
#define ATOMIC_DW (BPF_STX | BPF_ATOMIC | BPF_DW)
#define ATOMIC_W (BPF_STX | BPF_ATOMIC | BPF_W)
#define ATOMIC_H (BPF_STX | BPF_ATOMIC | BPF_H)
#define ATOMIC_B (BPF_STX | BPF_ATOMIC | BPF_B)

SEC("syscall")
__attribute__((naked)) int acqrel_all(void)
{
	asm volatile(
	"r1 = %[src] ll;\n"
	"r2 = %[dst] ll;\n"
	".quad %[ld64];\n"	/* r3 = load_acquire((u64 *)(r1 + 0)) */
	".quad %[st64];\n"	/* store_release((u64 *)(r2 + 0), r3) */
	".quad %[ld32];\n"	/* w4 = load_acquire((u32 *)(r1 + 0)) */
	".quad %[st32];\n"	/* store_release((u32 *)(r2 + 8), w4) */
	".quad %[ld16];\n"	/* w5 = load_acquire((u16 *)(r1 + 0)) */
	".quad %[st16];\n"	/* store_release((u16 *)(r2 + 16), w5) */
	".quad %[ld8];\n"	/* w0 = load_acquire((u8 *)(r1 + 0)) */
	".quad %[st8];\n"	/* store_release((u8 *)(r2 + 24), w0) */
	"r0 = 0;\n"
	"exit;\n"
	:
	: [src] "i"(&acq_src), [dst] "i"(&rel_dst),
	  [ld64] "i"(INSN(ATOMIC_DW, 3, 1, 0, BPF_LOAD_ACQ)),
	  [st64] "i"(INSN(ATOMIC_DW, 2, 3, 0, BPF_STORE_REL)),
	  [ld32] "i"(INSN(ATOMIC_W, 4, 1, 0, BPF_LOAD_ACQ)),
	  [st32] "i"(INSN(ATOMIC_W, 2, 4, 8, BPF_STORE_REL)),
	  [ld16] "i"(INSN(ATOMIC_H, 5, 1, 0, BPF_LOAD_ACQ)),
	  [st16] "i"(INSN(ATOMIC_H, 2, 5, 16, BPF_STORE_REL)),
	  [ld8] "i"(INSN(ATOMIC_B, 0, 1, 0, BPF_LOAD_ACQ)),
	  [st8] "i"(INSN(ATOMIC_B, 2, 0, 24, BPF_STORE_REL)));
}
