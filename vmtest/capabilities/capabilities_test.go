package capabilities

import (
	"os"
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
	if label == "" {
		// Not a privilege problem: the suite judges a known kernel and the
		// host is not one (run it with `make vmtest`).
		t.Skip(KernelEnv + " is unset: the capability suite runs inside vmtest VMs")
	}
	want, err := Lookup(label)
	if err != nil {
		t.Fatal(err)
	}
	testutils.RequireRoot(t, "loading BPF programs")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("remove memlock limit: %v", err)
	}

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
