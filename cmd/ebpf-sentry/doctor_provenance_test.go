package main

import (
	"encoding/json"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// doctor's provenance lines agree with the kernel's version: signature
// fields from 6.18, tokens from 6.9.
func TestDoctorReportsSigningAndTokens(t *testing.T) {
	testutils.RequireRoot(t, "doctor's probes")
	out, _, code := runCLI(t, nil, "doctor", "--json")
	if code != 0 && code != exitEnvironment {
		t.Fatalf("doctor exit %d: %s", code, out)
	}
	var v struct {
		Provenance struct {
			Signing struct {
				Fields, Verifies bool
				How              string
			}
			Tokens        bool
			BPFKeyring    bool   `json:"bpf_keyring"`
			BPFKeyringHow string `json:"bpf_keyring_how"`
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	kv := testutils.KernelVersion(t)
	p := v.Provenance
	if want := kv.AtLeast(testutils.Version{Major: 6, Minor: 18}); p.Signing.Fields != want {
		t.Errorf("kernel %s: signature fields %v (%s), want %v", kv, p.Signing.Fields, p.Signing.How, want)
	}
	if want := kv.AtLeast(testutils.Version{Major: 6, Minor: 9}); p.Tokens != want {
		t.Errorf("kernel %s: tokens %v, want %v", kv, p.Tokens, want)
	}
	if p.Signing.Verifies && !p.Signing.Fields {
		t.Error("verifies signatures without the signature fields")
	}
	if p.BPFKeyringHow == "" || p.Signing.How == "" {
		t.Errorf("doctor does not say how it determined signing (%q) or the keyring (%q)", p.Signing.How, p.BPFKeyringHow)
	}
}
