package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

func TestExplainFromInspectAndRulesCheck(t *testing.T) {
	obj := testutils.Testdata("surface.bpf.o")
	out, errs, code := runRulesCLI(t, "inspect", "--rules", "@defaults", "--explain", "--prog", "deny_kill", obj)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"explain:\n",
		"  anti-kill [block]: matches\n      held:   attach_type: modify_return\n",
		"  fmod-ret-syscall [alert]: matches\n",
		"  send-signal-from-tracing [alert]: near miss, 1 of 2 predicates hold\n      held:   prog_type: tracing\n",
		"      failed: helpers_any (want helpers_any bpf_send_signal,bpf_send_signal_thread)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect --explain lacks %q:\n%s", want, out)
		}
	}

	out, errs, code = runRulesCLI(t, "inspect", "--rules", "@defaults", "--explain", "--prog", "tc_backdoor", "--format", "json", obj)
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errs)
	}
	var doc struct {
		Programs []struct {
			Verdict []struct {
				Explain []struct {
					ID      string `json:"id"`
					Outcome string `json:"outcome"`
				} `json:"explain"`
			} `json:"verdict"`
		} `json:"programs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range doc.Programs[0].Verdict {
		for _, e := range v.Explain {
			found = found || e.ID == "packet-backdoor" && e.Outcome == "match"
		}
	}
	if !found {
		t.Errorf("json explain lacks packet-backdoor: match:\n%s", out)
	}

	out, errs, code = runRulesCLI(t, "rules", "check", "@defaults", "--explain", testutils.Testdata("override.bpf.o"))
	if code != 0 {
		t.Fatalf("rules check --explain: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "@defaults on ") || !strings.Contains(out, "program block_getdents:\nexplain:\n  override-return [block]: matches\n") {
		t.Errorf("rules check --explain output:\n%s", out)
	}

	_, errs, code = runRulesCLI(t, "inspect", "--explain", obj)
	if code == 0 || !strings.Contains(errs, "--explain needs --rules") {
		t.Errorf("--explain without --rules: exit %d, %q", code, errs)
	}
}
