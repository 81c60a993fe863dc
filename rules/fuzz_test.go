package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must return rules or a
// LoadError with positions, never panic or hang, and whatever it accepts
// must evaluate and compile.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(goodRule))
	for _, name := range []string{"defaults/seed.yaml", "defaults/rootkit.yaml", "testdata/seed-literal.yaml"} {
		data, err := readCapped(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("- id: a\n  severity: low\n  action: alert\n  match: {any: [{not: {prog_name: {glob: ['[!x]*']}}}]}\n"))
	f.Add([]byte("- &a [*a, *a]\n"))
	f.Add([]byte("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["))
	f.Add([]byte("- id: x\n  match: {strings: {regex: ['(a*)*b']}}\n"))
	f.Add([]byte("- id: e\n  severity: high\n  action: block\n  match: {helpers_any: [36], not: {loader: {exe_identity: [{inode: 7, dev: '259:1', sha256: " + strings.Repeat("a", 64) + "}]}}}\n"))
	f.Add([]byte("- id: c\n  severity: high\n  action: block\n  match: {not: {any: [{loader: {comm: [x]}}]}}\n"))
	f.Add([]byte("- id: d\n  severity: high\n  action: block\n  match: {cbpf: {socket: [packet], magic: [0x7255], magic_any: true, ports: [22], option: [SO_ATTACH_FILTER]}, not: {loader: {exe: ['/usr/*']}}}\n"))
	f.Add([]byte("- id: l\n  severity: low\n  action: alert\n  match: {prog_type: [syscall], loads_programs: true}\n"))
	prog, rep := sampleInput()
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		set, err := Parse("fuzz.yaml", data)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("parsing %d bytes took %v", len(data), d)
		}
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Errs) == 0 {
				t.Fatalf("error %v is not a LoadError with entries", err)
			}
			for _, fe := range le.Errs {
				if fe.Pos.File != "fuzz.yaml" || fe.Pos.Line < 1 || fe.Pos.Column < 1 || !strings.HasPrefix(fe.Error(), "fuzz.yaml:") {
					t.Fatalf("error without a position: %q", fe.Error())
				}
			}
			return
		}
		if len(set.Rules) == 0 {
			t.Fatal("accepted a file without rules")
		}
		Evaluate(set, prog, rep)
		Evaluate(set, &program.Program{}, &analysis.Report{})
		EvaluateCbpf(set, &Cbpf{Option: "SO_ATTACH_FILTER", Socket: "packet", Ports: []uint32{22}, Magic: []uint32{0x7255}}, &program.Loader{})
		Compile(set)
	})
}
