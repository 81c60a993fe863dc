package output

import (
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
)

func TestEventSaysHowManyDecodeProblemsWereNotListed(t *testing.T) {
	a := newAnalysis(&analysis.Report{Problems: []string{"insn 0 (byte 0): bad"}, ProblemsDropped: 41})
	if len(a.Problems) != 2 || !strings.Contains(a.Problems[1], "41 more decode problems") {
		t.Errorf("problems = %q", a.Problems)
	}
}
