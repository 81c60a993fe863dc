//go:build linux && amd64

package main

import (
	"errors"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// An attach of a program the kernel says was loaded through a token
// carries the token's origin in its event and in the facts the rules see,
// also when the program's load was not seen (its facts unknown).
func TestAttachOfATokenLoadedProgramNamesTheToken(t *testing.T) {
	set, err := rules.Parse("token-attach.yaml", []byte(`
- id: attach-through-runc-token
  description: an attach of a program loaded through a token runc created
  severity: high
  action: alert
  match:
    via_token: true
    token: {userns: [4026532871], creator: {exe: ["/usr/bin/runc"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tok := &program.Token{UserNS: 4026532871, Creator: &program.TokenCreator{PID: 9, Exe: "/usr/bin/runc", Comm: "runc"}}
	for _, tc := range []struct {
		name     string
		viaToken bool
		hit      bool
	}{
		{"through a token", true, true},
		{"without a token", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newAttachJudge()
			j.fetch = func(uint32) (*program.Program, error) { return nil, errors.New("not loaded") }
			ev := &sensor.AttachEvent{Op: sensor.OpLinkCreate, ProgID: 42, ProgType: 2, Result: sensor.AttachFailed, Errno: 9,
				Caller: &program.Loader{PID: 10, TID: 10, Comm: "bpfload"}}
			if tc.viaToken {
				ev.ViaToken, ev.Token = true, tok
			}
			jd := j.judge(set, ev)
			if got := len(jd.verdict.Hits) == 1 && jd.verdict.Hits[0].ID == "attach-through-runc-token"; got != tc.hit {
				t.Fatalf("rule hit %v (hits %+v), want %v", got, jd.verdict.Hits, tc.hit)
			}
			out := attachEvent(ev, jd)
			p := out.Provenance
			if !tc.viaToken {
				if p != nil && p.ViaToken {
					t.Fatalf("provenance %+v for a program loaded without a token", p)
				}
				return
			}
			if p == nil || !p.ViaToken || p.Token == nil || p.Token.UserNS != tok.UserNS || p.Token.Creator == nil || p.Token.Creator.Exe != "/usr/bin/runc" {
				t.Fatalf("prog_attach provenance %+v, want the token's origin", p)
			}
		})
	}
}
