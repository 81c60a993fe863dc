//go:build linux

// Command vminit is PID 1 of the vmtest VMs: it mounts what privileged tests
// need, runs the test binaries listed in /vmtest.json with the console as
// their output, writes each exit code to the result serial port and powers
// the VM off. Built statically by vmrun; it refuses to run as anything but PID 1.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/vmtest"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: must run as PID 1 inside a vmtest VM")
		os.Exit(2)
	}
	err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
	}
	// The result port already says what happened; without "vmtest-done" the
	// host reports the boot as broken. Restart with qemu's -no-reboot ends the
	// VM without needing ACPI.
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: reboot: %v\n", err)
	}
	// PID 1 must not exit: that panics the kernel.
	for {
		time.Sleep(time.Hour)
	}
}

// mounts are what tests need; failures of the optional ones are reported but
// not fatal (a kernel without debugfs is still worth testing).
var mounts = []struct {
	source, target, fstype string
	required               bool
}{
	{"proc", "/proc", "proc", true},
	{"sysfs", "/sys", "sysfs", true},
	{"bpf", "/sys/fs/bpf", "bpf", true},
	{"tracefs", "/sys/kernel/tracing", "tracefs", true},
	{"securityfs", "/sys/kernel/security", "securityfs", true},
	{"debugfs", "/sys/kernel/debug", "debugfs", false},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", false}, // cgroup attach tests
}

func run() error {
	// devtmpfs first: the console and the serial ports live there.
	if err := mount("devtmpfs", "/dev", "devtmpfs"); err != nil {
		return err
	}
	if err := reopenConsole(); err != nil {
		return err
	}
	for _, m := range mounts {
		if err := mount(m.source, m.target, m.fstype); err != nil {
			if m.required {
				return err
			}
			fmt.Fprintf(os.Stderr, "vminit: %v (continuing)\n", err)
		}
	}
	// /tmp stays a plain directory of the rootfs, which is already writable
	// memory; a mount over it would only hide whatever the image packed there.
	if err := os.MkdirAll("/tmp", 0o1777); err != nil {
		return fmt.Errorf("create /tmp: %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}); err != nil {
		return fmt.Errorf("raise RLIMIT_MEMLOCK: %w", err)
	}

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	label := vmtest.KernelLabel(string(cmdline))
	if label == "" {
		// Without a label the suites cannot know what to expect and would
		// skip: refuse rather than report an empty pass.
		return fmt.Errorf("no %s= on the kernel command line", vmtest.CmdlineKernel)
	}
	var uname unix.Utsname
	_ = unix.Uname(&uname)
	fmt.Printf("vminit: kernel %s (%s), label %q, up %s\n", unix.ByteSliceToString(uname.Release[:]), strings.TrimSpace(string(cmdline)), label, uptime())

	raw, err := os.ReadFile(vmtest.ConfigPath)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var cfg vmtest.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("parse %s: %w", vmtest.ConfigPath, err)
	}
	result, err := os.OpenFile(vmtest.ResultDevice, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open result port: %w", err)
	}
	defer result.Close()

	for _, s := range cfg.Suites {
		code, tally := runSuite(s, label)
		if err := report(result, vmtest.ResultLine(s.Name, code, tally)); err != nil {
			return err
		}
	}
	return report(result, vmtest.DoneLine())
}

func mount(source, target, fstype string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

// reopenConsole points stdin/out/err at /dev/console: the kernel starts PID 1
// with them attached only if the console existed in the initramfs.
func reopenConsole() error {
	c, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open console: %w", err)
	}
	for fd := range 3 {
		if err := unix.Dup3(int(c.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup console to fd %d: %w", fd, err)
		}
	}
	return c.Close()
}

// runSuite runs one test binary and returns its exit code and test counts; a
// signal death is 128+signal as in a shell, a binary that cannot start is 127.
func runSuite(s vmtest.Suite, label string) (int, vmtest.Tally) {
	fmt.Printf("vminit: running suite %s: %s %s\n", s.Name, s.Path, strings.Join(s.Args, " "))
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = append([]string{"PATH=/bin", "HOME=/tmp", "TMPDIR=/tmp", vmtest.KernelEnv + "=" + label}, s.Env...)
	cmd.Dir = "/"
	if s.Dir != "" {
		// The package directory exists when it has testdata; create it
		// otherwise so the test starts where it would on the host.
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			fmt.Printf("vminit: suite %s: create working directory: %v\n", s.Name, err)
		} else {
			cmd.Dir = s.Dir
		}
	}
	out := &vmtest.TallyWriter{W: os.Stdout}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	default:
		fmt.Printf("vminit: suite %s did not start: %v\n", s.Name, err)
		code = 127
	}
	fmt.Printf("vminit: suite %s exited %d after %s, up %s: %d passed, %d failed, %d skipped\n", s.Name, code,
		time.Since(start).Round(time.Millisecond), uptime(), out.Tally.Passed, out.Tally.Failed, out.Tally.Skipped)
	return code, out.Tally
}

// report writes one protocol line and waits until the UART sent it, so a
// reboot right after cannot cut it off.
func report(f *os.File, line string) error {
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("write result port: %w", err)
	}
	// TCSBRK with a non-zero argument is tcdrain().
	if err := unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1); err != nil {
		return fmt.Errorf("drain result port: %w", err)
	}
	return nil
}

// uptime is the guest's time since boot, for the timings in the console.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0] + "s"
	}
	return "?"
}
