package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestDefaultsAreValid(t *testing.T) {
	set, err := Defaults()
	if err != nil {
		t.Fatalf("embedded defaults: %v", err)
	}
	if len(set.Rules) < 8 {
		t.Fatalf("defaults hold %d rules, want the seed patterns and the rootkit primitives", len(set.Rules))
	}
	for _, r := range set.Rules {
		if r.Description == "" || len(r.Tags) == 0 {
			t.Errorf("default rule %s lacks a description or tags", r.ID)
		}
	}
}

// The expected hits come from the helper profiles, attach points and
// strings the test programs were written to have (see each testdata/*.bpf.c
// header), not from running the evaluator.
var wantDefaultHits = map[string][]string{
	"pamspy.bpf.o/det_pam_get_authtok":          {"seed-pamspy", "credential-files", "credential-uprobe"},
	"pamspy.bpf.o/handle_pam_ret":               {"credential-files", "credential-uprobe"},
	"exechijack.bpf.o/handle_execve_enter1":     {"seed-exechijack", "probe-write-user"},
	"getdents_hide.bpf.o/handle_getdents_enter": {"getdents-hook"},
	// its section names the target; loaded with another section (or
	// raw instructions) it is harmless-looking until attached (run judges
	// the attach: TestRunReportsAttachesWithTheirTargets…)
	"attach_targets.bpf.o/count_dirents":       {"getdents-hook"},
	"attach_targets.bpf.o/count_raw":           {}, // sys_enter: what it does depends on its code, which counts
	"attach_targets.bpf.o/count_pam":           {}, // SEC("uprobe"): the binary is only known at the attach
	"getdents_hide.bpf.o/handle_getdents_exit": {"syscall-tail-call-chain", "getdents-hook"},
	"getdents_hide.bpf.o/handle_dirent_scan":   {"syscall-tail-call-chain", "getdents-hook"},
	"getdents_hide.bpf.o/handle_dirent_patch":  {"probe-write-user", "getdents-hook"},
	"sudoers.bpf.o/handle_openat_enter":        {"credential-files"},
	"sudoers.bpf.o/handle_read_enter":          {},
	"sudoers.bpf.o/handle_read_exit":           {"probe-write-user"},
	"antiforensics.bpf.o/watch_bpf_enum":       {"bpf-hook"},
	"antiforensics.bpf.o/kill_bpftool":         {"send-signal-from-tracing", "bpf-hook"},
	"override.bpf.o/block_getdents":            {"override-return", "getdents-hook"},
	"bpfhide.bpf.o/deny_bpf_enum":              {"bpf-hook", "lsm-syscall-deny"},
	"bpfhide.bpf.o/spy_bpf_calls":              {"bpf-hook"},
	"evasion.bpf.o/sshd_audit":                 {"seed-pamspy", "credential-files", "credential-uprobe"},
	// It only records who opened which file: its two compared names are
	// reported as strings, no default rule judges them.
	"filehide.bpf.o/hide_files": {},
	// One program per technique of rules/defaults/surface.yaml.
	"surface.bpf.o/protect_implant":  {"anti-kill", "lsm-syscall-deny"},
	"surface.bpf.o/deny_kill":        {"anti-kill", "fmod-ret-syscall"},
	"surface.bpf.o/grab_sshd_pass":   {"credential-uprobe"},
	"surface.bpf.o/grab_crypt":       {"credential-uprobe"},
	"surface.bpf.o/wake_on_bad_csum": {"tcp-error-trigger"},
	"surface.bpf.o/tc_backdoor":      {"packet-backdoor"},
	// The split and staged variants evade seed-pamspy's helper profile (too
	// few probe_read call sites, or the profile spread over two programs);
	// only the alerting rules see them.
	"evasion.bpf.o/det_pam_split":  {"credential-files", "credential-uprobe"},
	"evasion.bpf.o/det_pam_stage1": {"credential-files", "credential-uprobe"},
	"evasion.bpf.o/det_pam_stage2": {"credential-files", "credential-uprobe"},
}

// malicious reports whether the test program's source says it imitates a
// malicious tool (its header comment starts "MALICIOUS-STYLE"); every other
// object in testdata/ is benign and must not raise a single alert.
// Generated objects (big.bpf.o) keep their source in testdata/build/, which
// is not committed; generated programs are benign.
func malicious(t *testing.T, obj string) bool {
	base := strings.TrimSuffix(filepath.Base(obj), ".o") + ".c"
	for _, src := range []string{testutils.Testdata(base), testutils.Testdata("build", base)} {
		b, err := os.ReadFile(src)
		if err == nil {
			return bytes.Contains(b, []byte("MALICIOUS-STYLE"))
		}
	}
	return false
}

func TestDefaultRulesOnTestdata(t *testing.T) {
	set := MustDefaults()
	objs, err := filepath.Glob(testutils.Testdata("*.bpf.o"))
	if err != nil || len(objs) == 0 {
		t.Fatalf("no testdata objects (%v): run make testdata", err)
	}
	seen := map[string]bool{}
	for _, obj := range objs {
		progs, err := program.FromELF(obj)
		if err != nil {
			t.Fatalf("read %s: %v", obj, err)
		}
		base := filepath.Base(obj)
		bad := malicious(t, obj)
		for _, p := range progs {
			key := base + "/" + p.Name
			t.Run(key, func(t *testing.T) {
				v := Evaluate(set, p, analysis.Analyze(p, nil))
				var got []string
				for _, h := range v.Hits {
					got = append(got, h.ID)
					if len(h.Why) == 0 {
						t.Errorf("rule %s matched without a reason", h.ID)
					}
				}
				want, listed := wantDefaultHits[key]
				if listed && !bad {
					t.Fatalf("%s has expected hits but its source is not marked MALICIOUS-STYLE", key)
				}
				if !listed && bad {
					t.Fatalf("malicious-style program %s has no expectation; add one", key)
				}
				seen[key] = true
				sort.Strings(got)
				want = slices.Clone(want)
				sort.Strings(want)
				if !slices.Equal(got, want) {
					t.Errorf("default rules matched %v, want %v", got, want)
					for _, h := range v.Hits {
						for _, r := range h.Why {
							t.Logf("  %s: %s", h.ID, r)
						}
					}
				}
			})
		}
	}
	for key := range wantDefaultHits {
		if !seen[key] {
			t.Errorf("expected program %s not found in testdata", key)
		}
	}
}

// wantOwnHits are the default rules the sentry's own kernel programs meet
// on their merits, from what each program is: the enforcers call
// bpf_send_signal or bpf_probe_write_user from tracing programs, and the
// syscall-side programs hook bpf() (sys_enter_bpf, the kprobes on *sys_bpf,
// the bpf LSM hooks). No rule exempts a loader by name.
var wantOwnHits = map[string][]string{
	"sentry_enter_tp":               {"send-signal-from-tracing", "bpf-hook"},
	"sentry_enter_tp_corrupt":       {"probe-write-user", "bpf-hook", "send-signal-from-tracing"}, // an attach is killed, not corrupted
	"sentry_enter_tp_gate":          {"bpf-hook"},
	"sentry_exit_tp":                {"bpf-hook"},
	"sentry_enter_btf":              {"send-signal-from-tracing"},
	"sentry_enter_btf_corrupt":      {"probe-write-user", "send-signal-from-tracing"}, // the self-protection guard kills
	"sentry_enter_btf_gate":         nil,
	"sentry_exit_btf":               nil,
	"sentry_lsm_prog_load":          {"bpf-hook", "lsm-syscall-deny"},
	"sentry_lsm_token_create":       nil,
	"sentry_lsm_bpf":                {"bpf-hook", "lsm-syscall-deny"},
	"sentry_lsm_bpf_gate":           {"bpf-hook", "lsm-syscall-deny"},
	"sentry_lsm_guard":              {"bpf-hook", "lsm-syscall-deny"},
	"sentry_lsm_guard_map":          {"lsm-syscall-deny"},
	"sentry_enter_kprobe":           {"send-signal-from-tracing", "bpf-hook"},
	"sentry_enter_kprobe_ia32":      {"send-signal-from-tracing", "bpf-hook"},
	"sentry_enter_kprobe_ia32_gate": {"bpf-hook"},
	"sentry_exit_kretprobe_ia32":    {"bpf-hook"},
	"sentry_enter_kprobe_direct":    {"send-signal-from-tracing", "bpf-hook"},
	"sentry_prefault":               nil,
	"sentry_ioctl_enter":            {"send-signal-from-tracing"},
	"sentry_ioctl_enter_deny":       nil,
	"sentry_ioctl_exit":             nil,
	"sentry_ioctl_exit_paired":      nil,
	"sentry_perf_open_enter":        nil,
	"sentry_perf_open_exit":         {"send-signal-from-tracing"}, // it stops a perf_event_open caller while the ioctl hook is off
	"sentry_attach_tp":              {"bpf-hook"},
	"sentry_lsm_attach_gate":        {"bpf-hook", "lsm-syscall-deny"},
	"sentry_lsm_ioctl_gate":         nil,
	"sentry_group_enter_tp":         {"bpf-hook"},
	"sentry_group_enter_btf":        nil,
	"ruleeval":                      nil,
	"sentry_lsm_guard_kill":         {"anti-kill", "lsm-syscall-deny"}, // it refuses signals to the agent: what an anti-kill rootkit does
	"sentry_signal_kill":            nil,
	"sentry_signal_tgkill":          nil,
	"sentry_signal_tkill":           nil,
	"sentry_signal_sigqueue":        nil,
	"sentry_signal_tgsigqueue":      nil,
	"sentry_lsm_prog_fd":            {"lsm-syscall-deny"},
	"sentry_exit_tp_lsm":            {"bpf-hook"},
	"sentry_exit_btf_lsm":           nil,
}

// The sentry's own kernel programs (the sensor, the legacy sensor for
// kernels without bpf_loop, and the rule harness) meet exactly the rules
// their nature implies, whatever the loader calls itself: the agent's own
// loads are spared in the kernel by its identity (tgid and start time), not
// by a name in the rules.
func TestDefaultRulesDoNotTrustTheSentrysName(t *testing.T) {
	set := MustDefaults()
	blocked := false
	for _, obj := range []string{"sensor/sentry_x86_bpfel.o", "sensor/sentrylegacy_x86_bpfel.o", "rules/kernel/ruleeval_bpfel.o"} {
		progs, err := program.FromELF(filepath.Join(testutils.Root(), obj))
		if err != nil {
			t.Fatalf("read %s: %v", obj, err)
		}
		for _, p := range progs {
			want, listed := wantOwnHits[p.Name]
			if !listed {
				t.Errorf("%s/%s: no expectation; add it to wantOwnHits", obj, p.Name)
				continue
			}
			rep := analysis.Analyze(p, nil)
			p.Loader = &program.Loader{Comm: "x", Exe: "/tmp/x"}
			other := Evaluate(set, p, rep)
			var got []string
			for _, h := range other.Hits {
				got = append(got, h.ID)
			}
			sort.Strings(got)
			want = slices.Clone(want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s/%s matched %v, want %v", obj, p.Name, got, want)
			}
			p.Loader = &program.Loader{Comm: "ebpf-sentry", Exe: "/usr/local/bin/ebpf-sentry"}
			named := Evaluate(set, p, rep)
			if named.Action != other.Action || len(named.Hits) != len(other.Hits) {
				t.Errorf("%s/%s: named ebpf-sentry %s (%d rules), named x %s (%d rules)", obj, p.Name,
					named.Action, len(named.Hits), other.Action, len(other.Hits))
			}
			if p.Name == "sentry_enter_tp_corrupt" && named.Action == ActionBlock {
				blocked = true
			}
		}
	}
	if !blocked {
		t.Error("the corrupt enforcer (bpf_probe_write_user) is not blocked by the defaults")
	}
}
