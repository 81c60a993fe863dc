//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// BenchmarkScan1000 measures scan over 1,000 extra loaded programs, side by
// side with "bpftool prog show --json" over the same programs in the same
// run. "pipeline" is the scan in this process (enumerate, read, analyse,
// judge with the default rules, json); "cli" and "bpftool" run the two
// binaries and report their peak RSS (maxrss-MB).
func BenchmarkScan1000(b *testing.B) {
	testutils.RequireRoot(b, "loading 1,000 BPF programs")
	for i := range 1000 {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: fmt.Sprintf("bench_%d", i), Type: ebpf.SocketFilter, License: "GPL",
			Instructions: asm.Instructions{
				asm.FnKtimeGetNs.Call(),
				asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
				asm.FnGetPrandomU32.Call(),
				asm.Mov.Imm(asm.R0, int32(i)),
				asm.Return(),
			}})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
	}
	set, err := rules.Defaults()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pipeline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			inv, err := inventory.Scan(nil)
			if err != nil {
				b.Fatal(err)
			}
			aopts := &analysis.Options{}
			if aopts.Kallsyms, err = readCalledKallsyms(inv); err != nil {
				b.Fatal(err)
			}
			if len(inv.Programs) < 1000 {
				b.Fatalf("scan found %d programs", len(inv.Programs))
			}
			w := bufio.NewWriter(io.Discard)
			if err := writeScanJSON(w, inv, crossView(inv), set, aopts); err != nil {
				b.Fatal(err)
			}
		}
	})
	bin := filepath.Join(b.TempDir(), "ebpf-sentry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		b.Fatal("bpftool not installed")
	}
	// Peak RSS through GNU time run from a shell: a child that Go starts
	// directly (vfork) inherits the test process's high-water mark.
	run := func(b *testing.B, name string, args ...string) {
		var maxKB int64
		for b.Loop() {
			var stderr strings.Builder
			cmd := exec.Command("sh", append([]string{"-c", `/usr/bin/time -f %M "$0" "$@" >/dev/null; true`, name}, args...)...)
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			lines := strings.Fields(stderr.String())
			kb, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
			if err != nil {
				b.Fatalf("%s: %q", name, stderr.String())
			}
			maxKB = max(maxKB, kb)
		}
		b.ReportMetric(float64(maxKB)/1024, "maxrss-MB")
	}
	b.Run("cli", func(b *testing.B) { run(b, bin, "scan", "--format", "json", "--rules", defaultsArg) })
	b.Run("bpftool", func(b *testing.B) { run(b, bpftool, "prog", "show", "--json") })
}
