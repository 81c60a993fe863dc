//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

func runScanCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, nil, append([]string{"scan"}, args...)...)
}

// loadScanTarget loads a socket filter that calls bpf_ktime_get_ns under
// the given name and returns its id; it is unloaded when the test ends.
func loadScanTarget(t *testing.T, name string) uint32 {
	t.Helper()
	testutils.RequireRoot(t, "loading a BPF program to scan")
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.FnKtimeGetNs.Call(), asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return uint32(id)
}

func TestScanJudgesLoadedProgramsWithRules(t *testing.T) {
	id := loadScanTarget(t, "scan_cli")
	rulesFile := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(rulesFile, []byte("- id: scan-cli-name\n  severity: low\n  action: alert\n  match:\n    prog_name: {exact: [scan_cli]}\n"), 0o644)

	out, errText, code := runScanCLI(t, "--format", "json", "--rules", rulesFile)
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errText)
	}
	var doc struct {
		Hidden   *[]any `json:"hidden"`
		Programs []struct {
			ID      uint32 `json:"id"`
			Name    string `json:"name"`
			Program *struct {
				Analysis struct {
					Helpers []struct{ Name string } `json:"helpers"`
				} `json:"analysis"`
				Verdict []struct {
					Action string `json:"action"`
					Rules  []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"verdict"`
				Instructions []struct{ Kernel string } `json:"instructions"`
			} `json:"program"`
		} `json:"programs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("scan --format json: %v", err)
	}
	if doc.Hidden == nil || len(*doc.Hidden) != 0 {
		t.Errorf("hidden: %v, want an empty list on a host with nothing hidden", doc.Hidden)
	}
	found := false
	for _, p := range doc.Programs {
		if p.ID != id {
			continue
		}
		found = true
		if p.Program == nil {
			t.Fatalf("prog %d has no analysis", id)
		}
		if len(p.Program.Analysis.Helpers) != 1 || p.Program.Analysis.Helpers[0].Name != "bpf_ktime_get_ns" {
			t.Errorf("helpers %+v, want bpf_ktime_get_ns named from the translated call", p.Program.Analysis.Helpers)
		}
		if len(p.Program.Verdict) != 1 || p.Program.Verdict[0].Action != "alert" || len(p.Program.Verdict[0].Rules) != 1 || p.Program.Verdict[0].Rules[0].ID != "scan-cli-name" {
			t.Errorf("verdict %+v, want alert by scan-cli-name", p.Program.Verdict)
		}
		if len(p.Program.Instructions) != 3 || !strings.Contains(p.Program.Instructions[0].Kernel, "call bpf_ktime_get_ns#") {
			t.Errorf("instructions %+v, want the call named as bpftool names it", p.Program.Instructions)
		}
	}
	if !found {
		t.Fatalf("prog %d missing from scan output", id)
	}

	text, _, code := runScanCLI(t, "--rules", rulesFile)
	want := fmt.Sprintf("prog id %d tag ", id)
	if code != 0 || !strings.Contains(text, want) || !strings.Contains(text, "scan-cli-name") {
		t.Errorf("text output lacks %q or the rule hit (exit %d)", want, code)
	}
}

func TestScanWithUnreadableProcReportsItAndStillLists(t *testing.T) {
	id := loadScanTarget(t, "scan_noproc")
	out, errText, code := runScanCLI(t, "--root", t.TempDir())
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errText)
	}
	if !strings.Contains(out, "problem: fd holders unknown: list processes") || !strings.Contains(out, "problem: bpffs pins unknown") {
		t.Errorf("no clear report of the missing /proc:\n%.400s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("prog id %d tag ", id)) {
		t.Errorf("prog %d not listed without /proc", id)
	}
}

func TestScanRejectsAnUnknownFormat(t *testing.T) {
	_, errText, code := runScanCLI(t, "--format", "yaml")
	if code != 2 || !strings.Contains(errText, `--format "yaml"`) {
		t.Errorf("exit %d, %q", code, errText)
	}
}

// scan --format html writes the analyst's report of one loaded program,
// chosen by id or by name, with its verdict; without --prog it says what is
// missing.
func TestScanHTMLReportsOneLoadedProgram(t *testing.T) {
	id := loadScanTarget(t, "scan_html")
	rulesFile := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(rulesFile, []byte("- id: scan-html-name\n  severity: low\n  action: alert\n  match:\n    prog_name: {exact: [scan_html]}\n"), 0o644)
	for _, sel := range []string{fmt.Sprint(id), "scan_html"} {
		out, errText, code := runScanCLI(t, "--format", "html", "--prog", sel, "--rules", rulesFile)
		if code != 0 {
			t.Fatalf("--prog %s: exit %d: %s", sel, code, errText)
		}
		for _, want := range []string{"<!doctype html>", "scan_html", "scan-html-name", "bpf_ktime_get_ns"} {
			if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
				t.Errorf("--prog %s: the report lacks %q", sel, want)
			}
		}
	}
	if _, errText, code := runScanCLI(t, "--format", "html"); code != 2 || !strings.Contains(errText, "--prog") {
		t.Errorf("html without --prog: exit %d, %q", code, errText)
	}
	if _, errText, code := runScanCLI(t, "--format", "html", "--prog", "no_such_prog_x"); code != 2 || !strings.Contains(errText, "no such program") {
		t.Errorf("html of a program not loaded: exit %d, %q", code, errText)
	}
}
