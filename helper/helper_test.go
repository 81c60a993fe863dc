package helper

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// Ids from include/uapi/linux/bpf.h (the ids are ABI and never change).
var knownIDs = []struct {
	id   int32
	name string
}{
	{0, "bpf_unspec"},
	{1, "bpf_map_lookup_elem"},
	{6, "bpf_trace_printk"},
	{12, "bpf_tail_call"},
	{14, "bpf_get_current_pid_tgid"},
	{36, "bpf_probe_write_user"},
	{58, "bpf_override_return"},
	{109, "bpf_send_signal"},
	{112, "bpf_probe_read_user"},
	{131, "bpf_ringbuf_reserve"},
	{181, "bpf_loop"},
	{211, "bpf_cgrp_storage_delete"},
}

func TestStaticTableHasTheUAPIIDs(t *testing.T) {
	tab := Static()
	for _, k := range knownIDs {
		got, ok := tab.Name(k.id)
		if !ok || got != k.name {
			t.Errorf("Name(%d) = %q, %v; want %q", k.id, got, ok, k.name)
		}
		id, ok := tab.ID(k.name)
		if !ok || id != k.id {
			t.Errorf("ID(%q) = %d, %v; want %d", k.name, id, ok, k.id)
		}
	}
	if tab.Len() != 212 {
		t.Errorf("static table has %d ids, want 212 (0..211, frozen since Linux 6.2)", tab.Len())
	}
}

func TestStaticTableMatchesRunningKernelBTF(t *testing.T) {
	// /sys/kernel/btf/vmlinux is mode 0444, so this needs no privileges, only
	// a kernel built with CONFIG_DEBUG_INFO_BTF.
	k, err := Kernel()
	if err != nil {
		// Not a privilege matter, but CI's kernel has BTF: there this must run.
		testutils.SkipOrFail(t, fmt.Sprintf("kernel BTF not available: %v", err))
	}
	s := Static()
	for id := int32(0); id < int32(max(k.Len(), s.Len())); id++ {
		kn, kok := k.Name(id)
		sn, sok := s.Name(id)
		switch {
		case kok && sok && kn != sn:
			t.Errorf("id %d: kernel says %s, static table says %s", id, kn, sn)
		case kok && !sok:
			t.Errorf("id %d: kernel has %s, static table has nothing (regenerate with a newer libbpf-dev?)", id, kn)
		case !kok && sok && id < int32(k.Len()):
			t.Errorf("id %d: static table has %s, kernel has a gap", id, sn)
		}
	}
}

func TestIDAcceptsEveryNameForm(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		wantID int32
		wantOK bool
	}{
		{"the C function name resolves", "bpf_map_lookup_elem", 1, true},
		{"the bare name resolves", "map_lookup_elem", 1, true},
		{"the enum constant resolves", "BPF_FUNC_map_lookup_elem", 1, true},
		{"a misspelled name does not resolve", "bpf_map_lookup_elm", 0, false},
		{"the enum terminator is not a helper", "__BPF_FUNC_MAX_ID", 0, false},
		{"an empty name does not resolve", "", 0, false},
		{"a lone prefix does not resolve", "bpf_", 0, false},
		{"names are case sensitive", "BPF_MAP_LOOKUP_ELEM", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := Static().ID(tt.in)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("ID(%q) = %d, %v; want %d, %v", tt.in, id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}

func TestNameRejectsIDsOutsideTheTable(t *testing.T) {
	for _, id := range []int32{-1, 212, 1 << 20, -1 << 31} {
		if n, ok := Static().Name(id); ok {
			t.Errorf("Name(%d) = %q, want no name", id, n)
		}
		if n, ok := Static().EnumName(id); ok {
			t.Errorf("EnumName(%d) = %q, want no name", id, n)
		}
	}
	if n, _ := Static().EnumName(1); n != "BPF_FUNC_map_lookup_elem" {
		t.Errorf("EnumName(1) = %q", n)
	}
}

func TestAllListsEveryHelperInIDOrder(t *testing.T) {
	var ids []int32
	for id, name := range Static().All() {
		if got, _ := Static().Name(id); got != name {
			t.Errorf("All gave %d %s, Name says %s", id, name, got)
		}
		ids = append(ids, id)
	}
	if len(ids) != 212 || ids[0] != 0 || ids[211] != 211 {
		t.Errorf("All gave %d ids from %v to %v", len(ids), ids[0], ids[len(ids)-1])
	}
	for range Static().All() {
		break // stopping early must not panic
	}
}

func TestNearest(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   string
		wantOK bool
	}{
		{"a dropped letter is corrected", "bpf_map_lookup_elm", "bpf_map_lookup_elem", true},
		{"a swapped pair is corrected", "bpf_porbe_read", "bpf_probe_read", true},
		{"the enum form is corrected too", "BPF_FUNC_send_signl", "bpf_send_signal", true},
		{"upper case is forgiven", "BPF_GET_CURRENT_PID_TGID", "bpf_get_current_pid_tgid", true},
		{"an exact name suggests itself", "bpf_loop", "bpf_loop", true},
		{"gibberish gets no suggestion", "xyzzy_frobnicate_the_kernel", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Static().Nearest(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Nearest(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// specWith builds a BTF blob holding one enum bpf_func_id with the given values.
func specWith(t *testing.T, typ btf.Type) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(typ); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestFromBTFNamesHelpersNewerThanTheStaticTable(t *testing.T) {
	spec := specWith(t, &btf.Enum{Name: "bpf_func_id", Size: 4, Values: []btf.EnumValue{
		{Name: "BPF_FUNC_unspec", Value: 0},
		{Name: "BPF_FUNC_map_lookup_elem", Value: 1},
		{Name: "BPF_FUNC_from_the_future", Value: 300},
		{Name: "__BPF_FUNC_MAX_ID", Value: 301},
	}})
	tab, err := FromBTF(spec)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := tab.Name(300); !ok || n != "bpf_from_the_future" {
		t.Errorf("Name(300) = %q, %v", n, ok)
	}
	if _, ok := tab.Name(2); ok {
		t.Error("id 2 is not in this BTF but got a name")
	}
	if _, ok := tab.ID("__BPF_FUNC_MAX_ID"); ok {
		t.Error("the terminator became a helper")
	}
	filled := tab.fill(Static())
	if n, ok := filled.Name(2); !ok || n != "bpf_map_update_elem" {
		t.Errorf("after fill, Name(2) = %q, %v; want bpf_map_update_elem from the static table", n, ok)
	}
	if n, ok := filled.Name(300); !ok || n != "bpf_from_the_future" {
		t.Errorf("after fill, Name(300) = %q, %v", n, ok)
	}
}

func TestFromBTFRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		name string
		typ  btf.Type
	}{
		{"a spec without the enum", &btf.Int{Name: "int", Size: 4}},
		{"a bpf_func_id that is a struct", &btf.Struct{Name: "bpf_func_id"}},
		{"an enum without helpers", &btf.Enum{Name: "bpf_func_id", Size: 4, Values: []btf.EnumValue{{Name: "X", Value: 1}}}},
		{"an absurd id", &btf.Enum{Name: "bpf_func_id", Size: 4, Values: []btf.EnumValue{{Name: "BPF_FUNC_x", Value: 1 << 30}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FromBTF(specWith(t, tt.typ)); err == nil {
				t.Error("no error")
			}
		})
	}
	_, err := FromBTF(specWith(t, &btf.Int{Name: "int", Size: 4}))
	if !errors.Is(err, ErrNoEnum) {
		t.Errorf("missing enum: %v is not ErrNoEnum", err)
	}
}

func TestDefaultPrefersTheKernel(t *testing.T) {
	d := Default()
	if _, err := Kernel(); err == nil && d.Source() != "kernel BTF" {
		t.Errorf("kernel BTF readable but Default is from %s", d.Source())
	}
	if n, ok := d.Name(1); !ok || n != "bpf_map_lookup_elem" {
		t.Errorf("Default().Name(1) = %q, %v", n, ok)
	}
}

func BenchmarkName(b *testing.B) {
	tab := Static()
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.Name(int32(i % 212)); !ok {
			b.Fatal("missing")
		}
	}
}

// Name and ID answer from the static table first (no kernel BTF parse at
// start-up); on every id the Default table knows they must answer as it.
func TestStaticFirstAnswersAsDefault(t *testing.T) {
	d := Default()
	for id, name := range d.All() {
		if n, ok := Name(id); !ok || n != name {
			t.Errorf("Name(%d) = %q, %v; Default says %q", id, n, ok, name)
		}
		if got, ok := ID(name); !ok || got != id {
			t.Errorf("ID(%q) = %d, %v; Default says %d", name, got, ok, id)
		}
	}
	if _, ok := Name(int32(d.Len()) + 1000); ok {
		t.Errorf("Name answers for an id no table has")
	}
}
