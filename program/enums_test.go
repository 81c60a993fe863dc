package program

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestEnumsMatchKernelBTF checks every value the running kernel defines
// against the tables: same name for the same value, none missing. The
// tables may know newer values than this kernel.
func TestEnumsMatchKernelBTF(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, btf.ErrNotSupported) {
		testutils.SkipOrFail(t, "kernel BTF unavailable: "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		enum   *Enum
		btf    string
		prefix string
	}{
		{"program types name every bpf_prog_type", ProgTypes, "bpf_prog_type", "BPF_PROG_TYPE_"},
		{"attach types name every bpf_attach_type", AttachTypes, "bpf_attach_type", "BPF_"},
		{"map types name every bpf_map_type", MapTypes, "bpf_map_type", "BPF_MAP_TYPE_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *btf.Enum
			if err := spec.TypeByName(tt.btf, &e); err != nil {
				t.Fatalf("kernel BTF: %v", err)
			}
			// Several constants may share a value (CGROUP_STORAGE and its
			// _DEPRECATED alias): the table must carry one of them.
			kernel := map[uint32][]string{}
			for _, v := range e.Values {
				if !strings.HasPrefix(v.Name, "__MAX") {
					kernel[uint32(v.Value)] = append(kernel[uint32(v.Value)], strings.ToLower(strings.TrimPrefix(v.Name, tt.prefix)))
				}
			}
			checked := 0
			for v, names := range kernel {
				got, ok := tt.enum.Name(v)
				if !ok || !slices.Contains(names, got) {
					t.Errorf("%s value %d: table says %q (known %v), kernel says %q", tt.btf, v, got, ok, names)
				}
				checked++
			}
			if checked < 30 {
				t.Errorf("only %d values of %s checked: wrong enum?", checked, tt.btf)
			}
		})
	}
}

func TestEnumLookups(t *testing.T) {
	tests := []struct {
		name string
		run  func() (string, bool)
		want string
	}{
		{"a name is found by value", func() (string, bool) { return ProgTypes.Name(5) }, "tracepoint"},
		{"a value past the table has no name", func() (string, bool) { return MapTypes.Name(1000) }, ""},
		{"NameOr says what and the number for an unknown value", func() (string, bool) { return AttachTypes.NameOr(9999), true }, "attach type 9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := tt.run(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("values are found by name in any case", func(t *testing.T) {
		if v, ok := MapTypes.Value("RingBuf"); !ok || v != 27 {
			t.Errorf("Value(RingBuf) = %d, %v; want 27, true", v, ok)
		}
		if _, ok := ProgTypes.Value("no_such_type"); ok {
			t.Error("an unknown name was found")
		}
	})
}
