package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Every object the object loader refuses gets a verdict per program, with
// what stayed unresolved beside it.
func TestInspectObjectsTheLoaderRefusesGetVerdicts(t *testing.T) {
	for _, f := range testprogs.ObjectLoaderRefuses {
		out, errText, code := runInspectCLI(t, nil, "--rules", "@defaults", testprogs.Path(f))
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

// Loads of what the loader patches in read as the extern, never as 0, in
// the kernel form, the JSON form and (as a comment that keeps the listing
// assemblable) the macro form.
func TestInspectShowsExternsInEveryForm(t *testing.T) {
	obj := testprogs.Path("externs.bpf.o")
	out, errText, code := runInspectCLI(t, nil, "--format", "kernel", "--prog", "ext_version", obj)
	if code != 0 {
		t.Fatal(errText)
	}
	for _, want := range []string{"   0: (18) r1 = kconfig:LINUX_KERNEL_VERSION\n", "   5: (18) r2 = ksym:bpf_task_from_pid\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("kernel form lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = runInspectCLI(t, nil, "--format", "kernel", testprogs.Path("externfunc.bpf.o"))
	if !strings.Contains(out, "   1: (85) call pc-1#extern:cel_expr_1\n") {
		t.Errorf("kernel form does not name the extern call:\n%s", out)
	}

	out, _, _ = runInspectCLI(t, nil, "--format", "macro", "--prog", "ext_version", obj)
	for _, want := range []string{"BPF_LD_IMM64(BPF_REG_1, 0), /* kconfig:LINUX_KERNEL_VERSION */\n", "BPF_LD_IMM64(BPF_REG_2, 0), /* ksym:bpf_task_from_pid */\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("macro form lacks %q:\n%s", want, out)
		}
	}
	bin, err := insn.Assemble(out)
	if err != nil {
		t.Fatalf("the macro form does not assemble: %v", err)
	}
	progs, err := program.FromELF(obj)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, p := range progs {
		if p.Name == "ext_version" {
			want = p.Insns
		}
	}
	if !bytes.Equal(bin, want) {
		t.Errorf("the macro form assembles to %d bytes that differ from the program's %d", len(bin), len(want))
	}

	out, _, _ = runInspectCLI(t, nil, "--format", "json", "--insns", "--prog", "ext_version", obj)
	var doc struct {
		Programs []struct {
			Instructions []struct {
				Index  int    `json:"index"`
				Kernel string `json:"kernel"`
			} `json:"instructions"`
			Analysis struct {
				Externs []struct {
					Kind, Name string
					At         []int
				} `json:"externs"`
			} `json:"analysis"`
		} `json:"programs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Programs) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	p := doc.Programs[0]
	if p.Instructions[0].Kernel != "(18) r1 = kconfig:LINUX_KERNEL_VERSION" {
		t.Errorf("json instruction 0: %q", p.Instructions[0].Kernel)
	}
	if len(p.Analysis.Externs) != 2 || p.Analysis.Externs[0].Kind != "kconfig" || p.Analysis.Externs[0].Name != "LINUX_KERNEL_VERSION" ||
		p.Analysis.Externs[1].Kind != "ksym" || p.Analysis.Externs[1].Name != "bpf_task_from_pid" || p.Analysis.Externs[1].At[0] != 5 {
		t.Errorf("json externs %+v", p.Analysis.Externs)
	}
}
