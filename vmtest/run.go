package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a matrix run.
type Options struct {
	// Repo is the repository root: packages are built from it and kernels
	// fetched with its scripts/kernels.sh.
	Repo string
	// Kernels are the boots to run (see Select).
	Kernels []Kernel
	// Packages are the Go packages whose tests run in every VM, e.g.
	// "./vmtest/capabilities". Each becomes one suite named after its last element.
	Packages []string
	// Helpers are main packages built statically into /bin of the VM (on
	// the suites' PATH), for tests that run a helper program: nothing can be
	// compiled inside the VM.
	Helpers []string
	// Run is passed as -test.run when set.
	Run string
	// Count is -test.count (0: 1).
	Count int
	// PackageRun is -test.run for one package (keyed as in Packages),
	// used when Run is empty: a suite too slow to run whole under TCG runs
	// the subset that proves the kernel-specific paths.
	PackageRun map[string]string
	// Parallel is how many VMs run at once.
	Parallel int
	// Timeout is the hard limit of one VM.
	Timeout time.Duration
	// Out receives build products and one directory per boot.
	Out  string
	QEMU QEMU
	// Log receives progress lines.
	Log io.Writer
}

// Row is one kernel × suite result.
type Row struct {
	Kernel   string
	Image    string // Debian package and version the kernel came from
	Suite    string
	Status   string // PASS, FAIL, NO TESTS, TIMEOUT, NO RESULT or ERROR
	Passed   bool
	Reported bool  // the suite reported on the result port
	Tally    Tally // its test counts when it did
	Detail   string
	Duration time.Duration // of the whole VM
	Console  string
	Failures []string // failed test names seen on the console
}

// Summary is the outcome of a matrix run.
type Summary struct {
	Rows []Row
	Wall time.Duration
}

// Counts returns how many kernel × suite rows passed and failed.
func (s Summary) Counts() (passed, failed int) {
	for _, r := range s.Rows {
		if r.Passed {
			passed++
		} else {
			failed++
		}
	}
	return passed, failed
}

// Print writes the per-kernel table, the failing tests and the final
// "N passed, N failed" line.
func (s Summary) Print(w io.Writer) {
	tw := newTable("KERNEL", "IMAGE", "SUITE", "RESULT", "TESTS PASS/FAIL/SKIP", "VM TIME")
	for _, r := range s.Rows {
		tests := "-"
		if r.Reported {
			tests = fmt.Sprintf("%d/%d/%d", r.Tally.Passed, r.Tally.Failed, r.Tally.Skipped)
		}
		tw.add(r.Kernel, r.Image, r.Suite, r.Status, tests, r.Duration.Round(100*time.Millisecond).String())
	}
	tw.write(w)
	for _, r := range s.Rows {
		if r.Passed {
			continue
		}
		fmt.Fprintf(w, "\n%s / %s: %s", r.Kernel, r.Suite, r.Status)
		if r.Detail != "" {
			fmt.Fprintf(w, " (%s)", r.Detail)
		}
		fmt.Fprintf(w, "\n  console: %s\n", r.Console)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  --- FAIL: %s\n", f)
		}
	}
	p, f := s.Counts()
	fmt.Fprintf(w, "\nmatrix wall time %s\n%d passed, %d failed\n", s.Wall.Round(100*time.Millisecond), p, f)
}

// Run builds the suites, fetches the kernels and boots every kernel with
// every suite. The error is for the harness failing; test failures are rows.
func Run(ctx context.Context, o Options) (Summary, error) {
	start := time.Now()
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	build := filepath.Join(o.Out, "build")
	if err := os.MkdirAll(build, 0o755); err != nil {
		return Summary{}, fmt.Errorf("create build directory: %w", err)
	}
	initramfs, suites, err := buildInitramfs(ctx, o, build)
	if err != nil {
		return Summary{}, err
	}
	images, err := fetchKernels(ctx, o)
	if err != nil {
		return Summary{}, err
	}

	outcomes := make([]Outcome, len(o.Kernels))
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for i, k := range o.Kernels {
		// Taking the slot before starting the goroutine boots in matrix order.
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fmt.Fprintf(o.Log, "vmtest: booting %s (%s)\n", k.Label, images[k.Image].version)
			outcomes[i] = o.QEMU.Run(ctx, Boot{
				Kernel: k, Vmlinuz: images[k.Image].path, Initramfs: initramfs,
				Dir: filepath.Join(o.Out, k.Label), Timeout: o.Timeout,
			})
			fmt.Fprintf(o.Log, "vmtest: %s ended after %s\n", k.Label, outcomes[i].Duration.Round(100*time.Millisecond))
		}()
	}
	wg.Wait()

	var sum Summary
	for i, k := range o.Kernels {
		sum.Rows = append(sum.Rows, rows(k, images[k.Image].version, suites, outcomes[i])...)
	}
	sum.Wall = time.Since(start)
	return sum, nil
}

// rows judges one VM: a suite passes only with exit code 0 on the result port.
func rows(k Kernel, image string, suites []Suite, out Outcome) []Row {
	failures := failedTests(out.Console)
	var rs []Row
	for _, s := range suites {
		r := Row{Kernel: k.Label, Image: image, Suite: s.Name, Duration: out.Duration, Console: out.Console}
		res, ok := out.Results.Suite(s.Name)
		r.Reported, r.Tally = ok, res.Tally
		switch {
		case ok && res.Code == 0 && res.Passed > 0:
			r.Status, r.Passed = "PASS", true
		case ok && res.Code == 0:
			r.Status, r.Detail = "NO TESTS", "exit 0 but no test passed (-run matched nothing, or everything skipped)"
		case ok:
			r.Status, r.Failures = fmt.Sprintf("FAIL (exit %d)", res.Code), failures
		case out.TimedOut:
			r.Status, r.Detail, r.Failures = "TIMEOUT", "qemu killed after the per-VM timeout", failures
		case out.Err != nil:
			r.Status, r.Detail = "ERROR", out.Err.Error()
		default:
			r.Status, r.Detail = "NO RESULT", "the VM ended without reporting this suite (kernel panic or init failure)"
		}
		if r.Passed && out.Err != nil {
			// A suite passed but the channel is broken afterwards: do not trust it.
			r.Status, r.Passed, r.Detail = "ERROR", false, out.Err.Error()
		}
		rs = append(rs, r)
	}
	return rs
}

var failLine = regexp.MustCompile(`--- FAIL: (\S+)`)

// failedTests lists the "--- FAIL: name" lines of a console log.
func failedTests(console string) []string {
	data, err := os.ReadFile(console)
	if err != nil {
		return nil
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := failLine.FindStringSubmatch(sc.Text()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// buildInitramfs builds the init and one static test binary per package and
// packs them with the config.
func buildInitramfs(ctx context.Context, o Options, dir string) (string, []Suite, error) {
	var files []File
	initBin := filepath.Join(dir, "init")
	if err := goBuild(ctx, o, "build", "-o", initBin, "./vmtest/cmd/vminit"); err != nil {
		return "", nil, err
	}
	data, err := os.ReadFile(initBin)
	if err != nil {
		return "", nil, fmt.Errorf("read init: %w", err)
	}
	files = append(files, File{Name: "init", Mode: 0o755, Data: data})

	helpers, err := buildHelpers(ctx, o, filepath.Join(dir, "helpers"))
	if err != nil {
		return "", nil, err
	}
	files = append(files, helpers...)

	var cfg Config
	seen := map[string]string{}
	for _, pkg := range o.Packages {
		name := path.Base(strings.TrimSuffix(pkg, "/..."))
		if prev, dup := seen[name]; dup {
			return "", nil, fmt.Errorf("packages %s and %s would both be suite %q", prev, pkg, name)
		}
		seen[name] = pkg
		bin := filepath.Join(dir, name+".test")
		fmt.Fprintf(o.Log, "vmtest: building %s\n", pkg)
		if err := goBuild(ctx, o, "test", "-c", "-o", bin, pkg); err != nil {
			return "", nil, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			// go test -c writes nothing for a package without tests.
			return "", nil, fmt.Errorf("package %s has no test binary: %w", pkg, err)
		}
		count := max(o.Count, 1)
		args := []string{"-test.v", "-test.count=" + strconv.Itoa(count)}
		// Let the test binary time out before qemu is killed, so the console
		// shows which test hung.
		if t := o.Timeout - 30*time.Second; t > 0 {
			args = append(args, "-test.timeout="+t.String())
		}
		if o.Run != "" {
			args = append(args, "-test.run="+o.Run)
		} else if r := o.PackageRun[pkg]; r != "" {
			args = append(args, "-test.run="+r)
		}
		pkgDir, err := packageDir(ctx, o, pkg)
		if err != nil {
			return "", nil, err
		}
		s := Suite{Name: name, Path: "/suites/" + name + ".test", Args: args,
			Env: []string{"EBPF_SENTRY_REQUIRE_PRIVILEGED=1"}, Dir: pkgDir}
		cfg.Suites = append(cfg.Suites, s)
		files = append(files, File{Name: strings.TrimPrefix(s.Path, "/"), Mode: 0o755, Data: data})
		td, err := testdata(ctx, o.Repo, pkgDir)
		if err != nil {
			return "", nil, err
		}
		files = append(files, td...)
	}
	files = dedupe(files)
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", nil, fmt.Errorf("encode config: %w", err)
	}
	files = append(files, File{Name: strings.TrimPrefix(ConfigPath, "/"), Mode: 0o644, Data: raw})

	out := filepath.Join(dir, "initramfs.cpio")
	f, err := os.Create(out)
	if err != nil {
		return "", nil, fmt.Errorf("create initramfs: %w", err)
	}
	if err := WriteInitramfs(f, files); err != nil {
		f.Close()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		return "", nil, fmt.Errorf("write initramfs: %w", err)
	}
	return out, cfg.Suites, nil
}

// helperTarget is one build of a helper package.
type helperTarget struct {
	Pkg    string
	Name   string // file name under /bin of the VM
	GOARCH string
}

// helperTargets lists two builds of each helper: the native x86-64 one as
// /bin/<name>, and a 32-bit (GOARCH=386) one as /bin/<name>32, which the
// VM's 64-bit kernel runs through its ia32 compat layer, so tests can check
// what a 32-bit process's syscalls look like to the sensor's hooks. A
// package written PKG@native is built for x86-64 only (the agent itself,
// which does not build for 386).
func helperTargets(pkgs []string) []helperTarget {
	var ts []helperTarget
	for _, pkg := range pkgs {
		pkg, native := strings.CutSuffix(pkg, "@native")
		name := path.Base(pkg)
		ts = append(ts, helperTarget{Pkg: pkg, Name: name, GOARCH: "amd64"})
		if !native {
			ts = append(ts, helperTarget{Pkg: pkg, Name: name + "32", GOARCH: "386"})
		}
	}
	return ts
}

// buildHelpers builds every helper target statically into dir and returns
// them as files of the VM's /bin.
func buildHelpers(ctx context.Context, o Options, dir string) ([]File, error) {
	var files []File
	for _, t := range helperTargets(o.Helpers) {
		bin := filepath.Join(dir, t.Name)
		fmt.Fprintf(o.Log, "vmtest: building helper %s (GOARCH=%s) as /bin/%s\n", t.Pkg, t.GOARCH, t.Name)
		if err := goBuildArch(ctx, o, t.GOARCH, "build", "-o", bin, t.Pkg); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return nil, fmt.Errorf("read helper %s (GOARCH=%s): %w", t.Pkg, t.GOARCH, err)
		}
		files = append(files, File{Name: "bin/" + t.Name, Mode: 0o755, Data: data})
	}
	return files, nil
}

// packageDir is the absolute source directory of a Go package.
func packageDir(ctx context.Context, o Options, pkg string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", pkg)
	cmd.Dir = o.Repo
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w", pkg, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// testdata returns the committed files of the repository's testdata/ and the
// package's own testdata/, named by their absolute host paths, so a test finds
// them in the VM exactly where it would on the host. Only committed files
// are packed: build products under testdata/ can be large and are not inputs.
func testdata(ctx context.Context, repo, pkgDir string) ([]File, error) {
	dirs := []string{filepath.Join(repo, "testdata"), filepath.Join(pkgDir, "testdata")}
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo, "ls-files", "-z", "--full-name", "--"}, dirs...)...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list committed testdata of %s: %w", pkgDir, err)
	}
	var files []File
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		abs := filepath.Join(repo, rel)
		st, err := os.Stat(abs)
		if err != nil {
			// Deleted in the working tree but still in the index.
			continue
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			return nil, fmt.Errorf("read testdata %s: %w", abs, err)
		}
		files = append(files, File{Name: strings.TrimPrefix(abs, "/"), Mode: st.Mode().Perm(), Data: data})
	}
	return files, nil
}

// dedupe drops repeated names (two suites share the repository's testdata).
func dedupe(files []File) []File {
	seen := map[string]bool{}
	out := files[:0]
	for _, f := range files {
		if !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f)
		}
	}
	return out
}

// goBuild runs the go tool statically: the initramfs has no libc.
func goBuild(ctx context.Context, o Options, args ...string) error {
	return goBuildArch(ctx, o, "", args...)
}

// goBuildArch is goBuild for GOARCH goarch ("" keeps the environment's).
func goBuildArch(ctx context.Context, o Options, goarch string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("GOARCH=%s go %s: %w\n%s", goarch, strings.Join(args, " "), err, out)
	}
	return nil
}

type image struct{ path, version string }

// fetchKernels resolves every image the boots need through scripts/kernels.sh
// (cached, so reruns do not download).
func fetchKernels(ctx context.Context, o Options) (map[string]image, error) {
	images := map[string]image{}
	for _, k := range o.Kernels {
		if _, ok := images[k.Image]; ok {
			continue
		}
		cmd := exec.CommandContext(ctx, filepath.Join(o.Repo, "scripts", "kernels.sh"), k.Image, k.Release, k.Package)
		cmd.Stderr = o.Log
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("fetch kernel %s (%s %s): %w", k.Image, k.Release, k.Package, err)
		}
		p := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(p, '\n'); i >= 0 {
			p = p[i+1:]
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("kernel %s: scripts/kernels.sh printed %q: %w", k.Image, p, err)
		}
		images[k.Image] = image{path: p, version: packageVersion(filepath.Join(filepath.Dir(p), "package"))}
	}
	return images, nil
}

// packageVersion reads the "Package:" and "Version:" lines kernels.sh saves.
func packageVersion(file string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return "?"
	}
	var pkg, ver string
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "Package: "); ok {
			pkg = v
		}
		if v, ok := strings.CutPrefix(l, "Version: "); ok {
			ver = v
		}
	}
	return strings.TrimSpace(pkg + " " + ver)
}
