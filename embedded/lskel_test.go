package embedded

import (
	"bytes"
	"os"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// The light skeleton of exechijack.bpf.o, compiled into a binary, yields
// the object's programs: same kernel names, types, licenses, sizes, and
// the same instructions except where the loader patches map fds and CO-RE
// offsets.
func TestDecodeLightSkeletonFindsTheObjectsPrograms(t *testing.T) {
	bin, err := os.ReadFile(testutils.Testdata("lskel/exechijack-lskel"))
	if err != nil {
		t.Fatal(err)
	}
	objs, loaders, err := FindAll(bytes.NewReader(bin), int64(len(bin)))
	if err != nil || len(objs) != 0 || len(loaders) != 1 {
		t.Fatalf("%d ELF objects, loaders %v, %v", len(objs), loaders, err)
	}
	l, err := DecodeLightSkeleton(bin, loaders[0])
	if err != nil {
		t.Fatal(err)
	}
	if l.Section != ".rodata" {
		t.Errorf("loader in section %q, want .rodata", l.Section)
	}
	want, err := program.FromELF(testutils.Testdata("exechijack.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Programs) != len(want) {
		t.Fatalf("%d programs, the object has %d", len(l.Programs), len(want))
	}
	for i, w := range want {
		g := l.Programs[i]
		name := w.Name[:min(len(w.Name), 15)]
		if g.Name != name || g.Type != w.Type || g.License != w.License || len(g.Insns) != len(w.Insns) {
			t.Errorf("program %d: %s type %d %q %d bytes, object %s type %d %q %d bytes", i, g.Name, g.Type, g.License, len(g.Insns), name, w.Type, w.License, len(w.Insns))
			continue
		}
		same := 0
		for s := 0; s < len(g.Insns); s += 8 {
			if bytes.Equal(g.Insns[s:s+8], w.Insns[s:s+8]) {
				same++
			}
		}
		if same < len(g.Insns)/8*9/10 {
			t.Errorf("%s: only %d of %d slots equal the object's", g.Name, same, len(g.Insns)/8)
		}
		if !bytes.Equal(bin[g.InsnsOffset:g.InsnsOffset+int64(len(g.Insns))], g.Insns) {
			t.Errorf("%s: InsnsOffset does not point at the instructions", g.Name)
		}
	}
}

func TestDecodeLightSkeletonRefusesWhatIsNotOne(t *testing.T) {
	if _, err := DecodeLightSkeleton(append(bytes.Clone(loaderPrologue), make([]byte, 64)...), 0); err == nil {
		t.Error("a bare prologue decodes")
	}
	if _, err := DecodeLightSkeleton([]byte("not a loader"), 0); err == nil {
		t.Error("text decodes")
	}
}
