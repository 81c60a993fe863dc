package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// runInspectCLI runs "ebpf-sentry inspect ARGS" with stdin and returns
// stdout, the error text and the exit code.
func runInspectCLI(t testing.TB, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, stdin, append([]string{"inspect"}, args...)...)
}

func inspectObjects(t *testing.T) []string {
	t.Helper()
	objs, _ := filepath.Glob("../../testdata/*.o")
	if len(objs) == 0 {
		t.Skip("no compiled test programs under testdata/")
	}
	return objs
}

func TestInspectEveryTestObject(t *testing.T) {
	for _, obj := range inspectObjects(t) {
		if testing.Short() && strings.Contains(obj, "big") {
			continue
		}
		t.Run(filepath.Base(obj), func(t *testing.T) {
			progs, err := program.FromELF(obj)
			if err != nil {
				t.Fatal(err)
			}
			out, msg, code := runInspectCLI(t, nil, obj)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			for _, p := range progs {
				if !strings.Contains(out, "program "+p.Name+"\n") {
					t.Errorf("text output lacks program %s", p.Name)
				}
			}
			if n := strings.Count(out, "  sha256: "); n != len(progs) {
				t.Errorf("%d fingerprints for %d programs", n, len(progs))
			}

			out, msg, code = runInspectCLI(t, nil, obj, "--format", "json", "--insns")
			if code != 0 {
				t.Fatalf("json: exit %d: %s", code, msg)
			}
			var doc struct {
				Programs []struct {
					Name     string `json:"name"`
					InsnCnt  int    `json:"insn_cnt"`
					Analysis struct {
						SHA256 string `json:"sha256"`
					} `json:"analysis"`
					Instructions []struct {
						Index  int    `json:"index"`
						Kernel string `json:"kernel"`
					} `json:"instructions"`
				} `json:"programs"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("json output does not parse: %v", err)
			}
			if len(doc.Programs) != len(progs) {
				t.Fatalf("json has %d programs, object %d", len(doc.Programs), len(progs))
			}
			for i, p := range doc.Programs {
				last := p.Instructions[len(p.Instructions)-1]
				if p.Name != progs[i].Name || len(p.Analysis.SHA256) != 64 || last.Index >= p.InsnCnt || last.Kernel == "" {
					t.Errorf("json program %d: %+v", i, p.Name)
				}
			}
		})
	}
}

func TestInspectFormatsAndSelection(t *testing.T) {
	obj := filepath.Join("..", "..", "testdata", "sudoers.bpf.o")
	if _, err := os.Stat(obj); err != nil {
		t.Skip("testdata/sudoers.bpf.o not built")
	}
	progs, err := program.FromELF(obj)
	if err != nil {
		t.Fatal(err)
	}
	p := progs[1]
	ins, _ := p.Decode()
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"kernel format prints one bpftool-style line per instruction", []string{obj, "--prog", p.Name, "--format", "kernel"}, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(ins) || !strings.HasPrefix(lines[0], "   0: (") {
				t.Errorf("%d lines for %d instructions; first %q", len(lines), len(ins), lines[0])
			}
		}},
		{"macro format prints one macro per instruction", []string{obj, "--prog", p.Name, "--format", "macro"}, func(t *testing.T, out string) {
			if n := strings.Count(out, ",\n"); n != len(ins) || !strings.Contains(out, "BPF_EXIT_INSN()") {
				t.Errorf("%d macros for %d instructions", n, len(ins))
			}
		}},
		{"a program can be chosen by index", []string{obj, "--prog", "1"}, func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "program "+p.Name+"\n") || strings.Count(out, "program ") != 1 {
				t.Errorf("output starts %q", out[:min(60, len(out))])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, msg, code := runInspectCLI(t, nil, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			tt.check(t, out)
		})
	}
}

func TestInspectReadsStdin(t *testing.T) {
	obj := filepath.Join("..", "..", "testdata", "nobtf.bpf.o")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Skip("testdata/nobtf.bpf.o not built")
	}
	out, msg, code := runInspectCLI(t, data, "-")
	if code != 0 || !strings.Contains(out, "origin:      stdin (elf)") {
		t.Fatalf("ELF on stdin: exit %d %s\n%s", code, msg, out)
	}
	raw := []byte("\xb7\x00\x00\x00\x00\x00\x00\x00\x85\x00\x00\x00\x0e\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00")
	out, msg, code = runInspectCLI(t, raw, "--raw", "-")
	if code != 0 || !strings.Contains(out, "bpf_get_current_pid_tgid") || !strings.Contains(out, "insns:       3") {
		t.Fatalf("raw on stdin: exit %d %s\n%s", code, msg, out)
	}
}

func TestInspectBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := write("notes.txt", []byte("not an object\n"))
	empty := write("empty.bin", nil)
	odd := write("odd.bin", []byte("\x95\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03"))
	obj := filepath.Join("..", "..", "testdata", "nobtf.bpf.o")
	good, err := os.ReadFile(obj)
	if err != nil {
		t.Skip("testdata/nobtf.bpf.o not built")
	}
	cut := write("cut.o", good[:len(good)/2])
	tests := []struct {
		name     string
		args     []string
		want     string
		wantCode int
		output   bool // the analysis is still printed
	}{
		{"a missing file names the file", []string{filepath.Join(dir, "nope.o")}, "inspect " + filepath.Join(dir, "nope.o") + ": no such file or directory", 2, false},
		{"a text file is not an ELF", []string{text}, "inspect " + text + ": not an ELF file (no ELF magic at byte 0)", 2, false},
		{"a truncated object says truncated", []string{cut}, "inspect " + cut + ": truncated", 2, false},
		{"an empty raw dump is an error", []string{"--raw", empty}, "inspect " + empty + ": empty file (no instructions)", 2, false},
		{"a raw dump of 11 bytes is analysed and the tail reported", []string{"--raw", odd}, "inspect " + odd + ": size is not a multiple of 8: 3 trailing bytes at byte offset 8 (after instruction 0)", 2, true},
		{"an unknown program name lists the programs", []string{obj, "--prog", "nosuch"}, `no program named "nosuch" (programs: nobtf_sock_count, nobtf_exec_count)`, 2, false},
		{"a program index out of range says how many there are", []string{obj, "--prog", "7"}, "program index 7 does not exist (2 programs: 0..1)", 2, false},
		{"an unknown format is refused", []string{obj, "--format", "yaml"}, `inspect: --format "yaml": want text, kernel, macro or json`, 2, false},
		{"no input at all is refused", nil, "inspect: need FILE.o, --raw FILE or - (stdin)", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, msg, code := runInspectCLI(t, nil, tt.args...)
			if code != tt.wantCode || !strings.Contains(msg, tt.want) {
				t.Errorf("exit %d %q, want %d and %q", code, msg, tt.wantCode, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if (out != "") != tt.output {
				t.Errorf("output %q", out)
			}
		})
	}
}

// inspect --event shows a saved prog_load event's program again, judged and
// in any format (html included); other kinds of event are skipped and
// counted, and a prog_load saved without its instructions is an error that
// names its line.
func TestInspectEventShowsTheSavedProgram(t *testing.T) {
	progs, err := program.FromELF(testutils.Testdata("antiforensics.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	var p *program.Program
	for _, q := range progs {
		if q.Name == "kill_bpftool" {
			p = q
		}
	}
	if p == nil {
		t.Fatal("antiforensics.bpf.o has no kill_bpftool")
	}
	p.Loader = &program.Loader{PID: 7, Comm: "loader"}
	withInsns, err := output.Marshal(output.NewProgLoad(output.ProgLoad{Program: p, Report: analysis.Analyze(p, nil)}, output.InsnOptions{Mode: output.InsnModeRaw}))
	if err != nil {
		t.Fatal(err)
	}
	other, err := output.Marshal(output.SensorStarted(output.Sensor{Version: "dev", PID: 1}))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(file, []byte(string(other)+"\n"+string(withInsns)+"\n"), 0o644)

	out, msg, code := runInspectCLI(t, nil, "--event", file, "--rules", "@defaults")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	for _, want := range []string{"kill_bpftool", "bpf_send_signal", "send-signal-from-tracing", "events.jsonl:2"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	out, msg, code = runInspectCLI(t, nil, "--event", file, "--rules", "@defaults", "--format", "html")
	if code != 0 || !strings.Contains(out, "kill_bpftool") || !strings.Contains(strings.ToLower(out), "<!doctype html>") {
		t.Errorf("html: exit %d %s, %d bytes", code, msg, len(out))
	}

	bare, err := output.Marshal(output.NewProgLoad(output.ProgLoad{Program: p}, output.InsnOptions{Mode: output.InsnModeNone}))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, []byte(string(other)+"\n"+string(bare)+"\n"), 0o644)
	if _, msg, code := runInspectCLI(t, nil, "--event", file); code != 2 || !strings.Contains(msg, "line 2") || !strings.Contains(msg, "no raw instructions") {
		t.Errorf("an event without instructions: exit %d, %q", code, msg)
	}
}
