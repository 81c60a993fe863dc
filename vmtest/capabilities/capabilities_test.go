package capabilities

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// KernelEnv names the booted kernel of the matrix; vmtest's init sets it.
const KernelEnv = "EBPF_SENTRY_KERNEL"

// TestKernelCapabilities compares what the running kernel offers with its
// expectation list: a missing capability fails, and so does an unlisted one.
// Each capability is asked of the shared prober (internal/kernelprobe, what
// doctor and the sensor's hook choice use) and proved by a program that
// uses it; Probe fails where the two disagree, so the list holds for both.
func TestKernelCapabilities(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs")
	label := os.Getenv(KernelEnv)
	// decide says what the kernel must offer: the matrix list for a VM's
	// label, else what the host kernel's release and files decide.
	var decide func(Capability) (bool, bool)
	var lockdown string
	if label == "" {
		f := testutils.KernelFacts(t)
		label = "host " + f.Version.String()
		decide = func(c Capability) (bool, bool) { return Decide(c, f) }
		lockdown = f.Lockdown
	} else {
		want, err := Lookup(label)
		if err != nil {
			t.Fatal(err)
		}
		decide = func(c Capability) (bool, bool) { return want.Expects(c), true }
		lockdown = want.Lockdown
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("remove memlock limit: %v", err)
	}

	ensureIa32Loader(t)

	t.Run("lockdown is in the expected mode", func(t *testing.T) {
		got, err := kernelprobe.Lockdown()
		if err != nil {
			t.Fatal(err)
		}
		if lockdown != "" && got != lockdown {
			t.Errorf("kernel %s: lockdown is %q, expected %q", label, got, lockdown)
		}
	})
	for _, c := range All {
		expected, known := decide(c)
		name := string(c) + " is absent"
		switch {
		case !known:
			name = string(c) + " is observed"
		case expected:
			name = string(c) + " is present"
		}
		t.Run(name, func(t *testing.T) {
			obs, err := Probe(c)
			if err != nil {
				t.Fatalf("kernel %s: probing %s: %v", label, c, err)
			}
			prober := obs.Prober
			if prober == "" {
				prober = "not asked, evidence only"
			}
			t.Logf("%s: %s (shared prober: %s)", c, obs.Detail, prober)
			switch {
			case !known:
				t.Logf("kernel %s: nothing independent decides %s; observed present=%v", label, c, obs.Present)
			case expected && !obs.Present:
				t.Errorf("kernel %s must offer %s but does not: %s", label, c, obs.Detail)
			case !expected && obs.Present:
				t.Errorf("kernel %s offers %s, which its expectation list or facts exclude: %s", label, c, obs.Detail)
			}
		})
	}
}

// ensureIa32Loader puts a 32-bit bpfload on PATH when none is there (on a
// host: vmtest installs one in the VM), so that the ia32 probes measure
// whether this kernel runs it rather than report a missing file.
func ensureIa32Loader(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(Ia32Loader); err == nil {
		return
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Logf("%s is not on PATH and there is no go tool to build it: the ia32 probes will report it missing", Ia32Loader)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, Ia32Loader), "../../internal/cmd/bpfload")
	cmd.Env = append(os.Environ(), "GOARCH=386", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", Ia32Loader, err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}
