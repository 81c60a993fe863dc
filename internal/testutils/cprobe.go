package testutils

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunC compiles src, a C program that includes header, with the first C
// compiler on PATH, runs it and returns its standard output. Tests use it to
// check layouts and constants spelled out in Go against the kernel's UAPI
// headers. A missing header or compiler skips (or, in CI, fails) the test.
func RunC(t testing.TB, header, src string) []byte {
	t.Helper()
	if _, err := os.Stat(header); err != nil {
		SkipOrFail(t, "no kernel UAPI header to check against: "+err.Error())
	}
	cc := ""
	for _, name := range []string{"cc", "clang", "clang-19", "gcc"} {
		if p, err := exec.LookPath(name); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		SkipOrFail(t, "no C compiler to read "+header+" with")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "probe.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-o", bin, filepath.Join(dir, "probe.c")).CombinedOutput(); err != nil {
		t.Fatalf("compile against %s with %s: %v\n%s", header, cc, err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run the program compiled against %s: %v", header, err)
	}
	return out
}
