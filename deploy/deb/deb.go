// Package deb builds the ebpf-sentry Debian package with nfpm: the static
// agent, its systemd unit, a root-owned configuration directory with the
// default rules, the documentation and maintainer scripts that enable and
// (re)start the unit where systemd runs.
package deb

import (
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

//go:embed scripts/*.sh default.env
var embedded embed.FS

// Paths on the installed system (docs/DEPLOY.md lists them).
const (
	BinPath     = "/usr/bin/ebpf-sentry"
	UnitPath    = "/lib/systemd/system/ebpf-sentry.service"
	ConfDir     = "/etc/ebpf-sentry"
	RulesDir    = "/etc/ebpf-sentry/rules"
	DefaultsEnv = "/etc/default/ebpf-sentry"
	DocDir      = "/usr/share/doc/ebpf-sentry"
)

// Docs are the files of the repository shipped in DocDir.
var Docs = []string{"README.md", "docs/DEPLOY.md", "docs/SENSOR.md", "docs/RULES.md", "docs/EVENTS.md"}

// Options say what goes into the package.
type Options struct {
	Version string // Debian version, e.g. 1.2.0
	Arch    string // Debian architecture; amd64 when empty
	Binary  string // the built agent
	Root    string // the repository (unit, rules, docs are read from it)
	// MTime stamps every file, for reproducible packages; zero: the Unix epoch.
	MTime time.Time
}

// Build writes the .deb to w.
func Build(w io.Writer, o Options) error {
	if o.Version == "" || o.Binary == "" || o.Root == "" {
		return fmt.Errorf("deb: Version, Binary and Root are required (got %+v)", o)
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.MTime.IsZero() {
		o.MTime = time.Unix(0, 0).UTC()
	}
	scripts, err := os.MkdirTemp("", "ebpf-sentry-deb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scripts)
	write := func(name string, mode os.FileMode) (string, error) {
		b, err := embedded.ReadFile(name)
		if err != nil {
			return "", err
		}
		p := filepath.Join(scripts, filepath.Base(name))
		return p, os.WriteFile(p, b, mode)
	}
	var sc nfpm.Scripts
	for _, s := range []struct {
		dst  *string
		name string
	}{{&sc.PostInstall, "scripts/postinst.sh"}, {&sc.PreRemove, "scripts/prerm.sh"}, {&sc.PostRemove, "scripts/postrm.sh"}} {
		if *s.dst, err = write(s.name, 0o755); err != nil {
			return err
		}
	}
	env, err := write("default.env", 0o644)
	if err != nil {
		return err
	}

	owned := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: o.MTime}
	}
	contents := files.Contents{
		{Source: o.Binary, Destination: BinPath, FileInfo: owned(0o755)},
		{Source: filepath.Join(o.Root, "deploy/systemd/ebpf-sentry.service"), Destination: UnitPath, FileInfo: owned(0o644)},
		{Destination: ConfDir, Type: files.TypeDir, FileInfo: owned(0o755)},
		{Destination: RulesDir, Type: files.TypeDir, FileInfo: owned(0o755)},
		{Source: env, Destination: DefaultsEnv, Type: files.TypeConfig, FileInfo: owned(0o644)},
		{Destination: DocDir, Type: files.TypeDir, FileInfo: owned(0o755)},
	}
	rules, err := filepath.Glob(filepath.Join(o.Root, "rules/defaults/*.yaml"))
	if err != nil || len(rules) == 0 {
		return fmt.Errorf("deb: no default rules under %s/rules/defaults (%v)", o.Root, err)
	}
	for _, r := range rules {
		contents = append(contents, &files.Content{Source: r, Destination: filepath.Join(RulesDir, filepath.Base(r)),
			Type: files.TypeConfig, FileInfo: owned(0o644)})
	}
	for _, d := range Docs {
		contents = append(contents, &files.Content{Source: filepath.Join(o.Root, d),
			Destination: filepath.Join(DocDir, filepath.Base(d)), FileInfo: owned(0o644)})
	}

	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "ebpf-sentry",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       o.Version,
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "ebpf-sentry maintainers <ebpf-sentry@localhost>",
		Description:   "eBPF program sensor: watches, judges and stops eBPF programs as they are loaded",
		Homepage:      "https://github.com/ebpf-sentry/ebpf-sentry",
		MTime:         o.MTime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts:  sc,
			Umask:    0o022,
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	if err := pkg.Package(info, w); err != nil {
		return fmt.Errorf("deb: package: %w", err)
	}
	return nil
}
