package sensor

import (
	"syscall"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// bpfFTokenFD is BPF_F_TOKEN_FD in prog_flags (and map_flags): the attr's
// token fd field is set (6.9+).
const bpfFTokenFD = 1 << 16

// provenanceFromHeader is what a load's attr says about its signature and
// token; nil when it says nothing (unsigned, no token).
func provenanceFromHeader(h *sentrySentryHeader) *program.Provenance {
	signed := h.Signature != 0
	token := h.ProgFlags&bpfFTokenFD != 0
	if !signed && !token {
		return nil
	}
	p := &program.Provenance{Signed: signed, ViaToken: token}
	if signed {
		p.SignaturePtr, p.SignatureSize = h.Signature, h.SignatureSize
		p.KeyringID = h.KeyringId
		p.Keyring = program.KeyringKind(h.KeyringId)
		if h.SigVerified != 0 {
			p.Verification = program.SigVerified
		}
	}
	if token {
		p.TokenFD = h.ProgTokenFd
	}
	return p
}

// signatureErrnos are the errors with which the kernel's PKCS#7 check
// refuses a signature (bpf_prog_verify_signature runs before the verifier):
// bad signature, malformed message, no matching key, unsupported crypto.
var signatureErrnos = map[syscall.Errno]bool{
	syscall.EKEYREJECTED: true,
	syscall.EBADMSG:      true,
	syscall.ENOKEY:       true,
	syscall.ENOPKG:       true,
	syscall.ELIBBAD:      true,
	syscall.EMSGSIZE:     true,
	syscall.EKEYEXPIRED:  true,
	syscall.EKEYREVOKED:  true,
}

// SignatureVerdict derives the kernel's verdict on a signed load from how
// the load ended: loaded means verified; one of the signature errors means
// rejected; any other failure (EINVAL from an unknown keyring or an
// oversized signature, EFAULT from a bad pointer, a verifier error, ...)
// does not say, unless the LSM hook already saw the signature verified.
func SignatureVerdict(p *program.Provenance, o Outcome) {
	if p == nil || !p.Signed || p.Verification == program.SigVerified {
		return
	}
	switch {
	case o.Result == ResultLoaded:
		p.Verification = program.SigVerified
	case syscall.Errno(o.Errno) == syscall.EOPNOTSUPP:
		p.Verification, p.VerifyErrno = program.SigUnsupported, o.Errno
	case o.Errno != 0 && signatureErrnos[syscall.Errno(o.Errno)]:
		p.Verification, p.VerifyErrno = program.SigRejected, o.Errno
	default:
		p.Verification = program.SigUnknown
		p.VerifyErrno = o.Errno
	}
}
