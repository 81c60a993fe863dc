// Package chroot gives tests a throwaway Debian root filesystem made with
// debootstrap (minbase). The first call on a machine bootstraps it from the
// Debian mirror and caches it as a tarball under /var/cache; later calls
// unpack the tarball, which takes seconds.
package chroot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Suite is the Debian release the chroot holds.
const Suite = "bookworm"

// Mirror is where debootstrap fetches packages.
var Mirror = "http://deb.debian.org/debian"

// CacheDir keeps the bootstrapped tarball between runs.
var CacheDir = "/var/cache/ebpf-sentry-deploy"

func cachePath() string { return filepath.Join(CacheDir, Suite+"-minbase.tar") }

// New makes a fresh minbase root under dir.
func New(dir string) error {
	tarball := cachePath()
	if _, err := os.Stat(tarball); err != nil {
		if err := bootstrap(tarball); err != nil {
			return err
		}
	}
	if out, err := exec.Command("tar", "-C", dir, "-xpf", tarball).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %w\n%s", tarball, err, out)
	}
	return nil
}

// bootstrap runs debootstrap once and stores the result as tarball
// (written to a temporary name first, so an interrupted run leaves no
// half tarball behind).
func bootstrap(tarball string) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is missing (scripts/deps.sh installs it): %w", err)
	}
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return err
	}
	build, err := os.MkdirTemp(CacheDir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	root := filepath.Join(build, "root")
	if out, err := exec.Command("debootstrap", "--variant=minbase", Suite, root, Mirror).CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap %s from %s: %w\n%s", Suite, Mirror, err, tail(out))
	}
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "-C", root, "-cpf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cache chroot: %w\n%s", err, out)
	}
	return os.Rename(tmp, tarball)
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

// Run runs a command inside root with a clean environment and returns its
// combined output.
func Run(root string, args ...string) (string, error) {
	cmd := exec.Command("chroot", append([]string{root}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("chroot %s %v: %w\n%s", root, args, err, out)
	}
	return string(out), nil
}
