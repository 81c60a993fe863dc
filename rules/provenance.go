package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// KeyringNone is the keyring kind of an unsigned load in rules.
const KeyringNone = "none"

// ProvenanceMatch is about where a load comes from (docs/PROVENANCE.md):
// its signature and its BPF token. Each present field must hold.
type ProvenanceMatch struct {
	Signed   *bool    // attr carries a signature
	Keyring  []string // any of: none (unsigned), system, bpf, user, session
	Verified *bool    // the kernel is known to have accepted the signature
	ViaToken *bool    // loaded through a BPF token
	// TokenUserNS: the token's user namespace inode is one of these.
	TokenUserNS []uint64
	// TokenCreatorExe: the token's creator executable matches one of these.
	TokenCreatorExe []Glob
}

// provenanceKeys are the match keys this file parses.
var provenanceKeys = []string{"signed", "keyring", "verified", "via_token", "token"}

// parseProvenanceKey parses one provenance match key into m; handled is
// false for other keys.
func (d *decoder) parseProvenanceKey(e entry, f string, m *Match) (handled, ok bool) {
	if !slices.Contains(provenanceKeys, e.key) {
		return false, false
	}
	if m.Prov == nil {
		m.Prov = &ProvenanceMatch{}
	}
	p := m.Prov
	switch e.key {
	case "signed", "verified", "via_token":
		var b bool
		if b, ok = d.boolean(e.value, f); !ok {
			return true, false
		}
		switch e.key {
		case "signed":
			p.Signed = &b
		case "verified":
			p.Verified = &b
		default:
			p.ViaToken = &b
		}
		return true, true
	case "keyring":
		items, ok := d.list(e.value, f, true)
		if !ok {
			return true, false
		}
		valid := append([]string{KeyringNone}, program.KeyringKinds...)
		for _, it := range items {
			s, sok := d.str(it, f)
			if !sok {
				return true, false
			}
			if !slices.Contains(valid, s) {
				d.errorf(it, f, "unknown keyring kind %q; valid: %s", s, strings.Join(valid, ", "))
				return true, false
			}
			if !slices.Contains(p.Keyring, s) {
				p.Keyring = append(p.Keyring, s)
			}
		}
		if len(p.Keyring) == 0 {
			d.errorf(e.value, f, "empty list: nothing could match")
			return true, false
		}
		return true, true
	}
	// token: {userns: [...], creator: {exe: [...]}}
	entries, ok := d.mapping(e.value, f)
	if !ok {
		return true, false
	}
	good := len(entries) > 0
	if !good {
		d.errorf(e.value, f, "empty token match")
	}
	for _, te := range entries {
		tf := join(f, te.key)
		switch te.key {
		case "userns":
			items, lok := d.list(te.value, tf, true)
			if !lok {
				good = false
				continue
			}
			for _, it := range items {
				u, uok := d.uint(it, tf, math.MaxUint64)
				if !uok || u == 0 {
					if uok {
						d.errorf(it, tf, "a user namespace inode is never 0")
					}
					good = false
					continue
				}
				p.TokenUserNS = append(p.TokenUserNS, u)
			}
		case "creator":
			ces, mok := d.mapping(te.value, tf)
			if !mok {
				good = false
				continue
			}
			for _, ce := range ces {
				cf := join(tf, ce.key)
				if ce.key != "exe" {
					d.unknownKey(ce, tf, []string{"exe"})
					good = false
					continue
				}
				items, lok := d.list(ce.value, cf, true)
				if !lok {
					good = false
					continue
				}
				for _, it := range items {
					g, gok := d.glob(it, cf)
					if !gok {
						good = false
						continue
					}
					p.TokenCreatorExe = append(p.TokenCreatorExe, g)
				}
			}
		default:
			d.unknownKey(te, f, []string{"userns", "creator"})
			good = false
		}
	}
	return true, good
}

// keyringOf is the keyring kind of a load for rules: none when unsigned.
func keyringOf(p *program.Provenance) string {
	if p == nil || !p.Signed {
		return KeyringNone
	}
	return p.Keyring
}

func (pm *ProvenanceMatch) eval(p *program.Provenance) ([]Reason, bool) {
	var why []Reason
	if pm.Signed != nil {
		signed := p != nil && p.Signed
		if signed != *pm.Signed {
			return nil, false
		}
		why = append(why, Reason{Predicate: "signed", Detail: fmt.Sprintf("signed=%v", signed)})
	}
	if len(pm.Keyring) > 0 {
		k := keyringOf(p)
		if !slices.Contains(pm.Keyring, k) {
			return nil, false
		}
		d := "unsigned"
		if k != KeyringNone {
			d = fmt.Sprintf("keyring %s (id %d)", k, p.KeyringID)
		}
		why = append(why, Reason{Predicate: "keyring", Detail: d})
	}
	if pm.Verified != nil {
		v := p.Verified()
		if v != *pm.Verified {
			return nil, false
		}
		d := "signature verified by the kernel"
		if !v {
			d = "no signature the kernel is known to have verified"
			if p != nil && p.Verification != "" {
				d += " (" + p.Verification + ")"
			}
		}
		why = append(why, Reason{Predicate: "verified", Detail: d})
	}
	if pm.ViaToken != nil {
		t := p != nil && p.ViaToken
		if t != *pm.ViaToken {
			return nil, false
		}
		why = append(why, Reason{Predicate: "via_token", Detail: fmt.Sprintf("via_token=%v", t)})
	}
	var tok *program.Token
	if p != nil {
		tok = p.Token
	}
	if len(pm.TokenUserNS) > 0 {
		if tok == nil || tok.UserNS == 0 || !slices.Contains(pm.TokenUserNS, tok.UserNS) {
			return nil, false
		}
		why = append(why, Reason{Predicate: "token.userns", Detail: fmt.Sprintf("user namespace %d", tok.UserNS)})
	}
	if len(pm.TokenCreatorExe) > 0 {
		if tok == nil || tok.Creator == nil || tok.Creator.Exe == "" {
			return nil, false
		}
		g, ok := anyGlob(pm.TokenCreatorExe, tok.Creator.Exe)
		if !ok {
			return nil, false
		}
		why = append(why, Reason{Predicate: "token.creator.exe", Detail: fmt.Sprintf("%q matches %q", tok.Creator.Exe, g)})
	}
	return why, true
}

func (pm *ProvenanceMatch) describe() []string {
	var parts []string
	if pm.Signed != nil {
		parts = append(parts, fmt.Sprintf("signed=%v", *pm.Signed))
	}
	if len(pm.Keyring) > 0 {
		parts = append(parts, "keyring "+strings.Join(pm.Keyring, ","))
	}
	if pm.Verified != nil {
		parts = append(parts, fmt.Sprintf("verified=%v", *pm.Verified))
	}
	if pm.ViaToken != nil {
		parts = append(parts, fmt.Sprintf("via_token=%v", *pm.ViaToken))
	}
	if len(pm.TokenUserNS) > 0 {
		parts = append(parts, fmt.Sprintf("token.userns %v", pm.TokenUserNS))
	}
	if len(pm.TokenCreatorExe) > 0 {
		parts = append(parts, "token.creator.exe "+strings.Join(globStrings(pm.TokenCreatorExe), ","))
	}
	return parts
}

// userOnly names what the kernel cannot evaluate: the verification result
// (known only after the load on the syscall hooks) and the token's origin
// (resolved in user space).
func (pm *ProvenanceMatch) userOnly() []string {
	var out []string
	if pm.Verified != nil {
		out = append(out, "verified (the outcome is known after the load)")
	}
	if len(pm.TokenUserNS)+len(pm.TokenCreatorExe) > 0 {
		out = append(out, "token.userns/token.creator (resolved in user space)")
	}
	return out
}

var keyringBits = map[string]uint32{
	KeyringNone:            uint32(kernel.ProvKeyringNone),
	program.KeyringSystem:  uint32(kernel.ProvKeyringSystem),
	program.KeyringBPF:     uint32(kernel.ProvKeyringBPF),
	program.KeyringUser:    uint32(kernel.ProvKeyringUser),
	program.KeyringSession: uint32(kernel.ProvKeyringSession),
}

// compileProv puts signed, keyring and via_token into kr.
func (pm *ProvenanceMatch) compile(kr *kernel.Rule) {
	bit := func(b *bool, v uint32) {
		switch {
		case b == nil:
		case *b:
			kr.ProvSet |= v
		default:
			kr.ProvClear |= v
		}
	}
	bit(pm.Signed, uint32(kernel.ProvSigned))
	bit(pm.ViaToken, uint32(kernel.ProvToken))
	for _, k := range pm.Keyring {
		kr.ProvAny |= keyringBits[k]
	}
}

// ProvFacts is facts.prov for p (rules_prov bits), as the kernel computes it
// at load time on the syscall hooks (without the verified bit, which only
// lsm/bpf_prog_load knows).
func ProvFacts(p *program.Provenance) uint32 {
	var v uint32
	if p != nil && p.ViaToken {
		v |= uint32(kernel.ProvToken)
	}
	if p == nil || !p.Signed {
		return v | uint32(kernel.ProvKeyringNone)
	}
	return v | uint32(kernel.ProvSigned) | keyringBits[p.Keyring]
}
