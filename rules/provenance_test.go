package rules

import (
	"os"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

const provenanceSet = `
- id: signed-system-only
  description: only programs signed by a system keyring key
  severity: high
  action: block
  match:
    keyring: [none, user, session]
- id: unverified
  description: a signature the kernel did not accept
  severity: medium
  action: alert
  match:
    signed: true
    verified: false
- id: token-kprobe
  description: kprobe programs loaded through a BPF token
  severity: high
  action: block
  match:
    via_token: true
    prog_type: [kprobe]
- id: token-origin
  description: a token made by an unexpected creator in a known namespace
  severity: medium
  action: alert
  match:
    token:
      userns: [4026532001]
      creator: {exe: ["/usr/bin/*"]}
`

func provProg(typ uint32, p *program.Provenance) *program.Program {
	return &program.Program{Source: program.SourceSensor, Name: "p", Type: typ,
		Insns: []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, Provenance: p}
}

func TestProvenanceFactsDecideTheVerdict(t *testing.T) {
	set, err := Parse("prov.yaml", []byte(provenanceSet))
	if err != nil {
		t.Fatal(err)
	}
	tok := &program.Token{UserNS: 4026532001, Creator: &program.TokenCreator{Exe: "/usr/bin/runc"}}
	cases := []struct {
		name string
		prog *program.Program
		hits []string
	}{
		{"an unsigned load is blocked", provProg(1, nil), []string{"signed-system-only"}},
		{"a load verified against the system keyring passes", provProg(1, &program.Provenance{Signed: true, Keyring: program.KeyringSystem, Verification: program.SigVerified}), nil},
		{"a system-keyring signature the kernel rejected alerts", provProg(1, &program.Provenance{Signed: true, Keyring: program.KeyringSystem, Verification: program.SigRejected}), []string{"unverified"}},
		{"a signature by the caller's session key is blocked even when verified", provProg(1, &program.Provenance{Signed: true, KeyringID: -3, Keyring: program.KeyringSession, Verification: program.SigVerified}), []string{"signed-system-only"}},
		{"a signature by a user key serial is blocked and unverified alerts", provProg(1, &program.Provenance{Signed: true, KeyringID: 77, Keyring: program.KeyringUser, Verification: program.SigUnknown}), []string{"signed-system-only", "unverified"}},
		{"a kprobe through a token is blocked, and its token origin alerts", provProg(2, &program.Provenance{ViaToken: true, Token: tok}), []string{"signed-system-only", "token-kprobe", "token-origin"}},
		{"a socket filter through a token is only unsigned", provProg(1, &program.Provenance{ViaToken: true}), []string{"signed-system-only"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(set, tc.prog, analysis.Analyze(tc.prog, nil))
			var got []string
			for _, h := range v.Hits {
				got = append(got, h.ID)
			}
			if strings.Join(got, ",") != strings.Join(tc.hits, ",") {
				t.Errorf("hits %v, want %v", got, tc.hits)
			}
		})
	}
}

func TestProvenancePlacement(t *testing.T) {
	set, err := Parse("prov.yaml", []byte(provenanceSet))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"signed-system-only": true, "unverified": false, "token-kprobe": true, "token-origin": false}
	for _, r := range set.Rules {
		ok, why := Enforceable(r)
		if ok != want[r.ID] {
			t.Errorf("%s: enforceable %v (%s), want %v", r.ID, ok, why, want[r.ID])
		}
	}
}

func TestProvenanceRuleErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"keyring: [system, platform]", `match.keyring: unknown keyring kind "platform"`},
		{"signed: yes please", "match.signed: want true or false"},
		{"token: {userns: [0]}", "match.token.userns: a user namespace inode is never 0"},
		{"token: {creator: {comm: [x]}}", `match.token.creator.comm: unknown key`},
		{"token: {owner: 1}", `match.token.owner: unknown key`},
		{"keyring: []", "match.keyring: empty list"},
	} {
		_, err := Parse("bad.yaml", []byte("- id: x\n  description: d\n  severity: low\n  action: alert\n  match:\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}

// docs/PROVENANCE.md's policy parses and is enforced in the kernel.
func TestProvenanceDocPolicyIsEnforceable(t *testing.T) {
	doc, err := os.ReadFile(testutils.Root() + "/docs/PROVENANCE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/PROVENANCE.md has no yaml block")
	}
	set, err := Parse("PROVENANCE.md", []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(set.Rules))
	}
	if ok, why := Enforceable(set.Rules[0]); !ok {
		t.Errorf("the documented policy is not enforceable in the kernel: %s", why)
	}
	unsigned := provProg(1, nil)
	if v := Evaluate(set, unsigned, analysis.Analyze(unsigned, nil)); v.Action != ActionBlock {
		t.Errorf("an unsigned program: %v, want block", v.Action)
	}
	system := provProg(1, &program.Provenance{Signed: true, Keyring: program.KeyringSystem})
	if v := Evaluate(set, system, analysis.Analyze(system, nil)); v.Action == ActionBlock {
		t.Error("a system-keyring program is blocked")
	}
}
