package kernelprobe_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The product asks the kernel what it offers only through this package:
// no other non-test Go file reads the capability files, mounts securityfs
// or tracefs, or calls cilium/ebpf's feature probes. A second prober would
// be one the capability suite does not prove.
func TestNoOtherPackageProbesTheKernel(t *testing.T) {
	asks := []string{
		`"/sys/kernel/security/lockdown"`,
		`"/sys/kernel/security/lsm"`,
		`"/sys/kernel/btf/vmlinux"`,
		`"securityfs"`,
		`"tracefs"`,
		`features.Have`,
	}
	// The VM's init mounts the pseudo-filesystems at boot, as any init
	// does; it asks the kernel nothing.
	allowed := map[string]bool{"vmtest/cmd/vminit/main.go": true}
	root := testutils.Root()
	own, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path == own || name == "testdata" || name == "bin" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		files++
		if allowed[filepath.ToSlash(rel)] {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "//"); code != "" {
				for _, a := range asks {
					if strings.Contains(code, a) {
						t.Errorf("%s:%d asks the kernel itself (%s): use internal/kernelprobe", rel, i+1, a)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("walked %d Go files under %s: not the module", files, root)
	}
}
