package analysis_test

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// A raw dump that builds "/bin/sh" on the stack and prints it with
// bpf_trace_printk, written out byte by byte (include/uapi/linux/bpf.h).
func ExampleAnalyze() {
	raw := []byte{
		0xb7, 0x01, 0, 0, '/', 'b', 'i', 'n', // r1 = "/bin"
		0x63, 0x1a, 0xf8, 0xff, 0, 0, 0, 0, // *(u32 *)(r10 -8) = r1
		0x62, 0x0a, 0xfc, 0xff, '/', 's', 'h', 0, // *(u32 *)(r10 -4) = "/sh\0"
		0xbf, 0xa1, 0, 0, 0, 0, 0, 0, // r1 = r10
		0x07, 0x01, 0, 0, 0xf8, 0xff, 0xff, 0xff, // r1 += -8
		0xb7, 0x02, 0, 0, 8, 0, 0, 0, // r2 = 8
		0x85, 0x00, 0, 0, 6, 0, 0, 0, // call bpf_trace_printk
		0x95, 0, 0, 0, 0, 0, 0, 0, // exit
	}
	p, err := program.FromRaw("example.bin", raw)
	if err != nil {
		panic(err)
	}
	r := analysis.Analyze(p, nil)
	for _, h := range r.Helpers {
		fmt.Printf("helper %s x%d at %v\n", h.Name, h.Count, h.At)
	}
	for _, s := range r.Strings {
		fmt.Printf("string %q (%s) from insn %d\n", s.Text, s.Kind, s.Insn)
	}
	// Output:
	// helper bpf_trace_printk x1 at [6]
	// string "/bin/sh" (format) from insn 1
}
