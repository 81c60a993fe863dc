package capabilities

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ebpf-sentry/ebpf-sentry/internal/startabort"
)

// fakeLoaderEnv makes this test binary act as a stand-in 32-bit loader
// (the matrix VMs have no shell): it appends a line to the count file the
// variable names and, per fakeLoaderMode, dies of SIGTRAP without printing
// while the file holds at most fakeLoaderAborts lines, or fails with a
// message on stderr.
const (
	fakeLoaderEnv    = "CAPABILITIES_FAKE_IA32_COUNT"
	fakeLoaderAborts = "CAPABILITIES_FAKE_IA32_ABORTS"
	fakeLoaderMode   = "CAPABILITIES_FAKE_IA32_MODE"
)

func init() {
	count := os.Getenv(fakeLoaderEnv)
	if count == "" {
		return
	}
	f, err := os.OpenFile(count, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(90)
	}
	f.WriteString("run\n")
	f.Close()
	if os.Getenv(fakeLoaderMode) == "fail" {
		os.Stderr.WriteString("broken\n")
		os.Exit(3)
	}
	b, _ := os.ReadFile(count)
	aborts, _ := strconv.Atoi(os.Getenv(fakeLoaderAborts))
	if strings.Count(string(b), "\n") <= aborts {
		// the default action, not the Go runtime's handler (which
		// prints): die of SIGTRAP silently, as an aborted start-up does
		var dfl struct{ handler, flags, restorer, mask uint64 }
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGTRAP), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		syscall.RawSyscall(syscall.SYS_TGKILL, uintptr(os.Getpid()), uintptr(syscall.Gettid()), uintptr(syscall.SIGTRAP))
		select {}
	}
	os.Stdout.WriteString(`{"pid":` + strconv.Itoa(os.Getpid()) + `,"ret":3,"id":42}` + "\n")
	os.Exit(0)
}

// fakeIa32Loader puts this test binary first on PATH under the name
// Ia32Loader, as the stand-in loader of fakeLoaderEnv.
func fakeIa32Loader(t *testing.T, aborts int, mode string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, Ia32Loader)); err != nil {
		t.Fatal(err)
	}
	count := filepath.Join(dir, "runs")
	t.Setenv(fakeLoaderEnv, count)
	t.Setenv(fakeLoaderAborts, strconv.Itoa(aborts))
	t.Setenv(fakeLoaderMode, mode)
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
	count := fakeIa32Loader(t, startabort.Attempts-1, "")
	r, err := runIa32Loader()
	if err != nil {
		t.Fatalf("after %d aborts the next run printed its result, yet: %v", startabort.Attempts-1, err)
	}
	if r.ID != 42 || r.Ret != 3 {
		t.Errorf("result %+v, want the last run's id 42, ret 3", r)
	}
	if len(r.Aborts) != startabort.Attempts-1 {
		t.Errorf("aborts %q, want %d", r.Aborts, startabort.Attempts-1)
	}
	for _, a := range r.Aborts {
		if !strings.Contains(a.Error(), "SIGTRAP before printing anything") {
			t.Errorf("abort %q does not say what happened", a)
		}
	}
	if n := runsIn(t, count); n != startabort.Attempts {
		t.Errorf("%d runs, want %d", n, startabort.Attempts)
	}
	if note := abortNote(r); !strings.Contains(note, "start-up aborts") {
		t.Errorf("evidence note %q does not report the aborts", note)
	}
}

func TestIa32StartupAbortsInARowFail(t *testing.T) {
	count := fakeIa32Loader(t, startabort.Attempts, "")
	_, err := runIa32Loader()
	if err == nil || !strings.Contains(err.Error(), "runs in a row died at start-up") {
		t.Fatalf("every run aborted, want an error saying so, got %v", err)
	}
	var cre cannotRunError
	if errors.As(err, &cre) {
		t.Errorf("aborts reported as a loader that cannot run (absent), not as a failure: %v", err)
	}
	if n := runsIn(t, count); n != startabort.Attempts {
		t.Errorf("%d runs, want %d (no more than the bound)", n, startabort.Attempts)
	}
}

// Any other failure is not retried: one run, its error as it was.
func TestIa32OtherFailuresAreNotRetried(t *testing.T) {
	count := fakeIa32Loader(t, 0, "fail")
	_, err := runIa32Loader()
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("want the run's own error with its stderr, got %v", err)
	}
	if n := runsIn(t, count); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}
