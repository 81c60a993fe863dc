//go:build linux && amd64

package main

import (
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
	"github.com/ebpf-sentry/ebpf-sentry/target"
)

// An attach of a program whose load was not seen is judged from the
// kernel's translated instructions, which call helpers by address: the
// analysis counts them by the names bpftool gives them (kallsyms), with
// their helper ids, never under the raw negative immediates.
func TestAttachOfAnUnseenProgramNamesItsHelpersAsBpftoolDoes(t *testing.T) {
	testutils.RequireRoot(t, "loads a BPF program")
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		t.Skip("no bpftool to compare with")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.TracePoint, License: "GPL", Instructions: asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(),
		asm.FnKtimeGetNs.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	out, err := exec.Command(bpftool, "prog", "dump", "xlated", "id", strconv.FormatUint(uint64(id), 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("bpftool: %v: %s", err, out)
	}
	var want []string
	for _, m := range regexp.MustCompile(`call ([A-Za-z_][A-Za-z0-9_]*)#`).FindAllSubmatch(out, -1) {
		want = append(want, string(m[1]))
	}
	slices.Sort(want)
	j := newAttachJudge()
	jd := j.judgeTarget(&rules.Set{}, &sensor.AttachEvent{Op: sensor.OpLinkCreate, ProgID: uint32(id), ProgType: uint32(ebpf.TracePoint)}, target.Target{})
	if jd.facts != "kernel" || jd.rep == nil {
		t.Fatalf("facts %q: want the kernel's", jd.facts)
	}
	var got []string
	for _, h := range jd.rep.Helpers {
		if h.ID < 0 {
			t.Errorf("helper %s counted under id %d", h.Name, h.ID)
		}
		got = append(got, h.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("helpers %v, bpftool calls %v\n%s", got, want, out)
	}
}
