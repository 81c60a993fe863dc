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

// rules check says, for every rule on an attach target or a loader group,
// where it is judged at load and at attach and what a block does there.
func TestRulesCheckSaysWhereAttachAndGroupRulesAreEnforced(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "where.yaml")
	os.WriteFile(f, []byte(`- id: tp-block
  severity: high
  action: block
  match: {attach_to: [syscalls/sys_enter_getdents64]}
- id: bin-literal
  severity: high
  action: block
  match: {attach_binary: [/usr/lib/x86_64-linux-gnu/libpam.so.0]}
- id: bin-glob
  severity: high
  action: block
  match: {attach_binary: ["*libpam*"]}
- id: sym-block
  severity: high
  action: block
  match: {attach_symbol: [pam_get_authtok]}
- id: tp-with-helpers
  severity: high
  action: block
  match: {attach_to: [syscalls/sys_enter_getdents64], helpers: {bpf_probe_write_user: 1}}
- id: iface-alert
  severity: low
  action: alert
  match: {attach_interface: [eth*]}
- id: split
  severity: high
  action: block
  scope: group
  match: {helpers: {bpf_probe_read: 5, bpf_tail_call: 0}, helpers_only: true}
- id: plain
  severity: high
  action: block
  match: {helpers: {bpf_probe_write_user: 1}}
`), 0o644)
	out, errs, code := runRulesCLI(t, "rules", "check", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	_, section, ok := strings.Cut(out, "When rules on attach targets or loader groups are judged:\n")
	if !ok {
		t.Fatalf("no enforcement section:\n%s", out)
	}
	// Each rule's block: its header and two stage lines.
	stages := map[string][2]string{}
	lines := strings.Split(strings.TrimSpace(section), "\n")
	for i := 0; i+2 < len(lines); i += 3 {
		id, _, _ := strings.Cut(lines[i], " ")
		stages[id] = [2]string{strings.TrimSpace(lines[i+1]), strings.TrimSpace(lines[i+2])}
	}
	const kill, deny = "SIGKILL", "EPERM"
	for _, tc := range []struct {
		id           string
		load, attach []string // prefixes, then substrings
	}{
		{"tp-block", []string{"at load:   user space: alert only (the block is not enforced)"}, []string{"at attach: kernel:", kill, deny, "lsm/bpf, lsm/file_ioctl", "stays loaded"}},
		{"bin-literal", []string{"at load:   never:"}, []string{"at attach: kernel: uprobe binary paths", kill, deny}},
		{"bin-glob", []string{"at load:   never:"}, []string{"at attach: user space: attach_binary globs with wildcards are matched in user space only"}},
		{"sym-block", []string{"at load:   never:"}, []string{"at attach: kernel (part): kprobe functions", "uprobe symbols", kill}},
		{"tp-with-helpers", []string{"at load:   user space: alert only"}, []string{"at attach: user space: alert at the attach (it judges more than the target"}},
		{"iface-alert", []string{"at load:   never:"}, []string{"at attach: user space: alert at the attach (an alert rule"}},
		{"split", []string{"at load:   kernel: judged in the kernel against the loader group's sum", kill, deny, "lsm/bpf_prog_load", "5.10"}, []string{"at attach: never: a group rule judges loads only"}},
	} {
		got, ok := stages[tc.id]
		if !ok {
			t.Errorf("%s: not in the enforcement section:\n%s", tc.id, section)
			continue
		}
		for i, want := range [][]string{tc.load, tc.attach} {
			if !strings.HasPrefix(got[i], want[0]) {
				t.Errorf("%s: %q, want it to start with %q", tc.id, got[i], want[0])
			}
			for _, sub := range want[1:] {
				if !strings.Contains(got[i], sub) {
					t.Errorf("%s: %q lacks %q", tc.id, got[i], sub)
				}
			}
		}
	}
	if _, ok := stages["plain"]; ok {
		t.Errorf("a rule with neither attach matcher nor group scope is in the enforcement section:\n%s", section)
	}
	if len(stages) != 7 {
		t.Errorf("%d rules in the enforcement section, want 7:\n%s", len(stages), section)
	}
}
