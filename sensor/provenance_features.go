package sensor

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
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
