package output

import "github.com/ebpf-sentry/ebpf-sentry/program"

// ProgTypeName is the bpftool name of a bpf_prog_type, "" when unknown (a
// newer kernel): events then carry only the number.
func ProgTypeName(t uint32) string {
	n, _ := program.ProgTypes.Name(t)
	return n
}

// AttachTypeName is the bpftool name of a bpf_attach_type, "" when unknown.
func AttachTypeName(t uint32) string {
	n, _ := program.AttachTypes.Name(t)
	return n
}
