package capabilities

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeIa32Loader puts a shell script named Ia32Loader first on PATH. It
// dies of SIGTRAP without printing while the count file holds fewer than
// aborts lines, and prints a load result for its own pid after that.
func fakeIa32Loader(t *testing.T, aborts int) string {
	t.Helper()
	dir := t.TempDir()
	count := filepath.Join(dir, "runs")
	script := "#!/bin/sh\n" +
		"echo run >> " + count + "\n" +
		"if [ $(wc -l < " + count + ") -le " + strconv.Itoa(aborts) + " ]; then kill -TRAP $$; fi\n" +
		"echo '{\"pid\":'$$',\"ret\":3,\"id\":42}'\n"
	if err := os.WriteFile(filepath.Join(dir, Ia32Loader), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return count
}

func runsIn(t *testing.T, count string) int {
	t.Helper()
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestIa32StartupAbortsAreRetriedAndReported(t *testing.T) {
	count := fakeIa32Loader(t, ia32Attempts-1)
	r, err := runIa32Loader()
	if err != nil {
		t.Fatalf("after %d aborts the next run printed its result, yet: %v", ia32Attempts-1, err)
	}
	if r.ID != 42 || r.Ret != 3 {
		t.Errorf("result %+v, want the last run's id 42, ret 3", r)
	}
	if len(r.Aborts) != ia32Attempts-1 {
		t.Errorf("aborts %q, want %d", r.Aborts, ia32Attempts-1)
	}
	for _, a := range r.Aborts {
		if !strings.Contains(a, "SIGTRAP before printing anything") {
			t.Errorf("abort %q does not say what happened", a)
		}
	}
	if n := runsIn(t, count); n != ia32Attempts {
		t.Errorf("%d runs, want %d", n, ia32Attempts)
	}
	if note := abortNote(r); !strings.Contains(note, "start-up aborts") {
		t.Errorf("evidence note %q does not report the aborts", note)
	}
}

func TestIa32StartupAbortsInARowFail(t *testing.T) {
	count := fakeIa32Loader(t, ia32Attempts)
	_, err := runIa32Loader()
	if err == nil || !strings.Contains(err.Error(), "runs in a row died at start-up") {
		t.Fatalf("every run aborted, want an error saying so, got %v", err)
	}
	var cre cannotRunError
	if errors.As(err, &cre) {
		t.Errorf("aborts reported as a loader that cannot run (absent), not as a failure: %v", err)
	}
	if n := runsIn(t, count); n != ia32Attempts {
		t.Errorf("%d runs, want %d (no more than the bound)", n, ia32Attempts)
	}
}

// Any other failure is not retried: one run, its error as it was.
func TestIa32OtherFailuresAreNotRetried(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >> " + count + "\necho broken >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, Ia32Loader), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	_, err := runIa32Loader()
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("want the run's own error with its stderr, got %v", err)
	}
	if n := runsIn(t, count); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}
