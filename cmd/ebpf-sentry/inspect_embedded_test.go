package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/embedded"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

func TestInspectBinaryAnalysesEveryEmbeddedObject(t *testing.T) {
	out, errText, code := runInspectCLI(t, nil, "--rules", "@defaults", "/usr/sbin/opensnoop")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	if n := strings.Count(out, "  origin:      /usr/sbin/opensnoop@offset 0x"); n != 4 || strings.Count(out, "\nverdict: ") != 4 ||
		!strings.Contains(out, " (section .rodata) (elf)\n") {
		t.Errorf("%d programs from the embedded object:\n%s", n, out)
	}

	_, errText, code = runInspectCLI(t, nil, "/usr/bin/bpftrace")
	if code != 2 || !strings.Contains(errText, "not BPF; no BPF object or light skeleton embedded in its ") {
		t.Errorf("bpftrace: exit %d, %s", code, errText)
	}
}

func TestInspectRecursiveReportsEveryObjectWithVerdicts(t *testing.T) {
	dir := t.TempDir()
	obj, err := os.ReadFile(testprogs.Path("exechijack.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	gobin := testutils.BuildGoEmbedder(t, obj)
	for _, f := range []struct{ from, to string }{
		{gobin, "usr/bin/agent"},
		{"/usr/sbin/opensnoop", "usr/sbin/opensnoop"},
		{testprogs.Path("externfunc.bpf.o"), "opt/x.o"},
		{"/usr/bin/bpftrace", "usr/bin/bpftrace"},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, f.to)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/sbin/execsnoop", filepath.Join(dir, "usr/sbin/link")); err != nil {
		t.Fatal(err)
	}

	out, errText, code := runInspectCLI(t, nil, "--recursive", "--rules", "@defaults", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	for _, want := range []string{
		"object " + dir + "/opt/x.o@offset 0x0\n",
		"object " + dir + "/usr/bin/agent@offset 0x",
		"object " + dir + "/usr/sbin/opensnoop@offset 0x",
		"    unresolved: extern cel_expr_1 (insn 1): ",
		"scanned 4 files, ",
		": 3 BPF objects\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, dir+"/usr/bin/bpftrace") || strings.Contains(out, dir+"/usr/sbin/link") {
		t.Errorf("bpftrace or the symbolic link reported:\n%s", out)
	}
	// The malicious-style object is judged inside the Go binary as it is alone.
	if !strings.Contains(out, "seed-exechijack") {
		t.Errorf("the embedded exechijack object has no block verdict:\n%s", out)
	}

	out, errText, code = runInspectCLI(t, nil, "--recursive", "--format", "json", "--rules", "@defaults", dir)
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errText)
	}
	var doc struct {
		Objects []struct {
			Path     string `json:"path"`
			Object   struct{ Offset, Size int64 }
			Programs []struct {
				Name     string `json:"name"`
				Verdicts []any  `json:"verdict"`
			} `json:"programs"`
		} `json:"objects"`
		Files int64 `json:"files_scanned"`
		Bytes int64 `json:"bytes_scanned"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(doc.Objects) != 3 || doc.Files != 4 || doc.Bytes == 0 {
		t.Fatalf("%d objects in %d files (%d bytes)", len(doc.Objects), doc.Files, doc.Bytes)
	}
	for _, o := range doc.Objects {
		for _, p := range o.Programs {
			if len(p.Verdicts) == 0 {
				t.Errorf("%s: %s has no verdict", o.Path, p.Name)
			}
		}
	}
}

// BenchmarkInspectRecursive is the whole --recursive run (scan, read and
// analyse every embedded object, JSON out) over Debian's /usr/sbin, which
// holds the libbpf-tools binaries; MB/s are of the tree's bytes. Compare
// with embedded.BenchmarkScanTree's read and cat figures of the same tree.
func BenchmarkInspectRecursive(b *testing.B) {
	const tree = "/usr/sbin"
	var total int64
	filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if total == 0 {
		b.Skip("no " + tree)
	}
	b.SetBytes(total)
	for b.Loop() {
		out, errText, code := runInspectCLI(b, nil, "--recursive", "--format", "json", tree)
		if code != 0 || !strings.Contains(out, `"files_scanned"`) {
			b.Fatalf("exit %d: %s", code, errText)
		}
	}
}

// A light skeleton keeps its programs only in a data blob; inspect decodes
// them and judges them as it judges the object they came from.
func TestInspectLightSkeletonBinary(t *testing.T) {
	bin := testprogs.Path("lskel/exechijack-lskel")
	out, errText, code := runInspectCLI(t, nil, "--rules", "@defaults", bin)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	if !strings.Contains(out, "program handle_execve_e\n") || !strings.Contains(out, "(light skeleton loader in section .rodata, data at offset 0x") ||
		!strings.Contains(out, "verdict: block") || !strings.Contains(out, "probe-write-user") {
		t.Errorf("light skeleton:\n%s", out)
	}
	dir := t.TempDir()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loader"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, errText, code = runInspectCLI(t, nil, "--recursive", "--rules", "@defaults", dir)
	if code != 0 || !strings.Contains(out, "object "+dir+"/loader@offset 0x") || !strings.Contains(out, "  program handle_execve_e ") ||
		!strings.Contains(out, "verdict: block") {
		t.Errorf("exit %d %s:\n%s", code, errText, out)
	}
}

// A file stuffed with light-skeleton loaders costs a bounded number of blob
// searches; the loaders beyond the bound are reported, not dropped silently.
func TestInspectBoundsTheLightSkeletonsDecodedPerFile(t *testing.T) {
	b, err := os.ReadFile(testprogs.Path("lskel/exechijack-lskel"))
	if err != nil {
		t.Fatal(err)
	}
	var many []byte
	for range embedded.MaxLoaders + 1 {
		many = append(many, b...)
	}
	p := filepath.Join(t.TempDir(), "many")
	if err := os.WriteFile(p, many, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errText, code := runInspectCLI(t, nil, p)
	if code != 2 || !strings.Contains(errText, "17 light-skeleton loader prologues, only the first 16 decoded") {
		t.Errorf("exit %d: %s", code, errText)
	}
	if n := strings.Count(out, "program handle_execve_e\n"); n != embedded.MaxLoaders {
		t.Errorf("%d programs decoded, want %d", n, embedded.MaxLoaders)
	}
}
