package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// runRulesCLI runs the CLI with args and returns stdout, stderr and the exit code.
func runRulesCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func TestRulesCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("- id: x\n  severity: high\n  action: block\n  match: {helpers: {bpf_probe_reed: 1}}\n"), 0o644)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("- id: x\n  severity: high\n  action: block\n  match: {strings: {contains: [/etc/shadow]}}\n"), 0o644)

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"the defaults are valid and the seed profiles are enforced in the kernel", []string{"rules", "check", "@defaults"}, 0,
			"seed-pamspy               block   high      kernel: enforced at load time", ""},
		{"a bad file fails naming line, column, field and the nearest helper", []string{"rules", "check", bad}, 1,
			"", bad + `:4:21: rule "x": match.helpers.bpf_probe_reed: unknown helper "bpf_probe_reed" (did you mean bpf_probe_read?)`},
		{"a block rule on strings is reported alert-only with the reason", []string{"rules", "check", good}, 0,
			"alert-only (block not enforceable in the kernel): strings evaluated in user space only", ""},
		{"a missing file fails", []string{"rules", "check", filepath.Join(dir, "none.yaml")}, 1, "", "no such file"},
		{"list prints the defaults", []string{"rules", "list"}, 0, "seed-exechijack  [block, high]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runRulesCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant stdout containing %q, stderr containing %q", code, tt.code, out, errs, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestInspectShowsVerdictsWithRules(t *testing.T) {
	out, errs, code := runRulesCLI(t, "inspect", "--rules", "@defaults", "--prog", "handle_execve_enter1", testutils.Testdata("exechijack.bpf.o"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"verdict: block (2 rules matched)", "rule probe-write-user [block, critical]", "helpers_any: calls bpf_probe_write_user×1 at insn "} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}
