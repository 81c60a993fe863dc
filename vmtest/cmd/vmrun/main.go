// Command vmrun runs Go test packages inside qemu VMs booting the Debian
// kernels of the vmtest matrix and prints a per-kernel table ending in
// "N passed, N failed". It exits 1 when any kernel × suite failed, 2 when the
// harness itself could not run.
//
//	go run ./vmtest/cmd/vmrun                         # whole matrix, capability suite
//	go run ./vmtest/cmd/vmrun -kernels 6.12 -run 'TestKernelCapabilities/lsm'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/vmtest"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		kernels  = flag.String("kernels", "", "comma-separated kernel labels (default: the whole matrix; see -list)")
		packages = flag.String("packages", strings.Join(vmtest.DefaultPackages, ","), "comma-separated Go packages whose tests run in every VM")
		helpers  = flag.String("helpers", strings.Join(vmtest.DefaultHelpers, ","), "comma-separated main packages built into the VM's /bin (PATH) for the tests")
		testRun  = flag.String("run", "", "passed to the test binaries as -test.run (default: all tests, the sensor suite's kernel-specific subset)")
		count    = flag.Int("count", 1, "passed to the test binaries as -test.count (a test repeated in one boot)")
		parallel = flag.Int("parallel", 2, "VMs at a time (each takes one host core under TCG)")
		timeout  = flag.Duration("timeout", 25*time.Minute, "hard limit per VM (the slowest took 10 min under TCG on a loaded host)")
		out      = flag.String("out", "", "output directory (default: bin/vmtest in the repository)")
		list     = flag.Bool("list", false, "print the matrix and exit")
		verbose  = flag.Bool("v", false, "print every VM's console log")
	)
	flag.Parse()
	if *list {
		for _, k := range vmtest.Matrix {
			fmt.Printf("%-14s %-17s %-28s %s\n", k.Label, k.Release, k.Package, strings.Join(k.Cmdline, " "))
		}
		return 0
	}
	repo, err := repoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return 2
	}
	var labels []string
	if *kernels != "" {
		labels = strings.Split(*kernels, ",")
	}
	ks, err := vmtest.Select(labels)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join(repo, "bin", "vmtest")
	}
	q := vmtest.DefaultQEMU
	if err := checkQEMU(q); err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var helperPkgs []string
	if *helpers != "" {
		helperPkgs = strings.Split(*helpers, ",")
	}
	sum, err := vmtest.Run(ctx, vmtest.Options{
		Helpers: helperPkgs,
		Repo:    repo, Kernels: ks, Packages: strings.Split(*packages, ","), Run: *testRun, Count: *count, PackageRun: vmtest.DefaultPackageRun,
		Parallel: *parallel, Timeout: *timeout, Out: *out, QEMU: q, Log: os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return 2
	}
	for _, r := range sum.Rows {
		if *verbose || !r.Passed {
			if data, err := os.ReadFile(r.Console); err == nil {
				fmt.Printf("===== console of %s =====\n%s\n", r.Kernel, data)
			}
		}
	}
	fmt.Println()
	sum.Print(os.Stdout)
	if _, failed := sum.Counts(); failed > 0 {
		return 1
	}
	return 0
}

// checkQEMU names the missing piece instead of letting every VM fail alike.
func checkQEMU(q vmtest.QEMU) error {
	if _, err := exec.LookPath(q.Binary); err != nil {
		return fmt.Errorf("%s not found (install qemu-system-x86, see scripts/deps.sh): %w", q.Binary, err)
	}
	if _, err := os.Stat(q.BIOS); err != nil {
		return fmt.Errorf("qboot firmware: %w", err)
	}
	return nil
}

// repoRoot walks up from the working directory to go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the repository (no go.mod above the working directory)")
		}
		dir = parent
	}
}
