package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

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

func TestFingerprintAllowlistExemptsExactlyTheListedPrograms(t *testing.T) {
	set, err := LoadFile("examples/allow-agents-by-fingerprint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"override.bpf.o", "block_getdents"}, {"antiforensics.bpf.o", "kill_bpftool"}} {
		if got := hits(t, set, c[0], c[1]); len(got) != 0 {
			t.Errorf("%s/%s: %v despite its fingerprint being allowed", c[0], c[1], got)
		}
	}
	// The same rules without their allow entries flag both: the
	// fingerprint, nothing else, is what exempts them.
	for _, r := range set.Rules {
		r.Allow = nil
	}
	if got := hits(t, set, "override.bpf.o", "block_getdents"); !slices.Equal(got, []string{"override-return"}) {
		t.Errorf("without allow entries: %v, want [override-return]", got)
	}
	if got := hits(t, set, "antiforensics.bpf.o", "kill_bpftool"); !slices.Equal(got, []string{"send-signal-from-tracing"}) {
		t.Errorf("without allow entries: %v, want [send-signal-from-tracing]", got)
	}
}

func explainOf(t *testing.T, set *Set, obj, name string) map[string]Explanation {
	t.Helper()
	progs, err := program.FromELF(testutils.Testdata(obj))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if p.Name == name {
			out := map[string]Explanation{}
			for _, e := range Explain(set, p, analysis.Analyze(p, nil)) {
				out[e.ID] = e
			}
			return out
		}
	}
	t.Fatalf("%s has no program %s", obj, name)
	return nil
}

func TestExplainShowsMatchesAllowedMatchesAndNearMisses(t *testing.T) {
	// A match lists every predicate with the instructions that made it hold.
	e := explainOf(t, MustDefaults(), "surface.bpf.o", "tc_backdoor")["packet-backdoor"]
	if e.Outcome != OutcomeMatch || len(e.Failed) != 0 || e.Predicates != 3 {
		t.Fatalf("packet-backdoor on tc_backdoor: %+v", e)
	}
	for _, r := range e.Held {
		if (r.Predicate == "helpers_any" || r.Predicate == "strings") && len(r.Insns) == 0 {
			t.Errorf("held %s names no instruction: %v", r.Predicate, r)
		}
	}
	// A benign TC counter is a near miss of the same rule: its type holds,
	// the rewriting helpers and command strings do not.
	e = explainOf(t, MustDefaults(), "netcount.bpf.o", "tc_count_egress")["packet-backdoor"]
	var failed []string
	for _, f := range e.Failed {
		failed = append(failed, f.Predicate)
	}
	if e.Outcome != OutcomeNearMiss || !slices.Equal(failed, []string{"helpers_any", "strings"}) {
		t.Errorf("packet-backdoor on tc_count_egress: %s, failed %v", e.Outcome, failed)
	}
	// A rule the program satisfies but an allow entry exempts says which.
	set, err := LoadFile("examples/allow-agents-by-fingerprint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e = explainOf(t, set, "override.bpf.o", "block_getdents")["override-return"]
	if e.Outcome != OutcomeAllowed || e.Allow != "sha256 b5b1868b960616ee569168642d61f410b4579bfb992c9a016f273d8e6c6383f9" {
		t.Errorf("override-return on block_getdents: %+v", e)
	}
	// Agreement with Evaluate on every default and test program.
	objs, _ := filepath.Glob(testutils.Testdata("*.bpf.o"))
	for _, obj := range objs {
		progs, err := program.FromELF(obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range progs {
			r := analysis.Analyze(p, nil)
			matched := map[string]bool{}
			for _, h := range Evaluate(MustDefaults(), p, r).Hits {
				matched[h.ID] = true
			}
			for _, e := range Explain(MustDefaults(), p, r) {
				if (e.Outcome == OutcomeMatch) != matched[e.ID] {
					t.Errorf("%s/%s: %s explained %s, Evaluate matched=%v", filepath.Base(obj), p.Name, e.ID, e.Outcome, matched[e.ID])
				}
			}
		}
	}
}

// The exe-identity example spares exactly the executable it names: the
// stand-in identity is replaced by a real file's (this test binary: inode,
// device and sha256), and a loader with that identity is spared while the
// same program from any other executable, or from a file with the same
// inode but other contents, is reported.
func TestExeIdentityExampleSparesOnlyTheListedExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	major, minor := unix.Major(st.Dev), unix.Minor(st.Dev)
	text, err := os.ReadFile("examples/allow-agents-by-exe-identity.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stand := `{inode: 1835021, dev: "259:1", sha256: "0000000000000000000000000000000000000000000000000000000000000000"}`
	if !strings.Contains(string(text), stand) {
		t.Fatal("the example no longer holds the stand-in identity this test replaces")
	}
	real := fmt.Sprintf(`{inode: %d, dev: "%d:%d", sha256: "%s"}`, st.Ino, major, minor, hex.EncodeToString(sum[:]))
	set, err := Parse("exe-identity.yaml", []byte(strings.Replace(string(text), stand, real, 1)))
	if err != nil {
		t.Fatal(err)
	}
	progs, err := program.FromELF(testutils.Testdata("antiforensics.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	var p *program.Program
	for _, q := range progs {
		if q.Name == "kill_bpftool" {
			p = q
		}
	}
	if p == nil {
		t.Fatal("antiforensics.bpf.o has no kill_bpftool")
	}
	rep := analysis.Analyze(p, nil)
	for _, c := range []struct {
		name   string
		loader program.Loader
		spared bool
	}{
		{"the listed executable", program.Loader{Comm: "x", ExeInode: st.Ino, ExeDev: KernelDev(major, minor), ExeSHA256: hex.EncodeToString(sum[:])}, true},
		{"another executable named like the agent", program.Loader{Comm: "tetragon", ExeInode: st.Ino + 1, ExeDev: KernelDev(major, minor), ExeSHA256: hex.EncodeToString(sum[:])}, false},
		{"the same inode rewritten", program.Loader{Comm: "x", ExeInode: st.Ino, ExeDev: KernelDev(major, minor), ExeSHA256: strings.Repeat("ab", 32)}, false},
	} {
		l := c.loader
		p.Loader = &l
		got := Evaluate(set, p, rep).Hits
		if c.spared != (len(got) == 0) {
			t.Errorf("%s: hits %v, spared want %v", c.name, got, c.spared)
		}
	}
}
