package testutils

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RequireEnv is the environment variable that turns privileged skips into
// failures. .ci/run sets it: in CI a test that cannot run as root is broken.
const RequireEnv = "EBPF_SENTRY_REQUIRE_PRIVILEGED"

// Required reports whether privileged tests must run (skips are failures).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// SkipOrFail skips the test with reason, or fails it when RequireEnv is set.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("privileged test cannot run (%s=1 forbids skipping): %s", RequireEnv, reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or, in CI, fails) a test that needs root, naming what for.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root for "+what)
	}
}

// Root is the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Testdata returns the path of a file under the repository's testdata/.
func Testdata(name ...string) string {
	return filepath.Join(append([]string{Root(), "testdata"}, name...)...)
}
