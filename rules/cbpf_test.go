package rules

import (
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestCbpfRulesJudgeFiltersAndNeverPrograms(t *testing.T) {
	set := mustParse(t, `
- id: door-magic
  severity: high
  action: block
  match:
    cbpf: {socket: [packet, raw], magic: [0x7255, 0x5293]}
    not: {loader: {exe: [/usr/sbin/tcpdump]}}
- id: dns-filter
  severity: info
  action: alert
  match:
    cbpf: {ports: [53], magic_any: false, option: [SO_ATTACH_FILTER]}
- id: a-program-rule
  severity: low
  action: alert
  match:
    loader: {uid: [0]}
`)
	door := &Cbpf{Option: "SO_ATTACH_FILTER", Socket: "packet", Ports: []uint32{22}, Magic: []uint32{0x7255}}
	root := &program.Loader{UID: 0, Exe: "/tmp/door"}
	tests := []struct {
		name   string
		f      *Cbpf
		loader *program.Loader
		want   []string
	}{
		{"a magic-packet filter on a packet socket is blocked", door, root, []string{"door-magic"}},
		{"the same filter from tcpdump is spared by the exception", door, &program.Loader{Exe: "/usr/sbin/tcpdump"}, nil},
		{"a magic value the rule does not list does not match", &Cbpf{Option: "SO_ATTACH_FILTER", Socket: "packet", Magic: []uint32{1}}, root, nil},
		{"the socket type must be listed", &Cbpf{Option: "SO_ATTACH_FILTER", Socket: "other", Magic: []uint32{0x7255}}, root, nil},
		{"a port filter without magic matches the port rule", &Cbpf{Option: "SO_ATTACH_FILTER", Socket: "other", Ports: []uint32{80, 53}}, root, []string{"dns-filter"}},
		{"the option must be listed", &Cbpf{Option: "SO_ATTACH_REUSEPORT_CBPF", Ports: []uint32{53}}, root, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := EvaluateCbpf(set, tt.f, tt.loader)
			var got []string
			for _, h := range v.Hits {
				got = append(got, h.ID)
				if h.ID == "a-program-rule" {
					t.Errorf("a program rule judged a filter")
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("hits %v, want %v (%+v)", got, tt.want, v)
			}
		})
	}
	// A filter rule never matches a program, even one with every fact.
	prog, rep := sampleInput()
	for _, h := range Evaluate(set, prog, rep).Hits {
		if h.ID != "a-program-rule" {
			t.Errorf("cbpf rule %s matched a program", h.ID)
		}
	}
	if ok, why := Enforceable(set.Rules[0]); ok || !strings.Contains(why, "cbpf") {
		t.Errorf("a cbpf rule went to the kernel table (%v, %q)", ok, why)
	}
}

func TestCbpfRuleErrorsNameTheField(t *testing.T) {
	for _, tt := range []struct{ match, want string }{
		{"cbpf: {ports: [70000]}", "match.cbpf.ports"},
		{"cbpf: {socket: [tcp]}", `unknown value "tcp"`},
		{"cbpf: {}", "empty cbpf match"},
		{"cbpf: {magc: [1]}", "magc"},
		{"cbpf: {magic_any: maybe}", "match.cbpf.magic_any"},
	} {
		_, err := Parse("r.yaml", []byte("- id: r\n  severity: low\n  action: alert\n  match:\n    "+tt.match+"\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one naming %q", tt.match, err, tt.want)
		}
	}
}
