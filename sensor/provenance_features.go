package sensor

import (
	"errors"
	"fmt"
	"runtime"
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

// kattrConfig is sentry_config.kattr for the running kernel: without BTF
// the LSM hooks (which need BTF) are not in use and nothing is lost.
func kattrConfig() uint32 {
	f, err := KernelAttrFields()
	if err != nil {
		return 0
	}
	return f.kattrBits()
}

// Signing is what the running kernel does with a signed BPF_PROG_LOAD.
type Signing struct {
	Fields   bool   // the attr has signature/keyring_id (6.18+)
	Verifies bool   // the kernel checks signatures (else EOPNOTSUPP)
	How      string // how it was determined
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
