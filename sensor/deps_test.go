package sensor

import (
	"os/exec"
	"strings"
	"testing"
)

// The loader takes the kernel tables (rules/kernel) and nothing else of the
// rules: the YAML parser and regexp stay out of it.
func TestSensorDependsOnTheKernelTablesNotTheRuleParser(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	has := map[string]bool{}
	for _, d := range deps {
		has[d] = true
	}
	if !has["github.com/ebpf-sentry/ebpf-sentry/rules/kernel"] {
		t.Errorf("sensor does not import rules/kernel: %v", deps)
	}
	for _, d := range deps {
		if d == "github.com/ebpf-sentry/ebpf-sentry/rules" || d == "regexp" || strings.Contains(d, "yaml") {
			t.Errorf("sensor depends on %s", d)
		}
	}
}

// Product tests take kernel expectations from internal/kernelcaps, not from
// the VM harness.
func TestSensorTestsDoNotImportVmtest(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -test -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "github.com/ebpf-sentry/ebpf-sentry/vmtest") {
			t.Errorf("sensor's tests depend on %s", d)
		}
	}
}
