package sensor

import (
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestHeaderProvenance(t *testing.T) {
	if p := provenanceFromHeader(&sentrySentryHeader{}); p != nil {
		t.Errorf("an unsigned load without a token has provenance %+v", p)
	}
	p := provenanceFromHeader(&sentrySentryHeader{Signature: 0x1000, SignatureSize: 300, KeyringId: -3, ProgFlags: bpfFTokenFD, ProgTokenFd: 7})
	if p == nil || !p.Signed || p.Keyring != program.KeyringSession || p.KeyringID != -3 || !p.ViaToken || p.TokenFD != 7 || p.SignatureSize != 300 {
		t.Errorf("provenance %+v", p)
	}
	if p.Verification != "" {
		t.Errorf("verification %q before the outcome", p.Verification)
	}
	if p := provenanceFromHeader(&sentrySentryHeader{Signature: 1, KeyringId: 0, SigVerified: 1}); p.Verification != program.SigVerified {
		t.Errorf("a signature the LSM hook saw verified: %q", p.Verification)
	}
	if p := provenanceFromHeader(&sentrySentryHeader{ProgTokenFd: 9}); p != nil {
		t.Errorf("a token fd without BPF_F_TOKEN_FD is not a token load: %+v", p)
	}
}

func TestSignatureVerdictFromTheOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  Outcome
		want string
	}{
		{"loaded means the kernel accepted the signature", Outcome{Result: ResultLoaded, FD: 3}, program.SigVerified},
		{"EKEYREJECTED is a bad signature", Outcome{Result: ResultFailed, Errno: int(syscall.EKEYREJECTED)}, program.SigRejected},
		{"EBADMSG is a malformed message", Outcome{Result: ResultFailed, Errno: int(syscall.EBADMSG)}, program.SigRejected},
		{"ENOKEY is no matching key in the keyring", Outcome{Result: ResultFailed, Errno: int(syscall.ENOKEY)}, program.SigRejected},
		{"EOPNOTSUPP is a kernel that cannot verify", Outcome{Result: ResultFailed, Errno: int(syscall.EOPNOTSUPP)}, program.SigUnsupported},
		{"EINVAL does not say", Outcome{Result: ResultFailed, Errno: int(syscall.EINVAL)}, program.SigUnknown},
		{"a killed loader does not say", Outcome{Result: ResultKilled}, program.SigUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &program.Provenance{Signed: true}
			SignatureVerdict(p, tc.out)
			if p.Verification != tc.want {
				t.Errorf("verification %q, want %q", p.Verification, tc.want)
			}
			if tc.want == program.SigRejected && p.VerifyErrno != tc.out.Errno {
				t.Errorf("errno %d, want %d", p.VerifyErrno, tc.out.Errno)
			}
		})
	}
	p := &program.Provenance{Signed: true, Verification: program.SigVerified}
	SignatureVerdict(p, Outcome{Result: ResultFailed, Errno: int(syscall.EPERM)})
	if p.Verification != program.SigVerified {
		t.Errorf("a load the LSM saw verified, then denied, became %q", p.Verification)
	}
	SignatureVerdict(nil, Outcome{}) // no provenance: nothing to do, no panic
}
