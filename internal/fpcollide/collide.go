// Package fpcollide forges a program with a given lock-mode fingerprint
// (the 64-bit instruction hash of rules/kernel, which is invertible): the
// tests use it to show what a collision does to lock mode (docs/FLEET.md).
package fpcollide

import (
	"encoding/binary"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// hashPrime is rules_hash's multiplier (rules/kernel).
const hashPrime uint64 = 0x100000001b3

// unstep inverts one rules_hash step's mixing: x from g(x) = z ^ z>>32
// with z = x * prime.
func unstep(y uint64) uint64 {
	zHi := y >> 32
	z := zHi<<32 | (y^zHi)&0xffffffff
	inv := hashPrime // Newton's iteration for the inverse mod 2^64
	for range 6 {
		inv *= 2 - hashPrime*inv
	}
	return z * inv
}

// Collide builds a program that verifies and has the fingerprint target:
// "r1 = K (ld_imm64); r0 = 0; exit", with K solved for.
func Collide(target uint64) []byte {
	const v1Base = 0x18 | 1<<8 // ld_imm64 r1, imm in the top half
	mov, exit := uint64(0xb7), uint64(0x95)
	h3 := unstep(target) ^ exit
	h2 := unstep(h3) ^ mov
	a := unstep(h2) // = h1 ^ (K_hi << 32): h1's low half must be a's
	// h1 = g(x), x = HashInit ^ v1Base ^ K_lo<<32; low32(g(x)) = low32(z)
	// ^ high32(z), z = x*prime, where only x's high half (K_lo) is free
	// and enters high32(z) as x_hi * 0x1b3 (odd, so invertible mod 2^32).
	xLo := (kernel.HashInit ^ v1Base) & 0xffffffff
	z0 := xLo * hashPrime // z with x_hi = 0
	wantHi := uint32(a) ^ uint32(z0)
	inv := uint32(0x1b3)
	for range 5 {
		inv *= 2 - 0x1b3*inv
	}
	xHi := (wantHi - uint32(z0>>32)) * inv
	kLo := xHi ^ uint32(kernel.HashInit>>32)
	h1 := kernel.HashStep(kernel.HashInit, v1Base|uint64(kLo)<<32)
	kHi := uint32((h1 ^ a) >> 32)
	var out []byte
	for _, s := range []uint64{v1Base | uint64(kLo)<<32, uint64(kHi) << 32, mov, exit} {
		out = binary.LittleEndian.AppendUint64(out, s)
	}
	return out
}
