//go:build linux && amd64

package main

import (
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
	"github.com/ebpf-sentry/ebpf-sentry/target"
)

// A block rule on an interface name becomes one kernel-table key per
// network namespace that has an interface of that name: (namespace inode,
// its ifindex there), never a bare index that would match another
// namespace's interface.
func TestAttachInterfaceRuleIsKeyedPerNetworkNamespace(t *testing.T) {
	testutils.RequireRoot(t, "making network namespaces")
	a, b := testutils.NewNetns(t, "sentry-attach3-rule"), testutils.NewNetns(t, "sentry-attach3-rule")
	a.AddVeth(t, "sentry3r", 11)
	b.AddVeth(t, "sentry3r", 12)
	set, err := rules.Parse("rules.yaml", []byte(`
- id: no-sentry3r
  description: nothing attaches to sentry3r (attach3 test)
  severity: high
  action: block
  match:
    attach_interface: ["sentry3r"]
`))
	if err != nil {
		t.Fatal(err)
	}
	entries, ids, _ := attachBlocks(target.NewResolver(), set)
	got := map[uint64]bool{}
	for _, e := range entries {
		if e.Kind != sensor.KeyIfindex || ids[e.Rule] != "no-sentry3r" {
			t.Errorf("entry %+v (rule %q), want an interface key of no-sentry3r", e, ids[e.Rule])
		}
		got[e.Value] = true
	}
	want := []uint64{sensor.IfindexKey(a.Ino, 11), sensor.IfindexKey(b.Ino, 12)}
	if len(got) != 2 || !got[want[0]] || !got[want[1]] {
		t.Errorf("keys %v, want exactly %v", got, want)
	}
}
