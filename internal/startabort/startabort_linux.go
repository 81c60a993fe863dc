package startabort

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Attempts is how many runs in a row may die of a start-up abort before
// Retry gives up.
const Attempts = 3

// Error is a run killed by SIGTRAP before it wrote a byte to stdout or
// stderr, with the kernel log lines about its trap (TrapLines).
type Error struct {
	PID    int
	Kernel []string
}

func (e *Error) Error() string {
	where := "no kernel log line names it"
	if len(e.Kernel) > 0 {
		where = "kernel: " + strings.Join(e.Kernel, "; ")
	}
	return fmt.Sprintf("pid %d died of SIGTRAP before printing anything (a Go runtime start-up abort; %s)", e.PID, where)
}

// Check returns an *Error when process pid, whose Wait returned waitErr,
// died of SIGTRAP having printed printed bytes (stdout and stderr) and that
// is 0; nil for any other end, success included.
func Check(pid int, waitErr error, printed int) *Error {
	var exit *exec.ExitError
	if printed != 0 || !errors.As(waitErr, &exit) {
		return nil
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTRAP {
		return nil
	}
	return &Error{PID: pid, Kernel: TrapLines(pid)}
}

// Retry calls run until it returns something other than a start-up abort
// (an *Error), at most attempts times, and returns that run's result with
// the aborts before it. attempts aborts in a row are an error that lists
// them (and wraps the last).
func Retry[T any](attempts int, run func() (T, error)) (T, []*Error, error) {
	var aborts []*Error
	for {
		r, err := run()
		var abort *Error
		if !errors.As(err, &abort) {
			return r, aborts, err
		}
		aborts = append(aborts, abort)
		if len(aborts) >= attempts {
			var zero T
			return zero, aborts, &RepeatedError{Aborts: aborts}
		}
	}
}

// RepeatedError is Retry giving up: every run died at start-up.
type RepeatedError struct{ Aborts []*Error }

func (e *RepeatedError) Error() string {
	return fmt.Sprintf("%d runs in a row died at start-up: %s", len(e.Aborts), Join(e.Aborts))
}

func (e *RepeatedError) Unwrap() error { return e.Aborts[len(e.Aborts)-1] }

// Join lists aborts on one line, for evidence and logs.
func Join(aborts []*Error) string {
	s := make([]string, len(aborts))
	for i, a := range aborts {
		s[i] = a.Error()
	}
	return strings.Join(s, " | ")
}

// TrapLines returns the kernel log lines about a trap of process pid
// ("traps: NAME[PID] trap int3 ip:… sp:… error:0 in …"); reading the log
// needs CAP_SYSLOG where dmesg_restrict is set, and a failure to read it is
// one line saying so.
func TrapLines(pid int) []string {
	buf := make([]byte, 1<<20)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return []string{fmt.Sprintf("(kernel log unreadable: %v)", err)}
	}
	tag := fmt.Sprintf("[%d]", pid)
	var lines []string
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		if strings.Contains(l, tag) && strings.Contains(l, "trap") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}
