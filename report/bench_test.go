package report

import (
	"io"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// The HTML report of a 100,000-instruction program (target ≤ 1 s), beside
// the kernel-form listing of the same program as baseline. Both start from
// the decoded program and its analysis, as inspect has them.
func BenchmarkHTMLReport100k(b *testing.B) {
	p := &program.Program{Source: program.SourceRaw, Name: "big", Insns: Synthetic(100_000)}
	in := input(b, p, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := Write(io.Discard, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKernelListing100k(b *testing.B) {
	p := &program.Program{Source: program.SourceRaw, Name: "big", Insns: Synthetic(100_000)}
	in := input(b, p, nil)
	var kf insn.KernelFormatter
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := kf.WriteListing(io.Discard, in.Insns, insn.ListingBpftool); err != nil {
			b.Fatal(err)
		}
	}
}
