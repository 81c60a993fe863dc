package vmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// QEMU describes how VMs are started.
type QEMU struct {
	// Binary is the qemu-system-x86_64 to run.
	Binary string
	// BIOS is qboot.rom: it boots straight into the kernel and prints nothing.
	BIOS string
	// Memory is the guest RAM, e.g. "512M"; the initramfs is unpacked into it.
	Memory string
}

// DefaultQEMU is what Debian's qemu-system-x86 package installs.
var DefaultQEMU = QEMU{
	Binary: "qemu-system-x86_64",
	BIOS:   "/usr/share/qemu/qboot.rom",
	// 1 GiB: the initramfs (test binaries, 32- and 64-bit loaders) lives
	// in RAM next to the sensor's ring buffers; 512M ran 7.3 out of memory.
	Memory: "1G",
}

// Boot is one VM run.
type Boot struct {
	Kernel    Kernel
	Vmlinuz   string
	Initramfs string
	// Dir receives console.log and result.txt.
	Dir string
	// Timeout is a hard limit: qemu is killed when it passes.
	Timeout time.Duration
}

// Outcome is what a boot produced.
type Outcome struct {
	Results  Results
	Console  string // path of the console log
	Duration time.Duration
	TimedOut bool
	// Err is set when qemu failed or the result file is unreadable.
	Err error
}

// Cmdline is the kernel command line of a boot.
func (b Boot) Cmdline() string {
	// panic=-1 reboots on a panic (PID 1 dying included), which -no-reboot
	// turns into qemu exiting; random.trust_cpu lets the CPU's RDRAND seed the
	// kernel's RNG so nothing waits for entropy under TCG; no_timer_check
	// skips the IO-APIC timer test that a busy host makes fail under TCG
	// ("IO-APIC + timer doesn't work!" panics, seen on 6.1).
	args := []string{"console=ttyS0", "panic=-1", "random.trust_cpu=on", "no_timer_check", "quiet", "rdinit=/init",
		CmdlineKernel + "=" + b.Kernel.Label}
	return strings.Join(append(args, b.Kernel.Cmdline...), " ")
}

// Args returns qemu's arguments for a boot writing console and results to the
// given files.
func (q QEMU) Args(b Boot, console, result string) []string {
	return []string{
		// /dev/kvm here is nested and stock kernels fail under it: TCG only.
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", q.Memory,
		"-bios", q.BIOS, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", b.Vmlinuz, "-initrd", b.Initramfs, "-append", b.Cmdline(),
		// ttyS0 is the console, ttyS1 the result channel.
		"-serial", "file:" + console, "-serial", "file:" + result,
	}
}

// Run boots one VM and waits for it to end or time out.
func (q QEMU) Run(ctx context.Context, b Boot) Outcome {
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return Outcome{Err: fmt.Errorf("create output directory: %w", err)}
	}
	console := filepath.Join(b.Dir, "console.log")
	result := filepath.Join(b.Dir, "result.txt")
	// Stale results from an earlier run must not count.
	for _, f := range []string{console, result} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Outcome{Err: fmt.Errorf("remove old %s: %w", f, err)}
		}
	}
	out := Outcome{Console: console}
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, q.Binary, q.Args(b, console, result)...)
	// No stdin: qemu must never read from a terminal or a closed CI pipe.
	cmd.Stdin = nil
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	out.Duration = time.Since(start)
	if ctx.Err() == context.DeadlineExceeded {
		out.TimedOut = true
	} else if err != nil {
		out.Err = fmt.Errorf("qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	data, rerr := os.ReadFile(result)
	if rerr != nil {
		if out.Err == nil && !out.TimedOut {
			out.Err = fmt.Errorf("read result file: %w", rerr)
		}
		return out
	}
	res, perr := ParseResults(data)
	out.Results = res
	if perr != nil && out.Err == nil {
		out.Err = fmt.Errorf("%s: %w", result, perr)
	}
	return out
}
