package image

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/agent"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

const tag = "image-test"

// buildLayout builds the agent and the image and writes the OCI layout,
// as make image does.
func buildLayout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ebpf-sentry")
	if err := agent.Build(bin, tag); err != nil {
		t.Fatal(err)
	}
	img, err := Build(Options{Binary: bin, Version: tag})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "layout")
	if err := WriteLayout(out, tag, img); err != nil {
		t.Fatal(err)
	}
	return out
}

// unpack extracts the image read back from the layout into a new directory
// and returns it with the list of paths the image holds.
func unpack(t *testing.T, layoutDir string) (string, []string) {
	t.Helper()
	img, err := ReadLayout(layoutDir, tag)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("image has %d layers (%v), want exactly one", len(layers), err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	// The layer itself, not a flattened filesystem: what it lists is what ships.
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected tar entry type %c", h.Name, h.Typeflag)
		}
	}
	sort.Strings(names)
	return root, names
}

// The image holds the agent, the CA bundle and /run, and nothing else; the
// agent is static (no ELF interpreter, so no libc is needed); the config
// runs the agent.
func TestImageHoldsOnlyTheAgent(t *testing.T) {
	layoutDir := buildLayout(t)
	root, names := unpack(t, layoutDir)
	want := []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
		"run/", "usr/", "usr/bin/", "usr/bin/ebpf-sentry"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("layer holds %q\nwant       %q", names, want)
	}
	f, err := elf.Open(filepath.Join(root, BinPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s needs an ELF interpreter: it is not static", BinPath)
		}
	}
	img, err := ReadLayout(layoutDir, tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != BinPath {
		t.Fatalf("config: os %q entrypoint %q", cfg.OS, cfg.Config.Entrypoint)
	}
	t.Logf("layer: %s", strings.Join(names, " "))
}

// containerScript runs argv in the unpacked image the way the DaemonSet
// does: new mount, UTS and IPC namespaces, the host PID namespace, the
// host's bpffs, tracefs and BTF bind-mounted, and /proc of the (host) PID
// namespace; then chroot into the rootfs.
const containerScript = `set -eu
root=$1; shift
mkdir -p "$root/sys/fs/bpf" "$root/sys/kernel/tracing" "$root/sys/kernel/btf" "$root/proc"
mount --make-rprivate /
hostname ebpf-sentry-test
mount --bind /sys/fs/bpf "$root/sys/fs/bpf"
mount --bind /sys/kernel/tracing "$root/sys/kernel/tracing"
mount --bind -o ro /sys/kernel/btf "$root/sys/kernel/btf"
mount -t proc proc "$root/proc"
exec chroot "$root" "$@"
`

func inContainer(t *testing.T, root string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"--mount", "--uts", "--ipc", "--fork", "--", "sh", "-c", containerScript, "sh", root}, args...)
	out, err := exec.Command("unshare", argv...).CombinedOutput()
	return string(out), err
}

// `version` and `doctor` run inside the image as under the DaemonSet, and
// doctor finds the same hook, enforcer and guarantee as on the host.
func TestImageRunsDoctorLikeTheHost(t *testing.T) {
	testutils.RequireRoot(t, "namespaces, mounts and BPF probes")
	root, _ := unpack(t, buildLayout(t))
	out, err := inContainer(t, root, BinPath, "version")
	if err != nil || strings.TrimSpace(out) != "ebpf-sentry "+tag {
		t.Fatalf("version in the image: %q, %v", out, err)
	}
	inImage, err := inContainer(t, root, BinPath, "doctor")
	if err != nil {
		t.Fatalf("doctor in the image: %v\n%s", err, inImage)
	}
	host, err := exec.Command(filepath.Join(root, BinPath), "doctor").CombinedOutput()
	if err != nil {
		t.Fatalf("doctor on the host: %v\n%s", err, host)
	}
	for _, prefix := range []string{"run will use:", "guarantee:"} {
		h, i := lineWith(string(host), prefix), lineWith(inImage, prefix)
		if h == "" || h != i {
			t.Errorf("doctor %s\n host:  %q\n image: %q", prefix, h, i)
		}
	}
	t.Logf("in the image: %s", lineWith(inImage, "run will use:"))
}

func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
