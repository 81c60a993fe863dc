package sensor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
)

// AttrFields says which provenance fields the running kernel's union
// bpf_attr has, from its BTF: prog_token_fd (BPF tokens, 6.9+) and
// signature/keyring_id (signed programs, 6.18+).
type AttrFields struct {
	Token     bool
	Signature bool
}

// KernelAttrFields reads union bpf_attr from the running kernel's BTF.
func KernelAttrFields() (AttrFields, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return AttrFields{}, fmt.Errorf("kernel BTF: %w", err)
	}
	return attrFields(spec)
}

func attrFields(spec *btf.Spec) (AttrFields, error) {
	var u *btf.Union
	if err := spec.TypeByName("bpf_attr", &u); err != nil {
		return AttrFields{}, fmt.Errorf("union bpf_attr in kernel BTF: %w", err)
	}
	var f AttrFields
	for _, m := range u.Members {
		s, ok := m.Type.(*btf.Struct)
		if !ok || m.Name != "" {
			continue
		}
		for _, sm := range s.Members {
			switch sm.Name {
			case "prog_token_fd":
				f.Token = true
			case "keyring_id":
				f.Signature = true
			}
		}
	}
	return f, nil
}

// kattrBits encodes f for sentry_config.kattr.
func (f AttrFields) kattrBits() uint32 {
	var k uint32
	if f.Token {
		k |= uint32(sentrySentryKattrSENTRY_KATTR_TOKEN)
	}
	if f.Signature {
		k |= uint32(sentrySentryKattrSENTRY_KATTR_SIGNATURE)
	}
	return k
}

// kattrConfig is sentry_config.kattr for the running kernel, from its BTF
// (spec; nil without BTF): without BTF the LSM hooks (which need BTF) are
// not in use and nothing is lost. Computed once at start: the config is
// rewritten on every rule reload, and parsing the kernel's BTF each time
// cost ~30 ms of CPU and its garbage.
func kattrConfig(spec *btf.Spec) uint32 {
	if spec == nil {
		return 0
	}
	f, err := attrFields(spec)
	if err != nil {
		return 0
	}
	return f.kattrBits()
}

// Signing is what the running kernel does with a signed BPF_PROG_LOAD.
type Signing struct {
	Fields   bool   `json:"fields"`   // the attr has signature/keyring_id (6.18+)
	Verifies bool   `json:"verifies"` // the kernel checks signatures (else EOPNOTSUPP)
	How      string `json:"how"`      // how it was determined
}

// ProbeSigning loads a one-instruction socket filter with a malformed
// signature against the builtin keyring (keyring_id 0). A kernel without
// the fields refuses the attr's non-zero tail (E2BIG); one built without
// CONFIG_SYSTEM_DATA_VERIFICATION answers EOPNOTSUPP; one that checks
// rejects the signature (EBADMSG) before the verifier runs. Needs CAP_BPF.
func ProbeSigning() Signing {
	insns := []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0} // r0 = 0; exit
	lic := []byte("GPL\x00")
	sig := []byte{0x30, 0x03, 0x02, 0x01, 0x00} // a DER SEQUENCE that is no PKCS#7 message
	a := rawbpf.ProgLoadAttrFull{}
	a.ProgType, a.InsnCnt = 1, 2 // BPF_PROG_TYPE_SOCKET_FILTER
	a.Insns = uint64(uintptr(unsafe.Pointer(&insns[0])))
	a.License = uint64(uintptr(unsafe.Pointer(&lic[0])))
	a.Signature = uint64(uintptr(unsafe.Pointer(&sig[0])))
	a.SignatureSize = uint32(len(sig))
	fd, err := rawbpf.LoadFull(&a)
	runtime.KeepAlive(insns)
	runtime.KeepAlive(lic)
	runtime.KeepAlive(sig)
	if err == nil {
		unix.Close(fd)
		return Signing{Fields: true, How: "a malformed signature was accepted: the kernel ignores signatures"}
	}
	var errno unix.Errno
	errors.As(err, &errno)
	switch errno {
	case unix.E2BIG:
		return Signing{How: "BPF_PROG_LOAD refuses the signature fields (E2BIG): kernel before 6.18"}
	case unix.EOPNOTSUPP:
		return Signing{Fields: true, How: "a signed load fails with EOPNOTSUPP: the kernel takes signatures but cannot verify them (no CONFIG_SYSTEM_DATA_VERIFICATION)"}
	case unix.EBADMSG, unix.EKEYREJECTED, unix.ENOKEY, unix.ENOPKG:
		return Signing{Fields: true, Verifies: true, How: fmt.Sprintf("a malformed signature is rejected (%s): the kernel verifies signatures", unix.ErrnoName(errno))}
	}
	return Signing{How: fmt.Sprintf("probe load failed: %v", err)}
}

// Provenance is what doctor reports about signed programs, BPF tokens and
// a BPF keyring on the running kernel.
type Provenance struct {
	Signing Signing `json:"signing"`
	// Tokens: union bpf_attr has prog_token_fd (6.9+), from BTF.
	Tokens    bool   `json:"tokens"`
	TokensHow string `json:"tokens_how"`
	// BPFKeyring: a keyring dedicated to BPF signatures; Sealed is nil
	// when the kernel does not say.
	BPFKeyring    bool   `json:"bpf_keyring"`
	BPFKeyringHow string `json:"bpf_keyring_how"`
	Sealed        *bool  `json:"bpf_keyring_sealed,omitempty"`
}

// ProbeProvenance probes signing (ProbeSigning), tokens (BTF) and a BPF
// keyring (/proc/keys). Needs root.
func ProbeProvenance() Provenance {
	p := Provenance{Signing: ProbeSigning()}
	f, err := KernelAttrFields()
	switch {
	case err != nil:
		p.TokensHow = fmt.Sprintf("unknown: %v", err)
	case f.Token:
		p.Tokens, p.TokensHow = true, "union bpf_attr has prog_token_fd (kernel BTF)"
	default:
		p.TokensHow = "union bpf_attr has no prog_token_fd (kernel BTF): before 6.9"
	}
	p.BPFKeyring, p.BPFKeyringHow = bpfKeyring("/proc/keys")
	return p
}

// bpfKeyring looks for a keyring dedicated to BPF in keys (/proc/keys
// format: the type is field 8, the description follows). Mainline kernels
// up to 6.18 have none; no kernel exposes whether such a keyring is sealed
// (its restriction is not in /proc/keys), so Sealed stays unknown.
func bpfKeyring(path string) (bool, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Sprintf("unknown: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[7] != "keyring" {
			continue
		}
		desc := strings.TrimSuffix(f[8], ":")
		if desc == ".bpf" || strings.HasPrefix(desc, ".bpf_") {
			return true, fmt.Sprintf("keyring %s listed in %s; whether it is sealed is not exposed by the kernel", desc, path)
		}
	}
	return false, fmt.Sprintf("no BPF keyring in %s (system keyrings are the builtin, secondary and platform ones): sealing does not apply", path)
}
