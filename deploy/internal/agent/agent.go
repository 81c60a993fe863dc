// Package agent builds the ebpf-sentry binary of the root module the way
// every artefact of the deploy module ships it: static, stripped, with a
// version stamped in.
package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// RootDir is the root module's directory (the repository's top).
func RootDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Build compiles cmd/ebpf-sentry into out (static: no cgo, so it runs in a
// scratch image and on any glibc).
func Build(out, version string) error {
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/ebpf-sentry")
	cmd.Dir = RootDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ebpf-sentry %s: %w\n%s", version, err, b)
	}
	return nil
}
