package rules

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// hits returns the ids of the rules of set that match the named program of
// a testdata object.
func hits(t *testing.T, set *Set, obj, name string) []string {
	t.Helper()
	progs, err := program.FromELF(testutils.Testdata(obj))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if p.Name == name {
			var ids []string
			for _, h := range Evaluate(set, p, analysis.Analyze(p, nil)).Hits {
				ids = append(ids, h.ID)
			}
			return ids
		}
	}
	t.Fatalf("%s has no program %s", obj, name)
	return nil
}

func TestEveryExampleRuleFileLoads(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example rule files (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			set, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Rules) == 0 {
				t.Fatal("no rules")
			}
			for _, r := range set.Rules {
				if r.Description == "" {
					t.Errorf("rule %s has no description", r.ID)
				}
			}
		})
	}
}

func TestSeedProgNamesIsOptIn(t *testing.T) {
	set, err := LoadFile("examples/seed-prog-names.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The seed's names still match with the opt-in file…
	for _, c := range [][2]string{{"pamspy.bpf.o", "handle_pam_ret"}, {"pamspy.bpf.o", "det_pam_get_authtok"}, {"sudoers.bpf.o", "handle_read_enter"}} {
		if got := hits(t, set, c[0], c[1]); !slices.Equal(got, []string{"seed-prog-names"}) {
			t.Errorf("opt-in file on %s/%s: %v, want [seed-prog-names]", c[0], c[1], got)
		}
	}
	// …and the defaults no longer hold the rule: a benign-looking program
	// named handle_* raises nothing for its name.
	for _, r := range MustDefaults().Rules {
		if r.ID == "seed-prog-names" || r.Match.ProgName != nil {
			t.Errorf("default rule %s judges program names", r.ID)
		}
	}
	if got := hits(t, MustDefaults(), "sudoers.bpf.o", "handle_read_enter"); len(got) != 0 {
		t.Errorf("defaults on handle_read_enter: %v, want nothing", got)
	}
}
