package rules

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// The direct ELF reader (used when cilium/ebpf's loader refuses an object,
// e.g. for one added weak map) must give every program the verdict the
// loader's reading gives: otherwise refusing the loader is an evasion.
func TestDirectReaderGivesTheSameVerdicts(t *testing.T) {
	set := MustDefaults()
	objs, _ := filepath.Glob(testutils.Testdata("*.bpf.o"))
	hits := 0
	for _, obj := range objs {
		data, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		viaLoader, err := program.FromELFReader(obj, bytes.NewReader(data))
		if err != nil || len(viaLoader) == 0 || viaLoader[0].ObjectLoaderError != "" {
			continue
		}
		direct, err := program.ReadELFDirect(obj, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", obj, err)
		}
		if len(direct) != len(viaLoader) {
			t.Fatalf("%s: %d programs read directly, %d by the loader", obj, len(direct), len(viaLoader))
		}
		for i, p := range viaLoader {
			ids := func(p *program.Program) []string {
				var out []string
				for _, h := range Evaluate(set, p, analysis.Analyze(p, nil)).Hits {
					out = append(out, h.ID)
				}
				slices.Sort(out)
				return out
			}
			want, got := ids(p), ids(direct[i])
			hits += len(want)
			if direct[i].Name != p.Name || !slices.Equal(got, want) {
				t.Errorf("%s: %s: direct reader %s hits %v, loader %s hits %v", obj, p.Name, direct[i].Name, got, p.Name, want)
			}
		}
	}
	if hits == 0 {
		t.Fatal("no default rule matched any test object: the comparison shows nothing")
	}
}

// The evasion of issue 16: one weak map made cilium/ebpf refuse a rootkit
// object whole, so it got an error instead of its block verdict. Making a
// map of every malicious-style test object weak must leave its verdicts as
// they were.
func TestAWeakMapDoesNotHideAMaliciousObject(t *testing.T) {
	set := MustDefaults()
	objs, _ := filepath.Glob(testutils.Testdata("*.bpf.o"))
	tried := 0
	for _, obj := range objs {
		if !malicious(t, obj) {
			continue
		}
		data, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		weak, ok := weakenAMap(t, data)
		if !ok {
			continue // no map in .maps
		}
		tried++
		before, err := program.FromELFReader(obj, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		after, err := program.FromELFReader(obj, bytes.NewReader(weak))
		if err != nil {
			t.Fatalf("%s with a weak map: %v", obj, err)
		}
		if len(after) != len(before) || after[0].ObjectLoaderError == "" {
			t.Fatalf("%s: %d programs, loader error %q: the weak map did not make the loader refuse it", obj, len(after), after[0].ObjectLoaderError)
		}
		objHits := 0
		for i, p := range before {
			ids := func(p *program.Program) []string {
				var out []string
				for _, h := range Evaluate(set, p, analysis.Analyze(p, nil)).Hits {
					out = append(out, h.ID)
				}
				slices.Sort(out)
				return out
			}
			want, got := ids(p), ids(after[i])
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s: hits %v with a weak map, %v without", obj, p.Name, got, want)
			}
			objHits += len(want)
		}
		if objHits == 0 {
			tried-- // no default rule flags it: nothing for the weak map to hide
		}
	}
	if tried == 0 {
		t.Fatal("no malicious-style object with a BTF map to weaken")
	}
}

// weakenAMap returns data with the first symbol of .maps bound STB_WEAK.
func weakenAMap(t *testing.T, data []byte) ([]byte, bool) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	maps := f.Section(".maps")
	symtab := f.Section(".symtab")
	syms, err := f.Symbols()
	if maps == nil || symtab == nil || err != nil {
		return nil, false
	}
	for i, s := range syms {
		if int(s.Section) < len(f.Sections) && f.Sections[s.Section] == maps && elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
			out := bytes.Clone(data)
			info := &out[symtab.Offset+uint64(i+1)*24+4]
			*info = byte(elf.ST_INFO(elf.STB_WEAK, elf.ST_TYPE(s.Info)))
			return out, true
		}
	}
	return nil, false
}
