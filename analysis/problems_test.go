package analysis

import (
	"bytes"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestDecodeProblemsBeyondTheCapAreCountedNotKept(t *testing.T) {
	raw := bytes.Repeat([]byte{0xff}, 8*(MaxProblems+150))
	p, err := program.FromRaw("ff", raw)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := insn.Decode(raw)
	_, probs := p.Decode()
	if len(probs) != len(all) {
		t.Fatalf("%d problems for %d invalid slots", len(probs), len(all))
	}
	r := Analyze(p, nil)
	if len(r.Problems) != MaxProblems || r.ProblemsDropped != len(probs)-MaxProblems {
		t.Errorf("report keeps %d problems and counts %d dropped; want %d and %d", len(r.Problems), r.ProblemsDropped, MaxProblems, len(probs)-MaxProblems)
	}
	ins, kept, total := insn.DecodeCapped(raw, 10)
	if len(ins) != len(all) || len(kept) != 10 || total != len(probs) || kept[9] != probs[9] {
		t.Errorf("DecodeCapped: %d insns, %d kept, %d total; want %d, 10, %d", len(ins), len(kept), total, len(all), len(probs))
	}
}
