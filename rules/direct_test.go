package rules

import (
	"bytes"
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
