package sensor

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"sync/atomic"
)

// progTags are the tags the kernel would give a program with exactly these
// instructions: the first 8 bytes of SHA-1 (through 6.x) or SHA-256 (newer
// kernels hash with it) over the instructions as the kernel copied them,
// with the immediates of map-fd/map-value 64-bit loads zeroed (fds differ
// per process, so the kernel leaves them out). Computed before the
// verifier rewrites anything, the tag is what ties a loaded program to the
// bytes the sensor judged.
func progTags(insns []byte) (sha1Tag, sha256Tag string) {
	b := tagInput(insns)
	s1 := sha1.Sum(b)
	s256 := sha256.Sum256(b)
	return hex.EncodeToString(s1[:8]), hex.EncodeToString(s256[:8])
}

// tagInput is what the kernel hashes for the tag: the whole instructions
// with the immediates of map-fd/map-value 64-bit loads zeroed. It is insns
// itself when no load needs zeroing (no copy of a big program), else a
// copy.
func tagInput(insns []byte) []byte {
	const (
		ldImmDW       = 0x18 // BPF_LD | BPF_IMM | BPF_DW
		pseudoMapFD   = 1
		pseudoMapVal  = 2
		immOffset     = 4
		immLen        = 4
		srcRegShift   = 4
		insnSize      = 8
		regsOffset    = 1
		offFieldStart = 2
	)
	b := insns[:len(insns)-len(insns)%8]
	copied := false
	wasLdMap := false
	for i := 0; i+insnSize <= len(b); i += insnSize {
		code, regs := b[i], b[i+regsOffset]
		src := regs >> srcRegShift
		zero := false
		switch {
		case !wasLdMap && code == ldImmDW && (src == pseudoMapFD || src == pseudoMapVal):
			wasLdMap, zero = true, true
		case wasLdMap && code == 0 && regs == 0 && b[i+offFieldStart] == 0 && b[i+offFieldStart+1] == 0:
			wasLdMap, zero = false, true
		default:
			wasLdMap = false
		}
		if zero && !isZero(b[i+immOffset:i+immOffset+immLen]) {
			if !copied {
				b, copied = bytes.Clone(b), true
			}
			clear(b[i+immOffset : i+immOffset+immLen])
		}
	}
	return b
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tagSHA256First: the last kernel tag matched was a SHA-256 one, so that
// hash is tried first (a kernel uses one algorithm; the other is computed
// only when the first does not match). (Atomic: Close may finish loads beside the reader.)
var tagSHA256First atomic.Bool

// judgedCopyDiffers reports whether the kernel's tag belongs to other
// instructions than the ones judged: the loader changed them in its memory
// between the sensor's read and the kernel's copy (a time-of-check to
// time-of-use race on the syscall hooks).
func judgedCopyDiffers(insns []byte, kernelTag string) bool {
	b := tagInput(insns)
	sha1Tag := func() string { s := sha1.Sum(b); return hex.EncodeToString(s[:8]) }
	sha256Tag := func() string { s := sha256.Sum256(b); return hex.EncodeToString(s[:8]) }
	first, second := sha1Tag, sha256Tag
	if tagSHA256First.Load() {
		first, second = sha256Tag, sha1Tag
	}
	if kernelTag == first() {
		return false
	}
	if kernelTag == second() {
		tagSHA256First.Store(!tagSHA256First.Load())
		return false
	}
	return true
}
