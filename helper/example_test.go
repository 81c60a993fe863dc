package helper_test

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
)

func ExampleTable_ID() {
	t := helper.Static()
	for _, name := range []string{"bpf_probe_write_user", "probe_write_user", "BPF_FUNC_probe_write_user"} {
		id, ok := t.ID(name)
		fmt.Println(id, ok)
	}
	name, _ := t.Name(36)
	fmt.Println(name)
	// Output:
	// 36 true
	// 36 true
	// 36 true
	// bpf_probe_write_user
}

func ExampleTable_Nearest() {
	if s, ok := helper.Static().Nearest("bpf_probe_reed"); ok {
		fmt.Printf("unknown helper bpf_probe_reed, did you mean %s?\n", s)
	}
	// Output:
	// unknown helper bpf_probe_reed, did you mean bpf_probe_read?
}
