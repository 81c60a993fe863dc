package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
)

// Every object the object loader refuses gets a verdict per program, with
// what stayed unresolved beside it.
func TestInspectObjectsTheLoaderRefusesGetVerdicts(t *testing.T) {
	defer func() { inspectRules = "" }()
	for _, f := range testprogs.ObjectLoaderRefuses {
		out, errText, code := runInspectCLI(t, nil, "--rules", "@defaults", testprogs.Path(f))
		inspectRules = ""
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, errText)
		}
		progs := strings.Count(out, "\nprogram ") + 1
		if n := strings.Count(out, "\nverdict: "); n != progs {
			t.Errorf("%s: %d verdicts for %d programs:\n%s", f, n, progs, out)
		}
		if n := strings.Count(out, "  read:        directly (the object loader refused the object: "); n != progs {
			t.Errorf("%s: %d programs say they were read directly, want %d", f, n, progs)
		}
	}
	out, _, code := runInspectCLI(t, nil, "--rules", "@defaults", testprogs.Path("externfunc.bpf.o"))
	if code != 0 || !strings.Contains(out, "  unresolved:  extern cel_expr_1 (insn 1): ") {
		t.Errorf("exit %d, the extern is not reported unresolved:\n%s", code, out)
	}
	out, _, _ = runInspectCLI(t, nil, testprogs.Path("structops.bpf.o"))
	for _, m := range []string{"select_cpu", "enqueue", "init"} {
		if !strings.Contains(out, "  struct_ops:  sentry_ops (sched_ext_ops)."+m+"\n") {
			t.Errorf("no struct_ops line for %s:\n%s", m, out)
		}
	}
	out, _, code = runInspectCLI(t, nil, "--format", "json", testprogs.Path("externfunc.bpf.o"))
	var doc struct {
		Programs []struct {
			Unresolved []struct {
				Kind, Name string
				At         int
			} `json:"unresolved"`
			Analysis struct {
				Externs []struct {
					Kind, Name string
				} `json:"externs"`
			} `json:"analysis"`
		} `json:"programs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if len(doc.Programs) != 1 || len(doc.Programs[0].Unresolved) != 1 || doc.Programs[0].Unresolved[0].Name != "cel_expr_1" ||
		doc.Programs[0].Unresolved[0].At != 1 || len(doc.Programs[0].Analysis.Externs) != 1 || doc.Programs[0].Analysis.Externs[0].Kind != "extern" {
		t.Errorf("json: %+v", doc)
	}
}
