//go:build linux && amd64

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/cbpf"
	"github.com/ebpf-sentry/ebpf-sentry/cbpf/capture"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// TestHelperMagicFilter is not a test: run with SENTRY_HELPER=door it opens
// a packet socket, attaches a BPFDoor-shaped filter (IPv4 UDP whose payload
// starts with 0x7255), says "attached" and waits for stdin to close.
func TestHelperMagicFilter(t *testing.T) {
	if os.Getenv("SENTRY_HELPER") != "door" {
		t.Skip("helper process only")
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP)))
	if err != nil {
		fmt.Println("socket:", err)
		os.Exit(1)
	}
	raw := cbpf.Encode([]cbpf.Instruction{
		{Code: 0x28, K: 12}, {Code: 0x15, Jf: 6, K: 0x800}, {Code: 0x30, K: 23}, {Code: 0x15, Jf: 4, K: 17},
		{Code: 0xb1, K: 14}, {Code: 0x48, K: 22}, {Code: 0x15, Jf: 1, K: 0x7255}, {Code: 0x06, K: 0xffff}, {Code: 0x06},
	})
	prog := unix.SockFprog{Len: uint16(len(raw) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		fmt.Println("attach:", err)
		os.Exit(1)
	}
	runtime.KeepAlive(raw)
	fmt.Println("attached")
	bufio.NewReader(os.Stdin).ReadByte()
	os.Exit(0)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestRunKillsAMagicPacketFilterAndSparesTcpdump: with run in enforce mode,
// a process that filters a packet socket on a magic value is killed; tcpdump
// (a known packet tool, by exe identity) attaching a magic-value filter is
// reported and spared; an ordinary tcpdump filter is not flagged.
func TestRunKillsAMagicPacketFilterAndSparesTcpdump(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		testutils.SkipOrFail(t, "tcpdump not installed")
	}
	dir := t.TempDir()
	bin := goBuild(t, ".", "ebpf-sentry")
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, []byte(residentBlockRule), 0o600)
	run := exec.Command(bin, "run", "--rules", rulesPath, "--lock-file", filepath.Join(dir, "lock"), "--ring-size", "8",
		"--rules-poll", "0", "--reconcile", "0")
	var stdout, stderr syncBuffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	waitFor(t, "start", &stderr, "classic BPF capture running")

	door := exec.Command(os.Args[0], "-test.run=^TestHelperMagicFilter$")
	door.Env = append(os.Environ(), "SENTRY_HELPER=door")
	stdin, _ := door.StdinPipe()
	out, _ := door.StdoutPipe()
	if err := door.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); door.Process.Kill(); door.Wait() })
	// The kill may land before the helper says "attached": nothing then.
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "" && !strings.HasPrefix(line, "attached") {
		t.Fatalf("helper: %q", line)
	}
	want := fmt.Sprintf("cbpf_attach loader=%q pid=%d", "ebpf-sentry.tes", door.Process.Pid)
	waitFor(t, "the magic filter", &stdout, fmt.Sprintf("pid=%d ", door.Process.Pid))
	l := lineWith(stdout.String(), fmt.Sprintf("pid=%d ", door.Process.Pid))
	if !strings.Contains(l, "socket=packet") || !strings.Contains(l, "magic=1") || !strings.Contains(l, "rules="+cbpfMagicRule+":block") || !strings.Contains(l, "action=killed") {
		t.Errorf("cbpf_attach line: %s (want like %s)", l, want)
	}
	err = door.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the magic-filter process ended with %v, want SIGKILL", err)
	}

	for _, expr := range []string{"udp[8:2] = 0x7255", "tcp port 80"} {
		td := exec.Command(tcpdump, "-i", "lo", "-c", "1", "-n", expr)
		if err := td.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "tcpdump's filter", &stdout, fmt.Sprintf("pid=%d ", td.Process.Pid))
		// libpcap may attach more than one filter; none may be flagged,
		// though the first expression's does test a magic value: tcpdump is
		// spared for what its executable is.
		pidTag := fmt.Sprintf("pid=%d ", td.Process.Pid)
		if expr == "udp[8:2] = 0x7255" {
			waitFor(t, "tcpdump's magic filter", &stdout, pidTag)
			deadline := 0
			for !strings.Contains(linesWith(stdout.String(), pidTag), "magic=1") && deadline < 600 {
				deadline++
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(linesWith(stdout.String(), pidTag), "magic=1") {
				t.Errorf("tcpdump's magic filter not analysed as such:\n%s", linesWith(stdout.String(), pidTag))
			}
		}
		if l := linesWith(stdout.String(), pidTag); strings.Contains(l, "rules=") {
			t.Errorf("tcpdump %q flagged: %s", expr, l)
		}
		if td.ProcessState != nil {
			t.Errorf("tcpdump %q ended: %v", expr, td.ProcessState)
		}
		td.Process.Kill()
		td.Wait()
	}
}

// linesWith returns the lines of out that contain substr.
func linesWith(out, substr string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// run's YAML cbpf rules judge each attach beside the built-in rule: on a
// UDP socket (which the built-in magic-filter rule leaves alone) a rule
// asking for magic 0x7255 blocks, one asking for a packet socket does not
// match, and a loader exception by exe path spares.
func TestCbpfAttachIsJudgedByYAMLRules(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	insns := []cbpf.Instruction{
		{Code: 0x28, K: 12}, {Code: 0x15, Jf: 6, K: 0x800}, {Code: 0x30, K: 23}, {Code: 0x15, Jf: 4, K: 17},
		{Code: 0xb1, K: 14}, {Code: 0x48, K: 22}, {Code: 0x15, Jf: 1, K: 0x7255}, {Code: 0x06, K: 0xffff}, {Code: 0x06},
	}
	self, _ := os.Executable()
	for _, tt := range []struct {
		name, rule string
		want       string // verdict action
	}{
		{"a magic value the rule lists blocks", "cbpf: {magic: [0x7255]}", "block"},
		{"a socket type the filter is not on does not match", "cbpf: {socket: [packet], magic_any: true}", "allow"},
		{"an exe exception spares the attaching process", "cbpf: {magic: [0x7255]}\n    not: {loader: {exe: ['" + self + "']}}", "allow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set, err := rules.Parse("cbpf.yaml", []byte("- id: y\n  severity: high\n  action: block\n  match:\n    "+tt.rule+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			var got *output.Event
			w := &cbpfWatcher{tools: map[exeID]string{}, root: "/", emit: func(ev *output.Event) { got = ev }, rules: func() *rules.Set { return set }}
			w.handle(&capture.Attach{PID: uint32(os.Getpid()), TID: uint32(os.Getpid()), FD: int32(fd), Optname: capture.SOAttachFilter, Len: uint32(len(insns)), Insns: insns})
			if got == nil || got.Verdict.Action != tt.want {
				t.Fatalf("verdict %+v, want %s", got.Verdict, tt.want)
			}
			if tt.want == "block" && (len(got.Verdict.Rules) != 1 || got.Verdict.Rules[0].ID != "y" || got.Verdict.EnforcedBy != "") {
				t.Errorf("rules %+v (monitor: nothing enforced)", got.Verdict)
			}
		})
	}
}
