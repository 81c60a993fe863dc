package helper

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/suggest"
)

//go:generate go run gen_static.go -in /usr/include/bpf/bpf_helper_defs.h -out static.go

// Prefixes a helper name may carry: the C function name (bpf_map_lookup_elem)
// and the enum constant (BPF_FUNC_map_lookup_elem).
const (
	funcPrefix = "bpf_"
	enumPrefix = "BPF_FUNC_"
)

// maxID bounds the ids accepted from BTF so that a hostile or corrupt spec
// cannot make us allocate a huge table; the kernel has about 212 helpers.
const maxID = 1 << 16

// ErrNoEnum means a BTF spec has no usable enum bpf_func_id.
var ErrNoEnum = errors.New("BTF has no enum bpf_func_id")

// Table maps helper ids to names and back. The zero value is empty; a Table is
// immutable after construction and safe for concurrent use.
type Table struct {
	short  []string // by id, without prefix; "" where the id has no helper
	full   []string // by id, "bpf_" + short (precomputed: formatting calls Name per call insn)
	enum   []string // by id, "BPF_FUNC_" + short
	ids    map[string]int32
	source string
}

func newTable(short []string, source string) *Table {
	t := &Table{
		short:  short,
		full:   make([]string, len(short)),
		enum:   make([]string, len(short)),
		ids:    make(map[string]int32, len(short)),
		source: source,
	}
	for id, n := range short {
		if n == "" {
			continue
		}
		t.full[id] = funcPrefix + n
		t.enum[id] = enumPrefix + n
		t.ids[n] = int32(id)
	}
	return t
}

var (
	staticOnce  sync.Once
	staticTable *Table
)

// Static returns the built-in table (generated from libbpf's bpf_helper_defs.h).
func Static() *Table {
	staticOnce.Do(func() {
		staticTable = newTable(staticNames[:], "static table (libbpf bpf_helper_defs.h)")
	})
	return staticTable
}

// FromBTF reads enum bpf_func_id from spec.
func FromBTF(spec *btf.Spec) (*Table, error) {
	typ, err := spec.AnyTypeByName("bpf_func_id")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoEnum, err)
	}
	enum, ok := typ.(*btf.Enum)
	if !ok {
		return nil, fmt.Errorf("%w: bpf_func_id is a %T, not an enum", ErrNoEnum, typ)
	}
	var short []string
	for _, v := range enum.Values {
		name, ok := strings.CutPrefix(v.Name, enumPrefix)
		if !ok || name == "" {
			continue // __BPF_FUNC_MAX_ID and anything that is not a helper
		}
		if v.Value >= maxID {
			return nil, fmt.Errorf("enum bpf_func_id: %s has implausible id %d", v.Name, v.Value)
		}
		for uint64(len(short)) <= v.Value {
			short = append(short, "")
		}
		short[v.Value] = name
	}
	if len(short) == 0 {
		return nil, fmt.Errorf("%w: enum bpf_func_id has no BPF_FUNC_ values", ErrNoEnum)
	}
	return newTable(short, "BTF"), nil
}

// Kernel reads the table from the running kernel's BTF (/sys/kernel/btf/vmlinux).
func Kernel() (*Table, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	t, err := FromBTF(spec)
	if err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	t.source = "kernel BTF"
	return t, nil
}

var (
	defaultOnce  sync.Once
	defaultTable *Table
)

// Default returns the running kernel's table with gaps filled from the static
// one (an older kernel still lets us name helpers of programs built for newer
// ones), or the static table when the kernel's BTF cannot be read. It is
// computed once.
func Default() *Table {
	defaultOnce.Do(func() {
		k, err := Kernel()
		if err != nil {
			defaultTable = Static()
			return
		}
		defaultTable = k.fill(Static())
	})
	return defaultTable
}

// fill returns t with ids t lacks taken from other.
func (t *Table) fill(other *Table) *Table {
	short := append([]string(nil), t.short...)
	for id, n := range other.short {
		if id >= len(short) {
			short = append(short, other.short[id:]...)
			break
		}
		if short[id] == "" {
			short[id] = n
		}
	}
	return newTable(short, t.source)
}

// Source says where the table came from, for diagnostics.
func (t *Table) Source() string { return t.source }

// Len is one more than the highest helper id in the table.
func (t *Table) Len() int { return len(t.short) }

// All yields every helper id in the table with its C name, in id order.
func (t *Table) All() iter.Seq2[int32, string] {
	return func(yield func(int32, string) bool) {
		for id, n := range t.full {
			if n != "" && !yield(int32(id), n) {
				return
			}
		}
	}
}

// Name returns the C name of helper id, e.g. "bpf_map_lookup_elem" for 1.
func (t *Table) Name(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.full) || t.full[id] == "" {
		return "", false
	}
	return t.full[id], true
}

// EnumName returns the enum constant of helper id, e.g. "BPF_FUNC_map_lookup_elem".
func (t *Table) EnumName(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.enum) || t.enum[id] == "" {
		return "", false
	}
	return t.enum[id], true
}

// ID returns the id of a helper named bpf_map_lookup_elem, map_lookup_elem or
// BPF_FUNC_map_lookup_elem.
func (t *Table) ID(name string) (int32, bool) {
	id, ok := t.ids[bare(name)]
	return id, ok
}

func bare(name string) string {
	if n, ok := strings.CutPrefix(name, enumPrefix); ok {
		return n
	}
	if n, ok := strings.CutPrefix(name, funcPrefix); ok {
		return n
	}
	return name
}

// Nearest suggests the helper whose name is closest to name (edit distance),
// for "unknown helper X, did you mean Y" messages. It returns the C name and
// false when nothing is close enough to be a plausible typo.
func (t *Table) Nearest(name string) (string, bool) {
	short, ok := suggest.Closest(strings.ToLower(bare(name)), slices.Values(t.short))
	if !ok {
		return "", false
	}
	return funcPrefix + short, true
}

// Name returns the C name of helper id from the Default table. Helper ids
// are kernel ABI (enum bpf_func_id only grows), so a helper the static
// table knows has the same name on every kernel that has it: the kernel's
// BTF (~40-60 ms of CPU to parse, before the agent can judge a load: it
// resolves the rules' helper names) is read only for ids the static table
// does not know (TestStaticTableMatchesRunningKernelBTF,
// TestStaticFirstAnswersAsDefault).
func Name(id int32) (string, bool) {
	if n, ok := Static().Name(id); ok {
		return n, true
	}
	return Default().Name(id)
}

// ID returns the id of a helper named in any of the forms Table.ID accepts,
// from the Default table; like Name, the static table answers first.
func ID(name string) (int32, bool) {
	if id, ok := Static().ID(name); ok {
		return id, true
	}
	return Default().ID(name)
}

// Nearest suggests the closest helper name from the Default table.
func Nearest(name string) (string, bool) { return Default().Nearest(name) }
