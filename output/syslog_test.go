package output

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	bin, conf        string
	cmd              *exec.Cmd
	stderr           bytes.Buffer
}

// start runs rsyslogd and waits until its TCP port and unix socket accept.
func (r *rsyslog) start(t *testing.T) {
	t.Helper()
	_ = os.Remove(r.sock)
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslog.pid"))
	r.cmd.Stdout, r.cmd.Stderr = &r.stderr, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", r.tcpAddr)
		_, serr := os.Stat(r.sock)
		if err == nil {
			c.Close()
			if serr == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not start listening: %v / %v\n%s", err, serr, r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the rsyslogd this test started (by its pid) and waits for it.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
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
input(type="imuxsock" Socket="` + r.sock + `" ruleset="unix")
`
	r.conf = filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.bin = bin
	r.start(t)
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", r.stderr.String())
		}
	})
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
				if tt.input == "unix" {
					// syslog(3)'s form (no hostname, version or msgid), as
					// a real /dev/log reader parses it by default.
					f[6] = strings.TrimPrefix(f[6], " ")
				}
				if f[6] != string(sent[i]) {
					t.Fatalf("event %d arrived altered:\n got %.300s\nwant %.300s", i, f[6], sent[i])
				}
				kind := capture.recs[i].Kind
				wantPri := fmt.Sprint(10*8 + int(capture.recs[i].Severity))
				if tt.input == "unix" {
					if f[0] != wantPri || f[1] == "" || f[1] == "sentry-host" || f[2] != "ebpf-sentry" || f[3] != pid {
						t.Errorf("event %d header = %q, want pri %s, the receiver's host name, app ebpf-sentry (not the RFC 5424 version) pid %s", i, f[:6], wantPri, pid)
					}
					continue
				}
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

func TestSyslogTCPReceiverRestartLosesNothingUncounted(t *testing.T) {
	rs := startRsyslog(t)
	sink, err := NewSyslogSink(SyslogOptions{Network: "tcp", Addr: rs.tcpAddr})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{BatchMax: 1})
	emitted := 0
	emit := func(n int) {
		for range n {
			p.Emit(RulesReloaded(Rules{Source: "embedded", Count: emitted}))
			emitted++
			time.Sleep(5 * time.Millisecond)
		}
	}
	emit(10)
	if got := rs.waitLines("tcp", 10); len(got) != 10 {
		t.Fatalf("rsyslog got %d of the first 10 events", len(got))
	}
	rs.stop()
	emit(10) // receiver gone: each must be counted, none "sent" into a dead connection
	rs.start(t)
	// Keep emitting until the sink's redial backoff expires and events flow again.
	deadline := time.Now().Add(20 * time.Second)
	for p.Delivered()[sink.Name()] < 15 && time.Now().Before(deadline) {
		emit(1)
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	delivered := p.Delivered()[sink.Name()]
	var lost uint64
	for _, l := range p.LossTotals() {
		lost += l.Total
	}
	got := rs.waitLines("tcp", int(delivered))
	if delivered < 15 {
		t.Fatalf("only %d delivered after the receiver came back", delivered)
	}
	if lost < 10 {
		t.Errorf("%d losses counted while the receiver was down for 10 events: %+v", lost, p.LossTotals())
	}
	// TCP resends a failed batch once on a new connection, so rsyslog may
	// hold a duplicate, but every delivered event must be there and every
	// other one counted.
	if uint64(len(got)) < delivered {
		t.Errorf("rsyslog holds %d events, the sink claims %d delivered", len(got), delivered)
	}
	// Close emitted one more event: the final loss report.
	if delivered+lost != uint64(emitted)+1 {
		t.Errorf("delivered %d + lost %d != emitted %d + 1 loss report", delivered, lost, emitted)
	}
}

func TestAnOversizedSyslogMessageIsCountedNotCut(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run("over "+network+" the big event is lost as too_large and the small ones arrive", func(t *testing.T) {
			var addr string
			got := make(chan []byte, 100)
			if network == "udp" {
				c, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				addr = c.LocalAddr().String()
				go func() {
					buf := make([]byte, 1<<16)
					for {
						n, _, err := c.ReadFrom(buf)
						if err != nil {
							return
						}
						got <- append([]byte(nil), buf[:n]...)
					}
				}()
			} else {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				addr = l.Addr().String()
				go func() {
					c, err := l.Accept()
					if err != nil {
						return
					}
					b, _ := io.ReadAll(c)
					got <- b
				}()
			}
			sink, err := NewSyslogSink(SyslogOptions{Network: network, Addr: addr, MaxMessage: 2000})
			if err != nil {
				t.Fatal(err)
			}
			p := NewPipeline(Config{LossInterval: -1})
			p.Add(sink, QueueOptions{})
			p.Emit(SensorStarted(Sensor{Guarantee: "small"}))
			p.Emit(SensorStarted(Sensor{Guarantee: strings.Repeat("x", 5000)}))
			p.Emit(SensorStarted(Sensor{Guarantee: "small too"}))
			p.Close(context.Background())
			if lost := lossOf(p, StageSink, sink.Name(), "too_large"); lost != 1 {
				t.Errorf("too_large = %d, want 1: %+v", lost, p.LossTotals())
			}
			var all []byte
			timeout := time.After(5 * time.Second)
			for !bytes.Contains(all, []byte("small too")) {
				select {
				case b := <-got:
					all = append(all, b...)
				case <-timeout:
					t.Fatalf("small events did not arrive: %q", all)
				}
			}
			if !bytes.Contains(all, []byte(`"small"`)) || bytes.Contains(all, []byte("xxxx")) {
				t.Errorf("received %q", all)
			}
		})
	}
}
