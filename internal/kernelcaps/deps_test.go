package kernelcaps

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// Product packages and their tests take kernel expectations from this
// package: only the VM harness itself (vmtest/...) imports vmtest.
func TestOnlyTheVMHarnessImportsVmtest(t *testing.T) {
	const module = "github.com/ebpf-sentry/ebpf-sentry"
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...")
	cmd.Dir = testutils.Root()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		n++
		if strings.HasPrefix(pkg, module+"/vmtest") {
			continue
		}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module+"/vmtest") {
				t.Errorf("%s (or its tests) imports %s", pkg, imp)
			}
		}
	}
	if n < 20 {
		t.Fatalf("go list saw %d packages: %s", n, out)
	}
}
