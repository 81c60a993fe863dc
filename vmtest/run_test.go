package vmtest

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRowsJudgeEachSuite(t *testing.T) {
	console := filepath.Join(t.TempDir(), "console.log")
	log := "=== RUN   TestA\n--- FAIL: TestA (0.01s)\n    --- FAIL: TestA/sub_case (0.00s)\n--- PASS: TestB\n"
	if err := os.WriteFile(console, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	suites := []Suite{{Name: "a"}, {Name: "b"}}
	k := Kernel{Label: "6.1"}
	tests := []struct {
		name   string
		out    Outcome
		status []string
		passed []bool
	}{
		{name: "exit codes 0 and 1 are a pass and a failure",
			out:    Outcome{Results: Results{Suites: []SuiteResult{{"a", 0, Tally{3, 0, 0}}, {"b", 1, Tally{1, 2, 0}}}, Done: true}},
			status: []string{"PASS", "FAIL (exit 1)"}, passed: []bool{true, false}},
		{name: "exit code 0 without a passed test is no tests, a failure",
			out:    Outcome{Results: Results{Suites: []SuiteResult{{"a", 0, Tally{0, 0, 4}}, {"b", 0, Tally{}}}, Done: true}},
			status: []string{"NO TESTS", "NO TESTS"}, passed: []bool{false, false}},
		{name: "a suite the VM never reported fails as no result",
			out:    Outcome{Results: Results{Suites: []SuiteResult{{"a", 0, Tally{1, 0, 0}}}}},
			status: []string{"PASS", "NO RESULT"}, passed: []bool{true, false}},
		{name: "a timeout fails the suites without a result",
			out:    Outcome{TimedOut: true, Results: Results{Suites: []SuiteResult{{"a", 0, Tally{1, 0, 0}}}}},
			status: []string{"PASS", "TIMEOUT"}, passed: []bool{true, false}},
		{name: "a broken result channel fails even a reported pass",
			out:    Outcome{Err: errors.New("malformed"), Results: Results{Suites: []SuiteResult{{"a", 0, Tally{1, 0, 0}}}}},
			status: []string{"ERROR", "ERROR"}, passed: []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.out.Console = console
			rs := rows(k, "img", suites, tt.out)
			for i, r := range rs {
				if r.Status != tt.status[i] || r.Passed != tt.passed[i] {
					t.Errorf("suite %s: %s passed=%v, want %s passed=%v", r.Suite, r.Status, r.Passed, tt.status[i], tt.passed[i])
				}
			}
			if rs[1].Status == "FAIL (exit 1)" && !slices.Equal(rs[1].Failures, []string{"TestA", "TestA/sub_case"}) {
				t.Errorf("failures read from the console = %v", rs[1].Failures)
			}
		})
	}
}

func TestSummaryPrint(t *testing.T) {
	s := Summary{Wall: 95 * time.Second, Rows: []Row{
		{Kernel: "5.10", Image: "linux-image-5.10 1", Suite: "capabilities", Status: "PASS", Passed: true, Duration: 30 * time.Second,
			Reported: true, Tally: Tally{24, 0, 0}},
		{Kernel: "6.12-lockdown", Image: "linux-image-6.12 2", Suite: "capabilities", Status: "FAIL (exit 1)", Duration: 31 * time.Second,
			Console: "/out/6.12-lockdown/console.log", Failures: []string{"TestKernelCapabilities/x"}},
	}}
	var b bytes.Buffer
	s.Print(&b)
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "KERNEL") || strings.Index(lines[1], "linux-image") != strings.Index(lines[2], "linux-image") {
		t.Errorf("table columns are not aligned:\n%s", out)
	}
	for _, want := range []string{"24/0/0", "6.12-lockdown / capabilities: FAIL (exit 1)", "--- FAIL: TestKernelCapabilities/x", "/out/6.12-lockdown/console.log"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n1 passed, 1 failed\n") {
		t.Errorf("summary does not end with the count line:\n%s", out)
	}
}

func TestTestdataPacksCommittedFilesAtTheirHostPaths(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	if err := exec.Command("git", "-C", repo, "rev-parse").Run(); err != nil {
		t.Skip("not a git checkout")
	}
	out, err := exec.Command("git", "-C", repo, "ls-files", "testdata").Output()
	if err != nil {
		t.Fatal(err)
	}
	committed := strings.Fields(string(out))
	if len(committed) == 0 {
		t.Skip("the repository has no committed testdata")
	}
	// Others may rewrite testdata while this runs (shared tree): remember
	// modification times and compare contents only of files left alone.
	mtimes := map[string]time.Time{}
	for _, rel := range committed {
		if st, err := os.Stat(filepath.Join(repo, rel)); err == nil {
			mtimes[rel] = st.ModTime()
		}
	}
	files, err := testdata(context.Background(), repo, filepath.Join(repo, "vmtest"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]File{}
	for _, f := range files {
		names[f.Name] = f
	}
	for _, rel := range committed {
		abs := filepath.Join(repo, rel)
		f, ok := names[strings.TrimPrefix(abs, "/")]
		if _, err := os.Stat(abs); err != nil {
			continue // deleted in the working tree
		}
		if !ok {
			t.Errorf("committed %s is not packed", rel)
			continue
		}
		want, err := os.ReadFile(abs)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(abs); err != nil || !st.ModTime().Equal(mtimes[rel]) {
			continue
		}
		if !bytes.Equal(f.Data, want) {
			t.Errorf("%s: packed content differs from the file", rel)
		}
	}
	if len(files) > len(committed) {
		t.Errorf("packed %d files, but only %d are committed", len(files), len(committed))
	}
}

func TestEachHelperIsBuiltForX8664AndAs32BitWithA32Suffix(t *testing.T) {
	got := helperTargets([]string{"./internal/cmd/bpfload", "./x/tool", "./cmd/agent@native"})
	want := []helperTarget{
		{Pkg: "./internal/cmd/bpfload", Name: "bpfload", GOARCH: "amd64"},
		{Pkg: "./internal/cmd/bpfload", Name: "bpfload32", GOARCH: "386"},
		{Pkg: "./x/tool", Name: "tool", GOARCH: "amd64"},
		{Pkg: "./x/tool", Name: "tool32", GOARCH: "386"},
		{Pkg: "./cmd/agent", Name: "agent", GOARCH: "amd64"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("helperTargets = %+v, want %+v", got, want)
	}
}

// The ELF headers, read independently of the build, prove that bin/bpfload32
// is a static i386 executable and bin/bpfload a static x86-64 one.
func TestBuiltHelpersAreStaticExecutablesOfTheirArchitecture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bpfload twice")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Repo: repo, Helpers: []string{"./internal/cmd/bpfload"}, Log: io.Discard}
	files, err := buildHelpers(context.Background(), o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		class   elf.Class
		machine elf.Machine
	}{"bin/bpfload": {elf.ELFCLASS64, elf.EM_X86_64}, "bin/bpfload32": {elf.ELFCLASS32, elf.EM_386}}
	if len(files) != len(want) {
		t.Fatalf("built %d helper files, want %d", len(files), len(want))
	}
	for _, f := range files {
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected helper file %s", f.Name)
			continue
		}
		if f.Mode != 0o755 {
			t.Errorf("%s: mode %v, want 0755", f.Name, f.Mode)
		}
		e, err := elf.NewFile(bytes.NewReader(f.Data))
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if e.Class != w.class || e.Machine != w.machine || e.Type != elf.ET_EXEC {
			t.Errorf("%s: %v %v %v, want %v %v ET_EXEC", f.Name, e.Class, e.Machine, e.Type, w.class, w.machine)
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has an interpreter: not static, and the initramfs has no libc", f.Name)
			}
		}
	}
}
