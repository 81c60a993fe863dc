package testutils

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
)

// Version is a kernel release as major.minor.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is min or newer.
func (v Version) AtLeast(min Version) bool {
	return v.Major > min.Major || v.Major == min.Major && v.Minor >= min.Minor
}

// ParseVersion reads "6.18", "6.18.3" or "6.18.3-amd64".
func ParseVersion(s string) (Version, error) {
	var v Version
	if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d.%d", &v.Major, &v.Minor); err != nil {
		return Version{}, fmt.Errorf("kernel release %q: %w", s, err)
	}
	return v, nil
}

// KernelVersion is the running kernel's release.
func KernelVersion(t testing.TB) Version {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatalf("read kernel release: %v", err)
	}
	v, err := ParseVersion(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// SkipOnOldKernel skips a test of feature on kernels older than min (the
// release that brought it), as cilium/ebpf's testutils do. Not a privilege
// matter: CI on an old kernel skips it too.
func SkipOnOldKernel(t testing.TB, min, feature string) {
	t.Helper()
	want, err := ParseVersion(min)
	if err != nil {
		t.Fatal(err)
	}
	if v := KernelVersion(t); !v.AtLeast(want) {
		t.Skipf("%s needs Linux %s, this kernel is %s", feature, want, v)
	}
}

// Facts are what the running kernel says about itself in files, read
// without loading any BPF program: the independent side that tests hold a
// BPF-based probe against on a host that no expectation list names.
type Facts struct {
	Version Version
	BTF     bool     // /sys/kernel/btf/vmlinux exists
	LSMs    []string // /sys/kernel/security/lsm
	// SecurityFS: securityfs was readable, so LSMs and Lockdown are known.
	SecurityFS bool
	Lockdown   string // the bracketed mode of /sys/kernel/security/lockdown, "" if unreadable
	Kprobes    bool   // register_kprobe is in /proc/kallsyms (CONFIG_KPROBES)
	// SyscallTracepoints: tracefs lists syscalls/sys_enter_bpf
	// (CONFIG_FTRACE_SYSCALLS; tracefs mounted).
	SyscallTracepoints bool
}

// HasLSM reports whether name is an active LSM.
func (f Facts) HasLSM(name string) bool {
	for _, l := range f.LSMs {
		if l == name {
			return true
		}
	}
	return false
}

var (
	factsOnce sync.Once
	facts     Facts
	factsErr  error
)

// KernelFacts reads Facts once per test binary. It needs root (kallsyms
// addresses, securityfs); without root it skips or, in CI, fails.
func KernelFacts(t testing.TB) Facts {
	t.Helper()
	RequireRoot(t, "reading /proc/kallsyms and securityfs")
	factsOnce.Do(func() { facts, factsErr = readFacts() })
	if factsErr != nil {
		t.Fatal(factsErr)
	}
	return facts
}

func readFacts() (Facts, error) {
	var f Facts
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return f, err
	}
	if f.Version, err = ParseVersion(string(b)); err != nil {
		return f, err
	}
	_, err = os.Stat(kernelprobe.BTFPath)
	f.BTF = err == nil
	// The same parsers as the prober's, on the files alone: what the
	// facts add is independence from BPF, not a second reading of text.
	if b, err := os.ReadFile(kernelprobe.LSMPath); err == nil {
		f.SecurityFS = true
		f.LSMs = kernelprobe.ParseLSMs(string(b))
	}
	if b, err := os.ReadFile(kernelprobe.LockdownPath); err == nil {
		if f.Lockdown, err = kernelprobe.ParseLockdown(string(b)); err != nil {
			return f, err
		}
	}
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events/syscalls/sys_enter_bpf"); err == nil {
			f.SyscallTracepoints = true
		}
	}
	k, err := os.Open("/proc/kallsyms")
	if err != nil {
		return f, err
	}
	defer k.Close()
	sc := bufio.NewScanner(k)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 3 && fs[2] == "register_kprobe" {
			f.Kprobes = true
			break
		}
	}
	return f, sc.Err()
}
