package cbpf

import (
	"bytes"
	"os/exec"
	"slices"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

func tcpdumpFilter(t *testing.T, expr string) []Instruction {
	t.Helper()
	testutils.RequireRoot(t, "tcpdump -ddd on the loopback interface")
	ddd, err := exec.Command("tcpdump", "-ddd", "-i", "lo", expr).Output()
	if err != nil {
		t.Fatalf("tcpdump -ddd %q: %v", expr, err)
	}
	ins, err := ParseDDD(bytes.NewReader(ddd))
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

func TestAnalyzeFindsPortsAndNoMagicInOrdinaryFilters(t *testing.T) {
	tests := []struct {
		expr  string
		ports []uint32
	}{
		{"tcp port 80", []uint32{80}},
		{"udp port 53 or tcp port 22", []uint32{53, 22}},
		{"host 10.1.2.3 and not port 443", []uint32{443}},
		{"icmp or arp", nil},
		{"tcp[tcpflags] & tcp-syn != 0", nil},
		{"net 192.168.0.0/16 and len > 100", nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			a := Analyze(tcpdumpFilter(t, tt.expr))
			if len(a.Magic) != 0 {
				t.Errorf("magic %+v in an ordinary filter", a.Magic)
			}
			for _, p := range tt.ports {
				if !slices.Contains(a.Ports, p) {
					t.Errorf("ports %v lack %d", a.Ports, p)
				}
			}
			if !a.Accepts {
				t.Error("a capture filter accepts packets")
			}
		})
	}
}

// TestAnalyzeFlagsMagicPacketFilters: BPFDoor-style filters accept a packet
// only when bytes past the transport header hold a magic value.
func TestAnalyzeFlagsMagicPacketFilters(t *testing.T) {
	// Hand-written, in the shape of BPFDoor's: IPv4 UDP whose first two
	// payload bytes are 0x7255.
	bpfdoor := []Instruction{
		{0x28, 0, 0, 12}, {0x15, 0, 6, 0x800}, // ldh [12]; jeq #0x800
		{0x30, 0, 0, 23}, {0x15, 0, 4, 17}, // ldb [23]; jeq #17 (udp)
		{0xb1, 0, 0, 14},                       // ldxb 4*([14]&0xf)
		{0x48, 0, 0, 22}, {0x15, 0, 1, 0x7255}, // ldh [x + 22]; jeq #0x7255
		{0x06, 0, 0, 0xffff}, {0x06, 0, 0, 0}, // ret #65535; ret #0
	}
	a := Analyze(bpfdoor)
	if len(a.Magic) != 1 || a.Magic[0].Value != 0x7255 || a.Magic[0].Load != "[x + 22]" {
		t.Errorf("magic %+v, want 0x7255 at [x + 22]", a.Magic)
	}
	for _, expr := range []string{"udp[8:2] = 0x7255", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x5293abcd", "icmp[8:4] = 0x12345678"} {
		t.Run(expr, func(t *testing.T) {
			a := Analyze(tcpdumpFilter(t, expr))
			if len(a.Magic) == 0 {
				t.Errorf("no magic found; compares %+v", a.Compares)
			}
		})
	}
}
