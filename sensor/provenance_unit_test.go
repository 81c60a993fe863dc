package sensor

import (
	"os"
	"strings"
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

func TestBPFKeyringFromProcKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := dir + "/keys"
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	none := write("01e97798 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: empty\n")
	if ok, how := bpfKeyring(none); ok || !strings.Contains(how, "no BPF keyring") {
		t.Errorf("builtin only: %v %q", ok, how)
	}
	with := write("01e97798 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: empty\n0aaa0001 I------     1 perm 1f0b0000     0     0 keyring   .bpf: 1\n")
	if ok, how := bpfKeyring(with); !ok || !strings.Contains(how, "not exposed") {
		t.Errorf("a .bpf keyring: %v %q", ok, how)
	}
	if ok, how := bpfKeyring(dir + "/missing"); ok || !strings.Contains(how, "unknown") {
		t.Errorf("no /proc/keys: %v %q", ok, how)
	}
}
