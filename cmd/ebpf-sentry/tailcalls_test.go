package main

import (
	"encoding/json"
	"fmt"
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
