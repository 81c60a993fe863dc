package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodRule = `- id: sample
  description: a sample
  severity: high
  action: block
  tags: [T1014]
  match:
    helpers:
      bpf_probe_read: 2
      get_current_comm: 1
      14: 1
    helpers_only: true
    prog_name: {exact: [testtest], prefix: [det_]}
    prog_type: [kprobe, 5]
    loader:
      uid: [0]
`

func TestParseAcceptsAFullRule(t *testing.T) {
	set, err := Parse("good.yaml", []byte(goodRule))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(set.Rules))
	}
	r := set.Rules[0]
	if r.ID != "sample" || r.Severity != SeverityHigh || r.Action != ActionBlock || r.Pos.Line != 1 || r.Pos.Column != 3 {
		t.Errorf("rule header decoded as %+v", r)
	}
	// Names with and without bpf_ and plain ids resolve to the kernel's ids
	// (include/uapi/linux/bpf.h: probe_read 4, get_current_comm 16, get_current_pid_tgid 14).
	want := []HelperMin{{4, "bpf_probe_read", 2}, {16, "bpf_get_current_comm", 1}, {14, "bpf_get_current_pid_tgid", 1}}
	if len(r.Match.Helpers) != len(want) {
		t.Fatalf("helpers %+v, want %+v", r.Match.Helpers, want)
	}
	for i, h := range want {
		if r.Match.Helpers[i] != h {
			t.Errorf("helper %d = %+v, want %+v", i, r.Match.Helpers[i], h)
		}
	}
	if got := r.Match.ProgType; len(got) != 2 || got[0] != 2 || got[1] != 5 {
		t.Errorf("prog_type %v, want [2 5] (kprobe, tracepoint)", got)
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(match string) string {
		return "- id: r1\n  severity: low\n  action: alert\n  match:\n" + match
	}
	tests := []struct {
		name string
		in   string
		want string // substring of the error, starting with line:column
	}{
		{"an empty file has no rules", "", "x.yaml:1:1: empty file: no rules"},
		{"a file of comments has no rules", "# nothing\n# here\n", "x.yaml:1:1: empty file"},
		{"an empty list has no rules", "[]\n", "empty list: no rules"},
		{"a mapping at the top is not a list of rules", "id: x\n", "x.yaml:1:1: want a list, got a mapping"},
		{"broken YAML names its position", "- id: [unclosed\n", "x.yaml:1:"},
		{"an unknown rule key suggests the nearest", "- id: r1\n  severity: low\n  action: alert\n  mtach: {}\n", `x.yaml:4:3: rule "r1": mtach: unknown key (did you mean "match"?)`},
		{"an unknown match key suggests the nearest", rule("    helper: {bpf_probe_read: 1}\n"), `x.yaml:5:5: rule "r1": match.helper: unknown key (did you mean "helpers"?)`},
		{"an unknown helper suggests the nearest", rule("    helpers: {bpf_probe_reed: 1}\n"), `x.yaml:5:15: rule "r1": match.helpers.bpf_probe_reed: unknown helper "bpf_probe_reed" (did you mean bpf_probe_read?)`},
		{"an unknown helper id is refused", rule("    helpers_any: [99999]\n"), `match.helpers_any: unknown helper id 99999`},
		{"a count must be an integer", rule("    helpers: {bpf_probe_read: many}\n"), `x.yaml:5:31: rule "r1": match.helpers.bpf_probe_read: want a non-negative integer, got a string`},
		{"a count must not be negative", rule("    helpers: {bpf_probe_read: -1}\n"), "want a non-negative integer, got -1"},
		{"helpers_only wants a boolean", rule("    helpers_only: yes please\n"), "match.helpers_only: want true or false, got a string"},
		{"a bad regex is refused", rule("    strings: {regex: ['(unclosed']}\n"), "match.strings.regex: bad regex \"(unclosed\""},
		{"a long pattern is refused", rule("    strings: {contains: ['" + strings.Repeat("a", MaxPatternLen+1) + "']}\n"), "pattern is 257 bytes, at most 256"},
		{"a prog name longer than the kernel keeps can never match", rule("    prog_name: {exact: [handle_execve_enter1]}\n"), `x.yaml:5:25: rule "r1": match.prog_name.exact: name "handle_execve_enter1" can never match: kernel names are at most 15 characters (libbpf loads longer ELF names as "handle_execve_e")`},
		{"a comm is never an exception", rule("    helpers_any: [36]\n    not: {loader: {comm: [ebpf-sentry]}}\n"), "match.not: loader.comm cannot be an exception: any process can take any comm (prctl PR_SET_NAME)"},
		{"a comm nested in an any under a not is never an exception", rule("    helpers_any: [36]\n    not: {any: [{loader: {comm: [a]}}, {loader: {uid: [0]}}]}\n"), "loader.comm cannot be an exception"},
		{"an exe identity needs its device", rule("    loader: {exe_identity: [{inode: 5}]}\n"), "exe_identity needs inode and dev"},
		{"an exe identity device is major:minor", rule("    loader: {exe_identity: [{inode: 5, dev: 2049}]}\n"), "want a string, got an integer"},
		{"an exe identity device in the wrong form", rule("    loader: {exe_identity: [{inode: 5, dev: '8-1'}]}\n"), `dev "8-1": want MAJOR:MINOR`},
		{"an exe identity hash is 64 hex digits", rule("    loader: {exe_identity: [{inode: 5, dev: '8:1', sha256: abc}]}\n"), `sha256 "abc": want 64 lowercase hex digits`},
		{"a prog name with a dash can never match", rule("    prog_name: my-prog\n"), "the kernel accepts only letters, digits, '_' and '.' in program names"},
		{"a glob needing more than 15 bytes can never match", rule("    prog_name: {glob: ['*abcdefghijklmnop*']}\n"), "can never match"},
		{"a regex needing more than 15 bytes can never match", rule("    prog_name: {regex: ['^handle_(execve|execveat)_enter']}\n"), "needs 19 bytes and kernel program names are at most 15"},
		{"a bad glob is refused", rule("    attach_to: ['sys_[enter']\n"), "bad glob \"sys_[enter\": unterminated ["},
		{"an unknown prog type suggests the nearest", rule("    prog_type: [tracepiont]\n"), `unknown prog type "tracepiont" (did you mean "tracepoint"?)`},
		{"an empty match would match everything", rule("    {}\n"), "match: empty match: it would match every program"},
		{"an inverted range can never match", rule("    insn_count: {min: 10, max: 2}\n"), "min 10 is above max 2"},
		{"helpers_mode needs helpers", rule("    helpers_mode: called\n    helpers_only: true\n"), "match.helpers_mode: needs helpers"},
		{"anchors are refused", "- &a\n  id: r1\n", "anchors and aliases are not supported"},
		{"aliases are refused", "- id: r1\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n  tags: &t [a]\n- id: r2\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n  tags: *t\n", "anchors and aliases are not supported"},
		{"tags are refused", rule("    helpers_only: !!bool true\n"), "YAML tags are not supported"},
		{"a missing action is named", "- id: r1\n  severity: low\n  match: {helpers_any: [1]}\n", `x.yaml:1:3: rule "r1": action: missing (required)`},
		{"an unknown severity lists the valid ones", "- id: r1\n  severity: severe\n  action: alert\n  match: {helpers_any: [1]}\n", "unknown severity \"severe\"; valid: info, low, medium, high, critical"},
		{"an invalid id is refused", "- id: 'has space'\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n", "is not a valid id"},
		{"a duplicate id names the first", "- id: r1\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n- id: r1\n  severity: low\n  action: alert\n  match: {helpers_any: [2]}\n", `x.yaml:5:3: rule "r1": id: duplicate id, first defined at x.yaml:1:3`},
		{"a duplicate helper under two spellings is refused", rule("    helpers: {bpf_probe_read: 1, probe_read: 2}\n"), "helper bpf_probe_read is already listed as \"bpf_probe_read\""},
		{"an allow entry needs a valid sha256", "- id: r1\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n  allow: [{sha256: abc}]\n", "allow[0].sha256: want 64 hex digits"},
		{"two documents are refused", "- id: r1\n---\n- id: r2\n", "one YAML document"},
		{"invalid UTF-8 is refused", "- id: \xff\n", "not valid UTF-8"},
		{"deep nesting is refused", rule(strings.Repeat("    not:\n", 1) + deepNot(20)), "nested more than 16 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("x.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted %q as %d rules", tt.in, len(set.Rules))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n%v\ndoes not contain\n%s", err, tt.want)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error is %T, want *LoadError", err)
			}
		})
	}
}

// deepNot nests n `not:` blocks under the one rule() opened.
func deepNot(n int) string {
	var b strings.Builder
	indent := "      "
	for range n {
		b.WriteString(indent + "not:\n")
		indent += "  "
	}
	b.WriteString(indent + "helpers_any: [1]\n")
	return b.String()
}

func TestEmptyErrorsAreRecognisable(t *testing.T) {
	_, err := Parse("x.yaml", nil)
	if !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty file error %v is not ErrEmpty", err)
	}
}

func TestHugeFileIsRefusedWithoutReadingIt(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "huge.yaml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse 100 MB file: refused after reading MaxFileSize+1 bytes.
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(p)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("100 MB file: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("huge.yaml:1:1: file is larger than %d bytes", MaxFileSize)) {
		t.Errorf("error %q does not name the file and the limit", err)
	}
}

func TestLoadDirMergesFilesAndFindsDuplicatesAcrossThem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "- id: one\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n")
	write("b.yml", "- id: two\n  severity: low\n  action: alert\n  match: {helpers_any: [2]}\n")
	write("notes.txt", "not rules")
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 2 || set.Rules[0].ID != "one" || set.Rules[1].ID != "two" {
		t.Fatalf("loaded %d rules from %s", len(set.Rules), dir)
	}
	write("c.yaml", "- id: one\n  severity: low\n  action: alert\n  match: {helpers_any: [3]}\n")
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1:3: rule \"one\": id: duplicate id, first defined at "+filepath.Join(dir, "a.yaml")+":1:3") {
		t.Fatalf("duplicate across files: %v", err)
	}
}

func TestEveryErrorIsReportedNotJustTheFirst(t *testing.T) {
	in := "- id: r1\n  severity: nope\n  action: maybe\n  match: {helpers: {bpf_nothing: 1}}\n"
	_, err := Parse("x.yaml", []byte(in))
	var le *LoadError
	if !errors.As(err, &le) || len(le.Errs) != 3 {
		t.Fatalf("want 3 errors (severity, action, helper), got %v", err)
	}
}

// Inputs that made go-yaml take seconds to minutes before the text and
// token checks; each must now be refused quickly with a position.
func TestPathologicalYAMLIsRefusedQuickly(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"16,000 nested [ are refused at the 33rd", strings.Repeat("[", 16000), "x.yaml:1:33: [ and { nested more than 32 deep"},
		{"nested flow mappings are refused", strings.Repeat("{a: ", 4000), "nested more than 32 deep"},
		{"a long line is refused", strings.Repeat(`"`, 100000), "x.yaml:1:1025: line longer than 1024 bytes"},
		{"compact nested sequences are refused", strings.Repeat("- ", 500), "x.yaml:1:161: nested too deeply"},
		{"deep block nesting is refused by column", deepBlock(100), "nested too deeply: structure past column 160"},
		{"too many lines are refused", strings.Repeat("-\n", 5000), "x.yaml:4001:1: more than 4000 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func deepBlock(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat("  ", i) + "k:\n")
	}
	return b.String()
}
