package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
)

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{} // package → binary, built once per test binary
)

// goBuild builds pkg once per test binary, into a directory everyone may
// read (the non-root test executes the binary as nobody).
func goBuild(t testing.TB, pkg, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildCache[pkg]; ok {
		return bin
	}
	if vm := os.Getenv("EBPF_SENTRY_KERNEL"); vm != "" {
		// Nothing compiles in a matrix VM: vmrun installs the agent and
		// the helpers in /bin (vmtest.DefaultHelpers).
		p, err := exec.LookPath(filepath.Base(name))
		if err != nil {
			t.Fatalf("in VM %s: %v (vmtest.DefaultHelpers installs %s)", vm, err, pkg)
		}
		return p
	}
	shared, err := os.MkdirTemp("", "sentry-cmdtest")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o755)
	bin := filepath.Join(shared, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	buildCache[pkg] = bin
	return bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, bin := range buildCache {
		os.RemoveAll(filepath.Dir(bin))
	}
	natstest.Cleanup()
	os.Exit(code)
}
