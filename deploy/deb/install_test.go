package deb

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/agent"
	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/chroot"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// buildDeb builds the agent and its package at version into dir.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	bin := filepath.Join(dir, "ebpf-sentry-"+version)
	if err := agent.Build(bin, version); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ebpf-sentry_"+version+"_amd64.deb")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Build(f, Options{Version: version, Binary: bin, Root: agent.RootDir()}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A file of the chroot: mode, owner, and where a symlink points.
type entry struct {
	mode     os.FileMode
	uid, gid uint32
	link     string
}

func stat(t *testing.T, root, p string) (entry, bool) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, p))
	if os.IsNotExist(err) {
		return entry{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := entry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
	if fi.Mode()&os.ModeSymlink != 0 {
		e.link, _ = os.Readlink(filepath.Join(root, p))
	}
	return e, true
}

const wantsLink = "/etc/systemd/system/multi-user.target.wants/ebpf-sentry.service"

// checkInstalled asserts the layout docs/DEPLOY.md documents for an
// installed package of version.
func checkInstalled(t *testing.T, root, version string) {
	t.Helper()
	want := map[string]os.FileMode{
		BinPath:                    0o755,
		UnitPath:                   0o644,
		ConfDir:                    os.ModeDir | 0o755,
		RulesDir:                   os.ModeDir | 0o755,
		DefaultsEnv:                0o644,
		RulesDir + "/seed.yaml":    0o644,
		RulesDir + "/rootkit.yaml": 0o644,
		DocDir + "/DEPLOY.md":      0o644,
		DocDir + "/README.md":      0o644,
	}
	for p, mode := range want {
		e, ok := stat(t, root, p)
		switch {
		case !ok:
			t.Errorf("%s: missing after installing %s", p, version)
		case e.mode != mode || e.uid != 0 || e.gid != 0:
			t.Errorf("%s: mode %v owner %d:%d, want %v root:root", p, e.mode, e.uid, e.gid, mode)
		}
	}
	// Nothing under the configuration directory is writable by anyone but root.
	filepath.Walk(filepath.Join(root, ConfDir), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm()&0o022 != 0 || st.Uid != 0 {
			t.Errorf("%s: mode %v uid %d: the rules directory must be root-owned and not group/world-writable", p, fi.Mode(), st.Uid)
		}
		return nil
	})
	// Enabled as systemd itself would (a link in multi-user.target.wants),
	// although systemd does not run in the chroot.
	if e, ok := stat(t, root, wantsLink); !ok || e.link != UnitPath {
		t.Errorf("%s: %+v (present %v), want a link to %s", wantsLink, e, ok, UnitPath)
	}
	if out, err := chroot.Run(root, BinPath, "version"); err != nil || strings.TrimSpace(out) != "ebpf-sentry "+version {
		t.Errorf("installed agent: %q, %v; want version %s", out, err, version)
	}
	// The shipped rules are the ones the unit loads: they must be valid.
	if out, err := chroot.Run(root, BinPath, "rules", "check", RulesDir); err != nil {
		t.Errorf("rules check %s: %v\n%s", RulesDir, err, out)
	}
	if out, err := chroot.Run(root, "dpkg-query", "-W", "-f=${Status} ${Version}", "ebpf-sentry"); err != nil || out != "install ok installed "+version {
		t.Errorf("dpkg status %q, %v", out, err)
	}
}

// Install, upgrade and remove the package in a Debian chroot where systemd
// is not running: the maintainer scripts must succeed without it, enable
// the unit as links, keep a locally edited conffile across the upgrade, and
// leave nothing behind after purge.
func TestPackageInstallUpgradeRemove(t *testing.T) {
	testutils.RequireRoot(t, "chroot and dpkg")
	if testing.Short() {
		t.Skip("builds a Debian chroot")
	}
	tmp := t.TempDir()
	v1 := buildDeb(t, tmp, "1.0.0")
	v2 := buildDeb(t, tmp, "1.1.0")
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chroot.New(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "run/systemd/system")); err == nil {
		t.Fatal("the chroot claims systemd runs: the test would not cover the scripts' no-systemd path")
	}
	for _, d := range []string{v1, v2} {
		if b, err := os.ReadFile(d); err != nil {
			t.Fatal(err)
		} else if err := os.WriteFile(filepath.Join(root, "tmp", filepath.Base(d)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) {
		t.Helper()
		if out, err := chroot.Run(root, append([]string{"dpkg", "--force-confold"}, args...)...); err != nil {
			t.Fatalf("dpkg %v: %v", args, err)
		} else if strings.Contains(out, "rror") || strings.Contains(out, "arning") {
			t.Fatalf("dpkg %v printed problems:\n%s", args, out)
		}
	}

	dpkg("-i", "/tmp/"+filepath.Base(v1))
	checkInstalled(t, root, "1.0.0")

	edited := "EBPF_SENTRY_OPTS=\"--format json\"\n"
	if err := os.WriteFile(filepath.Join(root, DefaultsEnv), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg("-i", "/tmp/"+filepath.Base(v2))
	checkInstalled(t, root, "1.1.0")
	if b, _ := os.ReadFile(filepath.Join(root, DefaultsEnv)); string(b) != edited {
		t.Errorf("upgrade replaced the admin's %s: %q", DefaultsEnv, b)
	}

	dpkg("-r", "ebpf-sentry")
	for _, p := range []string{BinPath, UnitPath, DocDir} {
		if _, ok := stat(t, root, p); ok {
			t.Errorf("%s left after remove", p)
		}
	}
	if _, ok := stat(t, root, DefaultsEnv); !ok {
		t.Errorf("remove (not purge) deleted the conffile %s", DefaultsEnv)
	}
	dpkg("--purge", "ebpf-sentry")
	for _, p := range []string{ConfDir, DefaultsEnv, wantsLink, "/etc/systemd/system/ebpf-sentry.service"} {
		if e, ok := stat(t, root, p); ok {
			t.Errorf("%s left after purge: %+v", p, e)
		}
	}
	if out, err := chroot.Run(root, "dpkg-query", "-W", "-f=${Status}", "ebpf-sentry"); err == nil && strings.Contains(out, "installed") {
		t.Errorf("dpkg still knows the package after purge: %q", out)
	}
}
