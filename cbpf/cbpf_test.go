package cbpf

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// expressions exercise every instruction class tcpdump's compiler emits:
// loads of each size and mode, the scratch memory, arithmetic, every jump.
var expressions = []string{
	"tcp port 80", "udp", "icmp", "arp", "ip host 10.1.2.3", "net 192.168.0.0/16",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "ip[2:2] > 576", "len > 1000", "len <= 64",
	"greater 100", "less 60", "ip6 and tcp dst port 443", "portrange 1000-2000",
	"ether host 01:02:03:04:05:06", "vlan 100 and tcp", "ip proto 47",
	"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "udp[8:4] = 0x5a5a5a5a",
	"ip[0] & 0xf != 5", "tcp[13] & 2 != 0", "ip[6:2] & 0x1fff = 0", "icmp[icmptype] != icmp-echo",
	"(tcp port 22 or udp port 53) and not host 10.0.0.1", "ip and ip[8] < 5", "ip[1] * 4 > 20",
	"ip[3] - 1 = 0", "ip[4] / 2 = 1", "ip[5] % 3 = 1", "ip[5] ^ 0xff = 0", "ip[5] | 1 = 1", "ip[5] << 2 = 4",
	"ether broadcast", "ether multicast", "ip multicast", "src port 1234 and dst port 5678",
	"udp port 53 and udp[10] & 0x80 = 0", "inbound", "outbound and tcp", "ifindex 1", "ip6[6] = 17", "tcp and (tcp[20:2] = 0x5253 or tcp[20:4] = 0x72557374)",
}

func TestDisassemblyMatchesTcpdump(t *testing.T) {
	testutils.RequireRoot(t, "tcpdump -d on the loopback interface")
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testutils.SkipOrFail(t, "tcpdump not installed (scripts/deps.sh installs it)")
	}
	for _, expr := range expressions {
		t.Run(expr, func(t *testing.T) {
			ddd, err := exec.Command("tcpdump", "-ddd", "-i", "lo", expr).Output()
			if err != nil {
				t.Fatalf("tcpdump -ddd: %v", err)
			}
			want, err := exec.Command("tcpdump", "-d", "-i", "lo", expr).Output()
			if err != nil {
				t.Fatalf("tcpdump -d: %v", err)
			}
			ins, err := ParseDDD(bytes.NewReader(ddd))
			if err != nil {
				t.Fatal(err)
			}
			// Through the kernel's byte layout, as the setsockopt hook sees it.
			raw := Encode(ins)
			back, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got := Disassemble(back); got != string(want) {
				t.Errorf("ours:\n%s\ntcpdump -d:\n%s", got, want)
			}
		})
	}
}

func TestDecodeRejectsBadPrograms(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"a length that is not a multiple of 8", make([]byte, 12), "not a whole number"},
		{"no instruction at all", nil, "empty program"},
		{"more than 4,096 instructions", make([]byte, 8*4097), "at most 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.raw); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
