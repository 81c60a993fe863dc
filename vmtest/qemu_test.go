package vmtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBootCommandLine(t *testing.T) {
	b := Boot{Kernel: Kernel{Label: "6.12-lockdown", Cmdline: []string{"lockdown=integrity"}}, Vmlinuz: "/k", Initramfs: "/i"}
	cmdline := b.Cmdline()
	for _, want := range []string{"console=ttyS0", "panic=-1", "no_timer_check", "vmtest.kernel=6.12-lockdown", "lockdown=integrity"} {
		if !slices.Contains(strings.Fields(cmdline), want) {
			t.Errorf("command line %q lacks %s", cmdline, want)
		}
	}
	if got := KernelLabel(cmdline); got != "6.12-lockdown" {
		t.Errorf("the init would read label %q from %q", got, cmdline)
	}
	args := strings.Join(DefaultQEMU.Args(b, "/c", "/r"), " ")
	for _, want := range []string{"-accel tcg", "-no-reboot", "-nodefaults", "-serial file:/c -serial file:/r", "-kernel /k", "-initrd /i"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu arguments %q lack %q", args, want)
		}
	}
}

// fakeQEMU writes a script standing in for qemu: it finds the result file
// (the second -serial file:) and runs body with it in $result.
func fakeQEMU(t *testing.T, body string) QEMU {
	t.Helper()
	script := `#!/bin/sh
n=0; result=; console=
while [ $# -gt 0 ]; do
	if [ "$1" = -serial ]; then
		n=$((n+1)); f=${2#file:}
		if [ $n = 1 ]; then console=$f; else result=$f; fi
		shift
	fi
	shift
done
` + body + "\n"
	p := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return QEMU{Binary: p, BIOS: "/dev/null", Memory: "64M"}
}

func TestQEMURun(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		timeout time.Duration
		check   func(t *testing.T, o Outcome)
	}{
		{name: "a VM that reports and ends gives its results",
			body: `echo "=== RUN TestX" > "$console"; printf 'vmtest-result s 0 1 0 0\r\nvmtest-done\r\n' > "$result"`,
			check: func(t *testing.T, o Outcome) {
				if o.Err != nil || o.TimedOut || !o.Results.Done {
					t.Errorf("outcome %+v, want done without error", o)
				}
				if s, ok := o.Results.Suite("s"); !ok || s.Code != 0 || s.Passed != 1 {
					t.Errorf("suite s: %+v reported %v", s, ok)
				}
			}},
		{name: "a VM that hangs is killed at the timeout",
			body: `printf 'vmtest-result s 0 1 0 0\n' > "$result"; exec sleep 30`, timeout: 500 * time.Millisecond,
			check: func(t *testing.T, o Outcome) {
				if !o.TimedOut {
					t.Errorf("outcome %+v, want a timeout", o)
				}
				if o.Duration > 10*time.Second {
					t.Errorf("killing took %s", o.Duration)
				}
				if o.Results.Done {
					t.Error("a killed VM cannot be done")
				}
			}},
		{name: "qemu failing to start is an error with its message",
			body: `echo "could not load kernel" >&2; exit 1`,
			check: func(t *testing.T, o Outcome) {
				if o.Err == nil || !strings.Contains(o.Err.Error(), "could not load kernel") {
					t.Errorf("outcome error %v, want qemu's message", o.Err)
				}
			}},
		{name: "garbage on the result port is an error",
			body: `echo "random noise" > "$result"`,
			check: func(t *testing.T, o Outcome) {
				if o.Err == nil || !strings.Contains(o.Err.Error(), "malformed") {
					t.Errorf("outcome error %v, want malformed results", o.Err)
				}
			}},
		{name: "a VM that never opened the result port is an error",
			body: `true`,
			check: func(t *testing.T, o Outcome) {
				if o.Err == nil {
					t.Errorf("outcome %+v, want an error for the missing result file", o)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := fakeQEMU(t, tt.body)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 20 * time.Second
			}
			dir := t.TempDir()
			// A stale result from an earlier run must not leak into this one.
			if err := os.WriteFile(filepath.Join(dir, "result.txt"), []byte("vmtest-result s 0 1 0 0\nvmtest-done\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			o := q.Run(context.Background(), Boot{Kernel: Kernel{Label: "k"}, Vmlinuz: "/k", Initramfs: "/i", Dir: dir, Timeout: timeout})
			tt.check(t, o)
		})
	}
}
