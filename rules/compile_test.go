package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

func TestCompilePlacesDefaults(t *testing.T) {
	c := Compile(MustDefaults())
	want := map[string]string{
		"seed-pamspy":              "kernel: enforced at load time",
		"seed-exechijack":          "kernel: enforced at load time",
		"probe-write-user":         "kernel: enforced at load time",
		"override-return":          "kernel: enforced at load time",
		"credential-uprobe":        "user space: attach_to (the BTF name is resolved in user space) evaluated in user space only",
		"syscall-tail-call-chain":  "user space: tail_calls, any evaluated in user space only",
		"credential-files":         "user space: any evaluated in user space only",
		"send-signal-from-tracing": "user space: alert rules need no kernel enforcement",
		"seed-pamspy-group":        "kernel: judged against the loader group's sum at load time",
	}
	got := map[string]Placement{}
	for _, p := range c.Placements {
		got[p.ID] = p
	}
	for id, reason := range want {
		if got[id].Reason != reason {
			t.Errorf("%s placed %q, want %q", id, got[id].Reason, reason)
		}
	}
	if c.Table.Count != uint32(len(c.Slots)) || len(c.Slots) != 5 || c.Table.GroupN != 1 {
		t.Fatalf("table count %d, slots %v", c.Table.Count, c.Slots)
	}
	for i, id := range c.Slots {
		if got[id].Slot != i || !got[id].Kernel {
			t.Errorf("slot %d holds %s, placement says %+v", i, id, got[id])
		}
	}
}

func TestCompileSaysWhyABlockRuleOnlyAlerts(t *testing.T) {
	tests := []struct {
		name, match, allow, reason string
	}{
		{"a strings predicate stays in user space", "strings: {contains: [x]}", "", "strings evaluated in user space only"},
		{"a prog_name regex stays in user space", "prog_name: {regex: [x]}", "", "prog_name glob/regex evaluated in user space only"},
		{"an exe glob stays in user space", "loader: {exe: ['/usr/*']}", "", "loader.exe evaluated in user space only"},
		{"a sha256 allowlist stays in user space", "helpers_any: [1]", "[{sha256: '" + strings.Repeat("0", 64) + "'}]", "allow by sha256 (the kernel knows only the 64-bit insn_hash)"},
		{"a not with two predicates stays in user space", "helpers_any: [1]\n    not: {loader: {exe: ['/a'], uid: [0]}}", "", "not: only a not holding just"},
		{"too many helpers for the table", "helpers: {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1, 11: 1, 12: 1, 13: 1, 14: 1, 15: 1, 16: 1, 17: 1}", "", "17 helpers, the kernel table holds 16 per rule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "- id: r\n  severity: low\n  action: block\n  match:\n    " + tt.match + "\n"
			if tt.allow != "" {
				y += "  allow: " + tt.allow + "\n"
			}
			c := Compile(mustParse(t, y))
			p := c.Placements[0]
			if p.Kernel || !strings.HasPrefix(p.Reason, "alert-only (block not enforceable in the kernel): ") || !strings.Contains(p.Reason, tt.reason) {
				t.Fatalf("placement %+v, want alert-only because %q", p, tt.reason)
			}
		})
	}
}

func TestKernelStrEncodesExactAndPrefix(t *testing.T) {
	// "abc" in memory order is 0x636261 as a little-endian word.
	exact := kernelStr("abc", false)
	if exact.Text != [2]uint64{0x636261, 0} || exact.Mask != [2]uint64{0xffffffff, 0} {
		t.Errorf("exact abc = %+v: the mask must cover the NUL after the name", exact)
	}
	prefix := kernelStr("abc", true)
	if prefix.Mask != [2]uint64{0xffffff, 0} {
		t.Errorf("prefix abc mask = %#x", prefix.Mask)
	}
	long := kernelStr("abcdefghijklmno", false)
	if long.Mask != [2]uint64{^uint64(0), ^uint64(0)} {
		t.Errorf("exact 15-byte name mask = %#x, want all 16 bytes", long.Mask)
	}
}

// The table holds at least 1,024 block rules; one more is not quietly made
// an alert: Fits refuses the set and names the rules left out.
func TestATableTooSmallForTheSetIsAnError(t *testing.T) {
	if kernel.MaxRules < 1024 {
		t.Fatalf("the kernel table holds %d rules, want at least 1,024", kernel.MaxRules)
	}
	set := func(n int) *Set {
		// A file holds at most MaxListLen rules: parse in parts.
		all := &Set{}
		for from := 0; from < n; from += MaxListLen {
			var b strings.Builder
			for i := from; i < min(n, from+MaxListLen); i++ {
				fmt.Fprintf(&b, "- {id: r%d, severity: low, action: block, match: {helpers_any: [1]}}\n", i)
			}
			all.Rules = append(all.Rules, mustParse(t, b.String()).Rules...)
		}
		return all
	}
	if err := Compile(set(kernel.MaxRules)).Fits(); err != nil {
		t.Fatalf("a full table: %v", err)
	}
	c := Compile(set(kernel.MaxRules + 2))
	if len(c.Slots) != kernel.MaxRules {
		t.Fatalf("%d kernel slots, want %d", len(c.Slots), kernel.MaxRules)
	}
	err := c.Fits()
	want := fmt.Sprintf("it holds %d rules, 2 more are enforceable in the kernel (r%d, r%d)", kernel.MaxRules, kernel.MaxRules, kernel.MaxRules+1)
	if !errors.Is(err, ErrTableFull) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Fits() = %v, want ErrTableFull saying %q", err, want)
	}
}
