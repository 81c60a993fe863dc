package analysis

import (
	"strconv"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// ProgTypeName is bpftool's name for a program type, or "prog type N" when unknown.
func ProgTypeName(t uint32) string { return program.ProgTypes.NameOr(t) }

// MapTypeName is bpftool's name for a map type, or "map type N" when unknown.
func MapTypeName(t uint32) string { return program.MapTypes.NameOr(t) }

// DefaultHelperName names helper id as the kernel does ("bpf_map_lookup_elem")
// from package helper's table (running kernel's BTF, static table for the
// gaps); unknown ids become "helper#N" so a newer helper is still counted.
var DefaultHelperName = func(id int32) string {
	if n, ok := helper.Default().Name(id); ok {
		return n
	}
	return "helper#" + strconv.FormatInt(int64(id), 10)
}

// TableHelperName names helper id from package helper's table, or "" when
// the table does not know it: what disassemblers consult first (as
// bpftool's compiled-in helper names are) before naming a call another way,
// e.g. by kernel address in a translated program.
func TableHelperName(id int32) string {
	n, _ := helper.Default().Name(id)
	return n
}
