//go:build linux && amd64

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// The tail-call graph in inspect: an object that initialises its prog_array
// (values = { [1] = &tg_stage2 }) shows which program each slot holds.
func TestInspectShowsTheTailCallsAnObjectDeclares(t *testing.T) {
	obj := filepath.Join("..", "..", "testdata", "tailgraph.bpf.o")
	out, errText, code := runCLI(t, nil, "inspect", obj)
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, errText)
	}
	if !strings.Contains(out, "tg_jumps                 prog_array       at 0\n      tail calls: [1] → tg_stage2\n") {
		t.Errorf("inspect text lacks tg_jumps' slot 1 → tg_stage2:\n%s", out)
	}
	out, errText, code = runCLI(t, nil, "inspect", "--format", "json", obj)
	if code != 0 {
		t.Fatalf("inspect json exit %d: %s", code, errText)
	}
	compact := strings.Join(strings.Fields(out), "")
	if !strings.Contains(compact, `"tail_calls":[{"key":1,"prog":"tg_stage2"}]`) {
		t.Errorf("inspect json lacks tg_jumps' tail_calls [1] → tg_stage2:\n%s", out)
	}
	out, errText, code = runCLI(t, nil, "inspect", "--format", "html", "--prog", "tg_stage1", obj)
	if code != 0 {
		t.Fatalf("inspect html exit %d: %s", code, errText)
	}
	if !strings.Contains(out, `<td class="tailcalls">tail calls: [1] → tg_stage2</td>`) {
		t.Errorf("inspect html lacks the tail calls of tg_jumps")
	}
}

// The tail-call graph in scan: a loaded prog_array's occupied slots name the
// programs in them by id, in the text and json formats.
func TestScanShowsTheTailCallsOfALoadedProgArray(t *testing.T) {
	id := loadScanTarget(t, "scan_tailcall")
	arr, err := ebpf.NewMap(&ebpf.MapSpec{Name: "scan_tc_arr", Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := arr.Put(uint32(5), prog); err != nil {
		t.Fatal(err)
	}
	info, err := arr.Info()
	if err != nil {
		t.Fatal(err)
	}
	mid, _ := info.ID()

	out, errText, code := runScanCLI(t)
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errText)
	}
	want := fmt.Sprintf("  %d: prog_array name scan_tc_arr", mid)
	i := strings.Index(out, want)
	if i < 0 || !strings.Contains(out[i:], fmt.Sprintf("\n     tail calls: [5] → prog %d\n", id)) {
		t.Errorf("scan text lacks map %d's slot 5 → prog %d:\n%s", mid, id, out)
	}
	out, errText, code = runScanCLI(t, "--format", "json")
	if code != 0 {
		t.Fatalf("scan json exit %d: %s", code, errText)
	}
	var doc struct {
		Maps []struct {
			ID        uint32 `json:"id"`
			TailCalls []struct {
				Key    uint32 `json:"key"`
				ProgID uint32 `json:"prog_id"`
			} `json:"tail_calls"`
		} `json:"maps"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, m := range doc.Maps {
		if uint32(mid) == m.ID {
			if len(m.TailCalls) != 1 || m.TailCalls[0].Key != 5 || m.TailCalls[0].ProgID != id {
				t.Errorf("map %d tail_calls %+v, want slot 5 → %d", mid, m.TailCalls, id)
			}
			return
		}
	}
	t.Errorf("map %d not in scan json", mid)
}

// run reports a tail-call table swap as a prog_array_write: the same
// program loaded twice by one loader, each written into slot 0.
func TestRunReportsATailCallTableSwap(t *testing.T) {
	f := startRun(t, "--rules-poll", "0", "--reconcile", "0")
	arr, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	pin := fmt.Sprintf("/sys/fs/bpf/groups_run_swap_%d", os.Getpid())
	os.Remove(pin)
	if err := arr.Pin(pin); err != nil {
		t.Fatal(err)
	}
	defer arr.Unpin()
	cmd := exec.Command(f.loader, "-gen", "2", "-count", "2", "-name", "grp_runswap", "-prog-array", pin, "-tail-slot", "0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loader: %v", err)
	}
	var ids []uint32
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct{ ID uint32 }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if len(ids) != 2 {
		t.Fatalf("loader printed %q", out)
	}
	want := fmt.Sprintf("pid=%d op=update map=", cmd.Process.Pid)
	waitForN(t, "two prog_array writes", &f.stdout, want, 2)
	var swap string
	for _, l := range strings.Split(f.stdout.String(), "\n") {
		if strings.Contains(l, want) && strings.HasSuffix(l, " swap") {
			swap = l
		}
	}
	if !strings.Contains(swap, fmt.Sprintf(" key=0 prog=%d old_prog=%d ", ids[1], ids[0])) {
		t.Errorf("no swap line of prog %d for prog %d in:\n%s", ids[0], ids[1], f.stdout.String())
	}
}
