package insn

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestKernelTextMatchesBpftoolForTestObjects loads every program of every
// compiled test object under testdata/ (through cilium/ebpf, which creates
// the maps, applies CO-RE and links sub-programs) and compares our listing
// of its translated instructions with "bpftool prog dump xlated" line by
// line. Programs of a type this kernel refuses to load are skipped with the
// kernel's error.
func TestKernelTextMatchesBpftoolForTestObjects(t *testing.T) {
	testutils.RequireRoot(t, "loading the test objects and reading them back with bpftool")
	if testing.Short() {
		t.Skip("loads every test object and runs bpftool for each program (about a minute)")
	}
	objs, err := filepath.Glob(testutils.Testdata("*.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Skip("no compiled test objects under testdata/ yet")
	}
	kn := loadKernelNames(t)
	type loaded struct {
		name   string
		id     uint32
		xlated []byte
		jited  []uint64
	}
	var progs []loaded
	for _, obj := range objs {
		if slices.Contains(testprogs.ObjectLoaderRefuses, filepath.Base(obj)) {
			continue // cilium/ebpf cannot load them
		}
		spec, err := ebpf.LoadCollectionSpec(obj)
		if err != nil {
			t.Errorf("%s: %v", obj, err)
			continue
		}
		names := slices.Sorted(maps.Keys(spec.Programs))
		for _, name := range names {
			label := filepath.Base(obj) + "/" + name
			one := spec.Copy()
			for other := range one.Programs {
				if other != name {
					delete(one.Programs, other)
				}
			}
			for _, m := range one.Maps {
				if m.Type == ebpf.ProgramArray {
					m.Contents = nil // its programs are not loaded with this one
				}
			}
			coll, err := ebpf.NewCollection(one)
			if err != nil {
				if o, ok := testprogs.Lookup(filepath.Base(obj)); ok {
					if p, ok := o.Program(name); ok && !p.Loads && strings.Contains(err.Error(), p.RefusedFor) {
						t.Logf("%s: refused as testprogs lists (%s)", label, p.RefusedFor)
						continue
					}
				}
				if reason := unloadableHere(err); reason != "" {
					t.Logf("%s: not loadable on this kernel (%s): %v", label, reason, err)
					continue
				}
				t.Errorf("%s: load: %v", label, err)
				continue
			}
			t.Cleanup(func() { coll.Close() })
			prog := coll.Programs[name]
			info, err := prog.Info()
			if err != nil {
				t.Fatal(err)
			}
			id, ok := info.ID()
			if !ok {
				t.Fatalf("%s: kernel reports no program id", label)
			}
			xl, jited := fetchXlated(t, prog.FD())
			progs = append(progs, loaded{label, uint32(id), xl, jited})
		}
	}
	// One read of kallsyms after all loads lists every JITed sub-program.
	ks := readKallsyms(t)
	for _, p := range progs {
		t.Run(p.name, func(t *testing.T) {
			insns, _ := Decode(p.xlated)
			compareWithBpftool(t, p.id, BpftoolXlated(ks, p.jited, kn.helperName, DialectBpftool7), insns)
		})
	}
}

// unloadableHere says why this host refuses a program for reasons that are
// the host's, not the program's: LSM and fentry programs (EPERM here) and
// the helpers lockdown removes (bpf_probe_write_user) or the kernel lacks
// (bpf_override_return).
func unloadableHere(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, os.ErrPermission):
		return "program type refused with EPERM"
	case errors.Is(err, ebpf.ErrNotSupported):
		return "not supported"
	case strings.Contains(msg, "cannot use helper bpf_probe_write_user"):
		return "bpf_probe_write_user unavailable under lockdown"
	case strings.Contains(msg, "cannot use helper bpf_override_return"):
		return "bpf_override_return unavailable"
	}
	return ""
}
