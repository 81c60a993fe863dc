package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/bpfsign"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// provRules is docs/PROVENANCE.md's policy, scoped to this test's program
// names so that it never judges another engineer's loads on a shared host:
// only programs signed with a system keyring's key may load, except the
// allowlisted program (allowProg, by its kernel instruction hash).
const provRules = `
- id: provtest-signed-system-only
  description: only programs signed by a system keyring key may load
  severity: high
  action: block
  match:
    prog_name: {prefix: [provtest_]}
    keyring: [none, user, session]
  allow:
    - insn_hash: "%#x"
`

// allowProg is the allowlisted program: unsigned, yet allowed to load.
var allowProg = helperProg(fnGetCurrentPidTgd, fnKtimeGetNs)

func provTestRules(t testing.TB) *kernel.Rules {
	t.Helper()
	set, err := rules.Parse("provenance.yaml", fmt.Appendf(nil, provRules, kernel.Hash(allowProg)))
	if err != nil {
		t.Fatal(err)
	}
	c := rules.Compile(set)
	if len(c.Slots) != 1 {
		t.Fatalf("the provenance policy is not enforceable in the kernel: %+v", c.Placements)
	}
	return c.Kernel()
}

// signedFiles writes the test program, its signature, a wrong signature
// (made by the same key over other instructions) and the certificate.
type signedFiles struct{ insns, sig, wrong, cert string }

func writeSigned(t testing.TB) signedFiles {
	t.Helper()
	s, err := bpfsign.NewSigner("ebpf-sentry provenance test")
	if err != nil {
		t.Fatal(err)
	}
	insns := helperProg(fnKtimeGetNs)
	sig, err := s.Sign(insns)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := s.Sign(helperProg(fnGetCurrentPidTgd))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := signedFiles{insns: filepath.Join(dir, "insns"), sig: filepath.Join(dir, "sig"), wrong: filepath.Join(dir, "wrong"), cert: filepath.Join(dir, "cert")}
	for p, b := range map[string][]byte{f.insns: insns, f.sig: sig, f.wrong: wrong, f.cert: s.CertDER} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// requireSigning: a 6.18+ kernel must take the signature fields; whether
// it can verify them is probed (EOPNOTSUPP without
// CONFIG_SYSTEM_DATA_VERIFICATION), and the expectations follow.
func requireSigning(t *testing.T) Signing {
	t.Helper()
	testutils.RequireRoot(t, "signed BPF_PROG_LOAD")
	testutils.SkipOnOldKernel(t, "6.18", "signed BPF_PROG_LOAD")
	sg := ProbeSigning()
	if !sg.Fields {
		t.Fatalf("Linux ≥ 6.18 without the signature fields: %s", sg.How)
	}
	t.Logf("signing: %s", sg.How)
	return sg
}

// refusedBeforeTheHook: on lsm/bpf_prog_load, a load the kernel refuses
// before that hook (the signature check, a bad signature pointer or size,
// a token fd that is not a token) never reaches the sensor: no event. A
// known gap (docs/PROVENANCE.md); the syscall hooks report these loads.
func refusedBeforeTheHook(s *Sensor, run loaderRun) bool {
	if s.Hook() != HookLSMProgLoad || len(run.results) != 1 {
		return false
	}
	ret := run.results[0].Ret
	return ret < 0 && ret != -int(syscall.EPERM)
}

func TestSignedLoadsCarryProvenance(t *testing.T) {
	sg := requireSigning(t)
	f := writeSigned(t)
	s := startSensor(t, Config{Mode: ModeMonitor, Rules: provTestRules(t)})

	// What the kernel says about a signature it can check, or that it cannot.
	verified, rejected := program.SigVerified, program.SigRejected
	if !sg.Verifies {
		verified, rejected = program.SigUnsupported, program.SigUnsupported
	}
	cases := []struct {
		name         string
		args         []string
		signed       bool
		keyring      string
		keyringID    int32 // 1: any key serial (positive)
		verdict      Verdict
		verification string
		loaded       bool
	}{
		{"an unsigned load has no signature facts and is judged by the policy",
			nil, false, "", 0, VerdictBlock, "", true},
		{"a load signed with a key in the caller's session keyring is signed, keyring session, and still blocked",
			[]string{"-sig", f.sig, "-cert", f.cert}, true, program.KeyringSession, -3, VerdictBlock, verified, sg.Verifies},
		{"a load signed with a key in a keyring the caller names by serial is keyring user, and still blocked",
			[]string{"-sig", f.sig, "-cert", f.cert, "-cert-keyring", "serial"}, true, program.KeyringUser, 1, VerdictBlock, verified, sg.Verifies},
		{"a wrong signature checked against the session keyring is rejected by the kernel",
			[]string{"-sig", f.wrong, "-cert", f.cert}, true, program.KeyringSession, -3, VerdictBlock, rejected, false},
		{"a signature checked against the builtin system keyring is allowed by the policy and rejected by the kernel (the key is not there)",
			[]string{"-sig", f.sig, "-keyring", "0"}, true, program.KeyringSystem, 0, VerdictAllow, rejected, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "provtest_" + string(rune('a'+i))
			run := runLoader(t, append([]string{"-insns", f.insns, "-type", "1", "-name", name}, tc.args...)...)
			if refusedBeforeTheHook(s, run) {
				return
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1 (loader %+v)", len(evs), run.results)
			}
			ev := evs[0]
			p := ev.Program.Provenance
			if !tc.signed {
				if p != nil && p.Signed {
					t.Fatalf("unsigned load reported signed: %+v", p)
				}
			} else {
				if p == nil || !p.Signed {
					t.Fatalf("signed load without signature facts: %+v", p)
				}
				if p.Keyring != tc.keyring {
					t.Errorf("keyring %q (id %d), want %q", p.Keyring, p.KeyringID, tc.keyring)
				}
				if tc.keyringID == 1 && p.KeyringID <= 2 || tc.keyringID != 1 && p.KeyringID != tc.keyringID {
					t.Errorf("keyring id %d, want %d (1: a key serial)", p.KeyringID, tc.keyringID)
				}
				if p.SignatureSize == 0 || p.SignaturePtr == 0 {
					t.Errorf("signature pointer %#x size %d not captured", p.SignaturePtr, p.SignatureSize)
				}
				if p.Verification != tc.verification {
					t.Errorf("verification %q (errno %d, outcome %+v), want %q", p.Verification, p.VerifyErrno, ev.Outcome, tc.verification)
				}
			}
			if ev.Verdict != tc.verdict {
				t.Errorf("verdict %v (rule %q), want %v", ev.Verdict, ev.RuleID, tc.verdict)
			}
			if got := ev.Outcome.Result == ResultLoaded; got != tc.loaded {
				t.Errorf("outcome %+v, want loaded=%v", ev.Outcome, tc.loaded)
			}
		})
	}
}

func TestSignedPolicyIsEnforcedInTheKernel(t *testing.T) {
	requireSigning(t)
	f := writeSigned(t)
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: provTestRules(t)})
	cases := []struct {
		name   string
		args   []string
		killed bool
	}{
		{"an unsigned load is stopped", nil, true},
		{"a load signed by the caller's own session key is stopped", []string{"-sig", f.sig, "-cert", f.cert}, true},
		{"a load naming the system keyring is left to the kernel", []string{"-sig", f.sig, "-keyring", "0"}, false},
		{"the allowlisted unsigned program loads", []string{"-insns", writeInsns(t, allowProg)}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "provtest_e" + string(rune('a'+i))
			run := runLoader(t, append([]string{"-insns", f.insns, "-type", "1", "-name", name}, tc.args...)...)
			// Stopped: killed on the syscall hooks, denied (EPERM) on the LSM hook.
			denied := len(run.results) == 1 && run.results[0].Ret == -int(syscall.EPERM)
			if stopped := run.killed || denied; stopped != tc.killed {
				t.Fatalf("loader stopped=%v, want %v (results %+v)", stopped, tc.killed, run.results)
			}
			if refusedBeforeTheHook(s, run) {
				return
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			wantAction := ActionNone
			if tc.killed {
				wantAction = ActionKilled
				if ev.RuleID != "provtest-signed-system-only" {
					t.Errorf("rule %q, want provtest-signed-system-only", ev.RuleID)
				}
			}
			if ev.Action != wantAction && !(tc.killed && ev.Action == ActionDenied) {
				t.Errorf("action %v, want %v", ev.Action, wantAction)
			}
		})
	}
	if left := progsNamed(t, "provtest_e"); len(left) != 0 {
		t.Errorf("blocked programs still loaded: %v", left)
	}
}

// Bad input in the provenance fields gets a clear outcome in the event
// and leaves the sensor reporting.
func TestBogusSignaturesAndTokensGetAClearOutcome(t *testing.T) {
	requireSigning(t)
	f := writeSigned(t)
	s := startSensor(t, Config{Mode: ModeMonitor})
	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, p *program.Provenance)
	}{
		{"a bogus signature pointer", []string{"-sig", f.sig, "-sig-ptr", "8", "-keyring", "0"}, func(t *testing.T, p *program.Provenance) {
			if !p.Signed || p.SignaturePtr != 8 {
				t.Errorf("signed=%v pointer %#x, want signed at 0x8", p.Signed, p.SignaturePtr)
			}
		}},
		{"a signature size past the kernel's limit", []string{"-sig", f.sig, "-sig-size", "100000", "-keyring", "0"}, func(t *testing.T, p *program.Provenance) {
			if !p.Signed || p.SignatureSize != 100000 {
				t.Errorf("signed=%v size %d, want 100000", p.Signed, p.SignatureSize)
			}
		}},
		{"an empty signature", []string{"-sig", f.sig, "-sig-size", "0", "-keyring", "0"}, func(t *testing.T, p *program.Provenance) {
			if !p.Signed || p.SignatureSize != 0 {
				t.Errorf("signed=%v size %d, want signed with size 0", p.Signed, p.SignatureSize)
			}
		}},
		{"a keyring serial that names no key", []string{"-sig", f.sig, "-keyring", "2147483000"}, func(t *testing.T, p *program.Provenance) {
			if p.Keyring != program.KeyringUser || p.KeyringID != 2147483000 {
				t.Errorf("keyring %q id %d, want user 2147483000", p.Keyring, p.KeyringID)
			}
		}},
		{"a token fd that is not a token", []string{"-token-fd", "0"}, func(t *testing.T, p *program.Provenance) {
			if !p.ViaToken || p.TokenFD != 0 || p.Signed {
				t.Errorf("via_token=%v fd %d signed=%v, want an unsigned token load with fd 0", p.ViaToken, p.TokenFD, p.Signed)
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "provtest_x" + string(rune('a'+i))
			run := runLoader(t, append([]string{"-insns", f.insns, "-type", "1", "-name", name}, tc.args...)...)
			if len(run.results) != 1 || run.results[0].Ret >= 0 {
				t.Fatalf("the kernel accepted a bogus load: %+v", run.results)
			}
			if refusedBeforeTheHook(s, run) {
				return
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			p := ev.Program.Provenance
			if p == nil {
				t.Fatal("no provenance in the event")
			}
			tc.check(t, p)
			if ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != -run.results[0].Ret {
				t.Errorf("outcome %+v, want failed with errno %d", ev.Outcome, -run.results[0].Ret)
			}
			if p.Signed && (p.Verification == program.SigVerified || p.Verification == "") {
				t.Errorf("verification %q for a failed signed load", p.Verification)
			}
			if p.Signed && p.Verification != program.SigUnsupported && p.Verification != program.SigRejected && p.VerifyErrno != ev.Outcome.Errno {
				t.Errorf("verify errno %d, want the load's %d", p.VerifyErrno, ev.Outcome.Errno)
			}
		})
	}
	// The sensor still reports: an ordinary load after the bad ones.
	run := runLoader(t, "-insns", f.insns, "-type", "1", "-name", "provtest_after")
	if evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait); len(evs) != 1 {
		t.Fatalf("no event for a load after the bogus ones (%d)", len(evs))
	}
}
