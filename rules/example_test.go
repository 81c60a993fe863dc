package rules_test

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

func ExampleEvaluate() {
	set, err := rules.Parse("example.yaml", []byte(`
- id: writes-user-memory
  severity: critical
  action: block
  tags: [T1014]
  match:
    helpers_any: [bpf_probe_write_user]
    # Another security agent, by what it cannot choose: its file.
    not:
      loader:
        exe_identity:
          - {inode: 1835021, dev: "8:1", sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Normally from analysis.Analyze; written out here.
	prog := &program.Program{Name: "handle_execve_enter", Loader: &program.Loader{Comm: "exechijack", ExeInode: 4711, ExeDev: rules.KernelDev(8, 1)}}
	rep := &analysis.Report{Helpers: []analysis.HelperUse{{ID: 36, Name: "bpf_probe_write_user", Count: 1, At: []int{42}}}}
	fmt.Print(rules.FormatVerdict(rules.Evaluate(set, prog, rep)))
	fmt.Println(rules.Compile(set).Placements[0].Reason)
	// Output:
	// verdict: block (1 rules matched)
	//   rule writes-user-memory [block, critical] T1014
	//     helpers_any: calls bpf_probe_write_user×1 at insn 42
	//     not: the exception does not hold: loader.exe_identity inode 1835021 dev 8:1 sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
	// kernel: enforced at load time
}
