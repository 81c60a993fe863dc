package sensor

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
)

// The enricher's kernel BTF is parsed once while loads need it, dropped
// after, parsed again only for a target not named before, and never
// retried on a kernel without BTF.
func TestKernelNamesKeepsTheKernelBTFOnlyWhileNeeded(t *testing.T) {
	var b btf.Builder
	id, err := b.Add(&btf.Struct{Name: "bpf_prog_load_target", Size: 0})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Add(&btf.Int{Name: "other_int", Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &kernelNames{keep: time.Hour, load: func() (*btf.Spec, error) { return btf.LoadSpecFromReader(bytes.NewReader(raw)) }}
	for range 3 {
		if n, ok := k.name(id); !ok || n != "bpf_prog_load_target" {
			t.Fatalf("name(%d) = %q, %v", id, n, ok)
		}
	}
	if k.loads != 1 || k.spec == nil {
		t.Fatalf("%d parses, spec kept %v; want 1 and kept", k.loads, k.spec != nil)
	}
	k.drop() // what the timer does keep after the last use
	if k.spec != nil {
		t.Fatal("spec kept after drop")
	}
	if n, ok := k.name(id); !ok || n != "bpf_prog_load_target" || k.loads != 1 {
		t.Fatalf("a known id after drop: %q, %v, %d parses (want the remembered name, no parse)", n, ok, k.loads)
	}
	if n, ok := k.name(other); !ok || n != "other_int" || k.loads != 2 {
		t.Fatalf("a new id after drop: %q, %v, %d parses (want a second parse)", n, ok, k.loads)
	}
	if _, ok := k.name(9999); ok {
		t.Fatal("an id the BTF does not have was named")
	}
	k.timer.Stop()

	none := &kernelNames{keep: time.Hour, load: func() (*btf.Spec, error) { return nil, errors.New("no BTF") }}
	for range 3 {
		if _, ok := none.name(1); ok {
			t.Fatal("named without BTF")
		}
	}
	if none.loads != 1 {
		t.Fatalf("%d parses without BTF, want 1", none.loads)
	}
}
