package startabort

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// standInEnv makes this test binary a stand-in program: it appends a line
// to the count file the variable names, then per standInMode aborts its
// start-up (below) while the file holds at most standInAborts lines, fails
// with a message on stderr ("fail"), dies of SIGTRAP after printing
// ("printed"), or prints "ok".
const (
	standInEnv    = "STARTABORT_STANDIN_COUNT"
	standInAborts = "STARTABORT_STANDIN_ABORTS"
	standInMode   = "STARTABORT_STANDIN_MODE"
)

func init() {
	count := os.Getenv(standInEnv)
	if count == "" {
		return
	}
	f, err := os.OpenFile(count, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(90)
	}
	f.WriteString("run\n")
	f.Close()
	switch os.Getenv(standInMode) {
	case "fail":
		os.Stderr.WriteString("broken\n")
		os.Exit(3)
	case "printed":
		os.Stdout.WriteString("half a line")
		int3()
	}
	b, _ := os.ReadFile(count)
	aborts, _ := strconv.Atoi(os.Getenv(standInAborts))
	if strings.Count(string(b), "\n") <= aborts {
		int3()
	}
	os.Stdout.WriteString("ok\n")
	os.Exit(0)
}

// int3 dies as an aborted start-up does: an INT3 with SIGTRAP at its
// default action (the Go runtime's handler would print), no core file.
func int3() {
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	var dfl struct{ handler, flags, restorer, mask uint64 }
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGTRAP), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	runtime.Breakpoint()
	select {}
}

// standIn returns a run of this test binary as the stand-in (aborting its
// first aborts runs, per mode) and the file counting its runs.
func standIn(t *testing.T, aborts int, mode string) (func() (string, error), string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	count := filepath.Join(t.TempDir(), "runs")
	run := func() (string, error) {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), standInEnv+"="+count, standInAborts+"="+strconv.Itoa(aborts), standInMode+"="+mode)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if abort := Check(cmd.Process.Pid, err, stdout.Len()+stderr.Len()); abort != nil {
			return "", abort
		}
		if err != nil {
			return "", errors.New(err.Error() + ": " + stderr.String())
		}
		return stdout.String(), nil
	}
	return run, count
}

func runsIn(t *testing.T, count string) int {
	t.Helper()
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// Two start-up aborts, then a run that prints: its output, after three
// runs, with both aborts kept; as root (CAP_SYSLOG), each with the
// kernel's line about its INT3.
func TestStartupAbortsAreRetriedAndKept(t *testing.T) {
	run, count := standIn(t, Attempts-1, "")
	out, aborts, err := Retry(Attempts, run)
	if err != nil || out != "ok\n" {
		t.Fatalf("after %d aborts the next run printed, yet: %q, %v", Attempts-1, out, err)
	}
	if len(aborts) != Attempts-1 {
		t.Fatalf("aborts %v, want %d", aborts, Attempts-1)
	}
	for _, a := range aborts {
		if !strings.Contains(a.Error(), "SIGTRAP before printing anything") {
			t.Errorf("abort %q does not say what happened", a)
		}
		// the kernel logs an unhandled INT3 (show_unhandled_signals, on
		// by default; at most 10 lines per 5 s, this package makes 6)
		if os.Geteuid() == 0 && (len(a.Kernel) != 1 || !strings.Contains(a.Kernel[0], "trap int3") || !strings.Contains(a.Error(), a.Kernel[0])) {
			t.Errorf("abort of pid %d: kernel lines %q, want its one \"trap int3\" line, in the message %q", a.PID, a.Kernel, a.Error())
		}
	}
	if n := runsIn(t, count); n != Attempts {
		t.Errorf("%d runs, want %d", n, Attempts)
	}
	if s := Join(aborts); strings.Count(s, " | ") != Attempts-2 {
		t.Errorf("joined aborts %q, want %d", s, Attempts-1)
	}
}

func TestStartupAbortsInARowFail(t *testing.T) {
	run, count := standIn(t, Attempts, "")
	_, aborts, err := Retry(Attempts, run)
	var rep *RepeatedError
	if !errors.As(err, &rep) || !strings.Contains(err.Error(), "3 runs in a row died at start-up") || len(aborts) != Attempts {
		t.Fatalf("every run aborted: want an error saying so with %d aborts, got %v (%d aborts)", Attempts, err, len(aborts))
	}
	var abort *Error
	if !errors.As(err, &abort) || abort != aborts[len(aborts)-1] {
		t.Errorf("the error does not wrap the last abort: %v", err)
	}
	if n := runsIn(t, count); n != Attempts {
		t.Errorf("%d runs, want %d (no more than the bound)", n, Attempts)
	}
}

// Any other failure is not retried: one run, its error as it was. A death
// by SIGTRAP after output is not a start-up abort either.
func TestOtherFailuresAreNotRetried(t *testing.T) {
	for _, mode := range []string{"fail", "printed"} {
		t.Run(mode, func(t *testing.T) {
			run, count := standIn(t, 0, mode)
			_, aborts, err := Retry(Attempts, run)
			var abort *Error
			if err == nil || errors.As(err, &abort) || len(aborts) != 0 {
				t.Fatalf("want the run's own error, not an abort: %v (aborts %v)", err, aborts)
			}
			if mode == "fail" && !strings.Contains(err.Error(), "broken") {
				t.Errorf("error %v lost the run's stderr", err)
			}
			if mode == "printed" && !strings.Contains(err.Error(), "trace/breakpoint trap") {
				t.Errorf("error %v, want the SIGTRAP death as it was", err)
			}
			if n := runsIn(t, count); n != 1 {
				t.Errorf("%d runs, want 1", n)
			}
		})
	}
}

// Check looks at how the process ended: an exit with a status, or success,
// is never an abort.
func TestCheckNeedsDeathBySIGTRAPWithoutOutput(t *testing.T) {
	if Check(1, nil, 0) != nil {
		t.Error("a successful run taken for an abort")
	}
	err := exec.Command(os.Args[0], "-test.run=^$", "-test.badflag").Run()
	if err == nil {
		t.Fatal("a bad flag did not fail the run")
	}
	if Check(1, err, 0) != nil {
		t.Errorf("exit with status (%v) taken for an abort", err)
	}
}
