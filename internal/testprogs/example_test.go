package testprogs_test

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
)

// A test that needs the exechijack imitation finds its file and what the
// kernel will make of it.
func ExampleLookup() {
	o, _ := testprogs.Lookup("exechijack.bpf.o")
	p := o.Programs[0]
	fmt.Println(o.Malicious, p.Name, "->", p.KernelName())
	fmt.Println("loads here:", p.Loads, "- refused for", p.RefusedFor)
	// Output:
	// true handle_execve_enter1 -> handle_execve_e
	// loads here: false - refused for bpf_probe_write_user
}

// Rule tests iterate over the benign set: no default rule may flag these.
func ExampleBenign() {
	n := 0
	for _, o := range testprogs.Benign() {
		n += len(o.Programs)
	}
	fmt.Println(len(testprogs.Benign()), "benign objects,", n, "programs")
	// Output: 16 benign objects, 29 programs
}
