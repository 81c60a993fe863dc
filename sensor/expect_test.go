package sensor

import (
	"os"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelcaps"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// kernelWants says what the running kernel must offer. Inside a matrix VM
// the list for its label decides everything. On any other machine the
// kernel's own files and its release decide what they can (minimum
// versions, CONFIG_KPROBES in kallsyms, the active LSMs, lockdown): no host
// is looked up in a table, and what nothing decides is taken from the
// sensor's probe, so a test runs its branch instead of skipping.
type kernelWants struct {
	label string
	list  *kernelcaps.Expectation // matrix VM
	facts testutils.Facts         // host
}

func kernelExpectation(t *testing.T) kernelWants {
	t.Helper()
	if label := os.Getenv(kernelEnv); label != "" {
		want, err := kernelcaps.Lookup(label)
		if err != nil {
			t.Fatal(err)
		}
		return kernelWants{label: label, list: &want}
	}
	f := testutils.KernelFacts(t)
	return kernelWants{label: "host " + f.Version.String(), facts: f}
}

// decides returns whether the kernel must offer c, and known=false when
// neither a list nor a fact says.
func (k kernelWants) decides(c kernelcaps.Capability) (want, known bool) {
	if k.list != nil {
		return k.list.Expects(c), true
	}
	return kernelcaps.Decide(c, k.facts)
}

// wants is decides, with the sensor's own probe (observed) answering what
// nothing else decides; the test logs which it was.
func (k kernelWants) wants(t *testing.T, c kernelcaps.Capability, observed bool) bool {
	t.Helper()
	want, known := k.decides(c)
	if !known {
		t.Logf("kernel %s: nothing independent decides %s; going by the probe (%v)", k.label, c, observed)
		return observed
	}
	return want
}

// lockdown is the lockdown mode the kernel must be in ("" when unknown).
func (k kernelWants) lockdown() string {
	if k.list != nil {
		return k.list.Lockdown
	}
	return k.facts.Lockdown
}

// hasBPFLoop: bpf_loop arrived in 5.17.
func (k kernelWants) hasBPFLoop() bool {
	if k.list != nil {
		return !withoutBPFLoop[k.label]
	}
	return k.facts.Version.AtLeast(testutils.Version{Major: 5, Minor: 17})
}

func removeMemlock(t *testing.T) {
	t.Helper()
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
}
