package capabilities

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// KernelEnv names the booted kernel of the matrix; vmtest's init sets it.
const KernelEnv = "EBPF_SENTRY_KERNEL"

// TestKernelCapabilities compares what the running kernel offers with its
// expectation list: a missing capability fails, and so does an unlisted one.
func TestKernelCapabilities(t *testing.T) {
	label := os.Getenv(KernelEnv)
	var want Expectation
	if label == "" {
		// On the host itself: judge it against the list for its release
		// when there is one (the CI machine's kernel has one).
		label = "host-" + hostRelease(t)
		var ok bool
		if want, ok = HostExpectations[label]; !ok {
			// Not a privilege problem: nothing says what this kernel must offer.
			t.Skipf("%s is unset and host kernel %s has no expectation list (run the matrix with `make vmtest`)", KernelEnv, label)
		}
	} else {
		var err error
		if want, err = Lookup(label); err != nil {
			t.Fatal(err)
		}
	}
	testutils.RequireRoot(t, "loading BPF programs")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("remove memlock limit: %v", err)
	}

	ensureIa32Loader(t)

	t.Run("lockdown is in the expected mode", func(t *testing.T) {
		got, err := Lockdown()
		if err != nil {
			t.Fatal(err)
		}
		if got != want.Lockdown {
			t.Errorf("kernel %s: lockdown is %q, expected %q", label, got, want.Lockdown)
		}
	})
	for _, c := range All {
		expected := want.Expects(c)
		name := string(c) + " is absent"
		if expected {
			name = string(c) + " is present"
		}
		t.Run(name, func(t *testing.T) {
			obs, err := Probe(c)
			if err != nil {
				t.Fatalf("kernel %s: probing %s: %v", label, c, err)
			}
			t.Logf("%s: %s", c, obs.Detail)
			switch {
			case expected && !obs.Present:
				t.Errorf("kernel %s must offer %s but does not: %s", label, c, obs.Detail)
			case !expected && obs.Present:
				t.Errorf("kernel %s offers %s, which its expectation list does not name (fix the list): %s", label, c, obs.Detail)
			}
		})
	}
}

// hostRelease is the running kernel's major.minor release, e.g. "6.18".
func hostRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatalf("read kernel release: %v", err)
	}
	parts := strings.SplitN(strings.TrimSpace(string(b)), ".", 3)
	if len(parts) < 2 {
		t.Fatalf("unexpected kernel release %q", b)
	}
	return parts[0] + "." + parts[1]
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
