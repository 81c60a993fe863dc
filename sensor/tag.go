package sensor

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
)

// progTags are the tags the kernel would give a program with exactly these
// instructions: the first 8 bytes of SHA-1 (through 6.x) or SHA-256 (newer
// kernels hash with it) over the instructions as the kernel copied them,
// with the immediates of map-fd/map-value 64-bit loads zeroed (fds differ
// per process, so the kernel leaves them out). Computed before the
// verifier rewrites anything, the tag is what ties a loaded program to the
// bytes the sensor judged.
func progTags(insns []byte) (sha1Tag, sha256Tag string) {
	b := make([]byte, len(insns)-len(insns)%8)
	copy(b, insns)
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
	wasLdMap := false
	for i := 0; i+insnSize <= len(b); i += insnSize {
		code, regs := b[i], b[i+regsOffset]
		src := regs >> srcRegShift
		switch {
		case !wasLdMap && code == ldImmDW && (src == pseudoMapFD || src == pseudoMapVal):
			wasLdMap = true
			clear(b[i+immOffset : i+immOffset+immLen])
		case wasLdMap && code == 0 && regs == 0 && b[i+offFieldStart] == 0 && b[i+offFieldStart+1] == 0:
			wasLdMap = false
			clear(b[i+immOffset : i+immOffset+immLen])
		default:
			wasLdMap = false
		}
	}
	s1 := sha1.Sum(b)
	s256 := sha256.Sum256(b)
	return hex.EncodeToString(s1[:8]), hex.EncodeToString(s256[:8])
}

// judgedCopyDiffers reports whether the kernel's tag belongs to other
// instructions than the ones judged: the loader changed them in its memory
// between the sensor's read and the kernel's copy (a time-of-check to
// time-of-use race on the syscall hooks).
func judgedCopyDiffers(insns []byte, kernelTag string) bool {
	a, b := progTags(insns)
	return kernelTag != a && kernelTag != b
}
