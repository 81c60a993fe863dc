package output

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// rsyslog is an rsyslogd started for one test with its own configuration:
// listening on loopback UDP and TCP ports and a unix socket in a temp
// directory, writing what each input receives to its own file as
// "PRI|HOSTNAME|APP-NAME|PROCID|MSGID|SD|MSG". Nothing system-wide is touched.
type rsyslog struct {
	dir              string
	udpAddr, tcpAddr string
	sock             string
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	default:
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		testutils.SkipOrFail(t, "rsyslogd not installed (scripts/deps.sh installs it)")
	}
	testutils.RequireRoot(t, "running rsyslogd")
	dir := t.TempDir()
	r := &rsyslog{
		dir:     dir,
		udpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")),
		tcpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")),
		sock:    filepath.Join(dir, "log.sock"),
	}
	udpPort := r.udpAddr[strings.LastIndexByte(r.udpAddr, ':')+1:]
	tcpPort := r.tcpAddr[strings.LastIndexByte(r.tcpAddr, ':')+1:]
	conf := `global(workDirectory="` + dir + `" maxMessageSize="512k")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
template(name="fields" type="string" string="%pri%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
ruleset(name="udp") { action(type="omfile" file="` + dir + `/udp.log" template="fields") }
ruleset(name="tcp") { action(type="omfile" file="` + dir + `/tcp.log" template="fields") }
ruleset(name="unix") { action(type="omfile" file="` + dir + `/unix.log" template="fields") }
input(type="imudp" address="127.0.0.1" port="` + udpPort + `" ruleset="udp" rcvbufSize="16m")
input(type="imtcp" address="127.0.0.1" port="` + tcpPort + `" ruleset="tcp")
input(type="imuxsock" Socket="` + r.sock + `" ruleset="unix" UseSysTimeStamp="off" UseSpecialParser="off" ParseHostname="on")
`
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslog.pid"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.tcpAddr)
		_, serr := os.Stat(r.sock)
		if err == nil {
			c.Close()
			if serr == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not start listening: %v / %v\n%s", err, serr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// lines returns what rsyslog wrote for one input so far.
func (r *rsyslog) lines(input string) []string {
	b, _ := os.ReadFile(filepath.Join(r.dir, input+".log"))
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitLines polls until want lines arrived or the deadline passes.
func (r *rsyslog) waitLines(input string, want int) []string {
	deadline := time.Now().Add(15 * time.Second)
	for {
		l := r.lines(input)
		if len(l) >= want || time.Now().After(deadline) {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSyslogDeliversEveryEventIntactToRsyslog(t *testing.T) {
	rs := startRsyslog(t)
	tests := []struct {
		name, network, addr, input string
	}{
		{"over UDP, one datagram per event", "udp", rs.udpAddr, "udp"},
		{"over TCP with octet-counting framing", "tcp", rs.tcpAddr, "tcp"},
		{"over a unix datagram socket", "unixgram", rs.sock, "unix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, err := NewSyslogSink(SyslogOptions{Network: tt.network, Addr: tt.addr, Hostname: "sentry-host", Facility: 10})
			if err != nil {
				t.Fatal(err)
			}
			p := NewPipeline(Config{Host: "h", LossInterval: -1})
			var sent [][]byte
			capture := &memSink{name: "capture"}
			p.Add(sink, QueueOptions{Size: 1000, BatchMax: 16})
			p.Add(capture, QueueOptions{Size: 1000})
			full := everyEvent()
			for range 10 {
				for _, ev := range full {
					cp := *ev
					p.Emit(&cp)
				}
			}
			// A prog_load with 2,000 instructions in both forms: ~60 KiB,
			// which still fits one UDP datagram.
			big := NewProgLoad(ProgLoad{Program: sampleProgram(2000), Report: sampleReport(), Disasm: disasmLines(2000)}, InsnOptions{Mode: InsnModeBoth})
			p.Emit(big)
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if l := p.LossTotals(); len(l) != 0 {
				t.Fatalf("losses: %+v", l)
			}
			for _, r := range capture.recs {
				sent = append(sent, r.JSON)
			}
			if len(big.Prog.Name) == 0 || len(sent[len(sent)-1]) < 40<<10 {
				t.Fatalf("the big event is only %d bytes", len(sent[len(sent)-1]))
			}
			got := rs.waitLines(tt.input, len(sent))
			if len(got) != len(sent) {
				t.Fatalf("rsyslog received %d of %d events", len(got), len(sent))
			}
			pid := fmt.Sprint(os.Getpid())
			for i, line := range got {
				f := strings.SplitN(line, "|", 7)
				if len(f) != 7 {
					t.Fatalf("line %d: %q", i, line)
				}
				// UDP may reorder in principle; on loopback it does not, and
				// TCP and unix sockets keep order.
				if f[6] != string(sent[i]) {
					t.Fatalf("event %d arrived altered:\n got %.300s\nwant %.300s", i, f[6], sent[i])
				}
				kind := capture.recs[i].Kind
				wantPri := fmt.Sprint(10*8 + int(capture.recs[i].Severity))
				if f[0] != wantPri || f[1] != "sentry-host" || f[2] != "ebpf-sentry" || f[3] != pid || f[4] != string(kind) || f[5] != "-" {
					t.Errorf("event %d header = %q, want pri %s host sentry-host app ebpf-sentry pid %s msgid %s sd -", i, f[:6], wantPri, pid, kind)
				}
			}
		})
	}
}

func TestSyslogToAnAbsentReceiverCountsLossesAndKeepsGoing(t *testing.T) {
	closedTCP := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	closedUDP := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	tests := []struct {
		name, network, addr string
		reasons             []string
	}{
		{"a TCP port nobody listens on refuses", "tcp", closedTCP, []string{"refused"}},
		{"a UDP port nobody listens on refuses (ICMP port unreachable)", "udp", closedUDP, []string{"refused"}},
		{"a missing unix socket is unreachable", "unixgram", filepath.Join(t.TempDir(), "nope.sock"), []string{"unreachable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, err := NewSyslogSink(SyslogOptions{Network: tt.network, Addr: tt.addr})
			if err != nil {
				t.Fatal(err)
			}
			p := NewPipeline(Config{LossInterval: -1})
			p.Add(sink, QueueOptions{Size: 100, BatchMax: 1})
			const n = 20
			for range n {
				p.Emit(SensorStarted(Sensor{}))
				time.Sleep(2 * time.Millisecond) // let UDP see the ICMP error of the previous datagram
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			var lost uint64
			for _, r := range tt.reasons {
				lost += lossOf(p, StageSink, sink.Name(), r)
			}
			delivered := p.Delivered()[sink.Name()]
			// UDP "delivers" the first datagram: the refusal only shows on the next send.
			if lost < n-2 || lost+delivered < n {
				t.Errorf("lost %d (%v), delivered %d of %d; all losses: %+v", lost, tt.reasons, delivered, n, p.LossTotals())
			}
		})
	}
}

func TestSyslogMessageFormat(t *testing.T) {
	s, err := NewSyslogSink(SyslogOptions{Network: "udp", Addr: "127.0.0.1:1", Hostname: "my host\n", AppName: "app", Facility: 16})
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Kind: KindLoss, Severity: SevWarning, Time: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600)), JSON: []byte(`{"a":1}`)}
	got := string(s.appendMessage(nil, r))
	// RFC 5424: PRI = 16*8+4; timestamp in UTC with at most 6 fractional
	// digits; the hostname may not contain spaces.
	want := fmt.Sprintf("<132>1 2026-01-02T02:04:05.678901Z myhost app %d loss - {\"a\":1}", os.Getpid())
	if got != want {
		t.Errorf("message =\n%q\nwant\n%q", got, want)
	}
}

func TestSyslogOptionsAreChecked(t *testing.T) {
	tests := []struct {
		name string
		opt  SyslogOptions
	}{
		{"an unknown network", SyslogOptions{Network: "sctp", Addr: "x:1"}},
		{"an empty address", SyslogOptions{Network: "udp"}},
		{"a facility past local7", SyslogOptions{Network: "udp", Addr: "x:1", Facility: 24}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := NewSyslogSink(tt.opt); err == nil {
				t.Error("accepted")
			}
		})
	}
}
