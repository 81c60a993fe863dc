package sensor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelcaps"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

var (
	tokenHelperOnce sync.Once
	tokenHelperPath string
	tokenHelperErr  error
)

// buildTokenHelper builds internal/cmd/bpftoken (in a VM: finds it on PATH,
// put there by vmrun -helpers).
func buildTokenHelper(t testing.TB) string {
	t.Helper()
	tokenHelperOnce.Do(func() {
		if os.Getenv(kernelEnv) != "" {
			tokenHelperPath, tokenHelperErr = exec.LookPath("bpftoken")
			return
		}
		dir, err := os.MkdirTemp("", "sentry-token")
		if err != nil {
			tokenHelperErr = err
			return
		}
		tokenHelperPath = filepath.Join(dir, "bpftoken")
		if out, err := exec.Command("go", "build", "-o", tokenHelperPath, "../internal/cmd/bpftoken").CombinedOutput(); err != nil {
			tokenHelperErr = fmt.Errorf("build bpftoken: %v\n%s", err, out)
		}
	})
	if tokenHelperErr != nil {
		t.Fatal(tokenHelperErr)
	}
	return tokenHelperPath
}

type tokenRun struct {
	CreatorPID int    `json:"creator_pid"`
	TokenFD    int    `json:"token_fd"`
	Fdinfo     string `json:"fdinfo"`
	UserNS     string `json:"userns"`
	killed     bool
	loads      []loadResult
	mapRet     *int // -token-map: the map fd or -errno
	attaches   int  // -token-attach: attach attempts made
	stderr     string
	err        error
}

// runToken runs bpftoken: a token made in a fresh user namespace from a
// delegated bpffs, and bpfload using it there with args.
func runToken(t testing.TB, args ...string) tokenRun {
	t.Helper()
	cmd := exec.Command(buildTokenHelper(t), append([]string{"-loader", buildLoader(t), "--"}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	r := tokenRun{err: cmd.Run(), stderr: stderr.String()}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.Contains(line, []byte(`"creator_pid"`)):
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("bpftoken output %q: %v", line, err)
			}
		case bytes.Contains(line, []byte(`"loader_signal":9`)):
			r.killed = true
		case bytes.HasPrefix(line, []byte(`{"map_create":`)):
			var m struct {
				MapCreate struct{ Ret int } `json:"map_create"`
			}
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("loader output %q: %v", line, err)
			}
			r.mapRet = &m.MapCreate.Ret
		case bytes.HasPrefix(line, []byte(`{"attach":`)):
			r.attaches++
		default:
			var l loadResult
			if err := json.Unmarshal(line, &l); err != nil {
				t.Fatalf("loader output %q: %v", line, err)
			}
			r.loads = append(r.loads, l)
		}
	}
	return r
}

// requireTokens: tokens exist from 6.9.
func requireTokens(t *testing.T) {
	t.Helper()
	testutils.RequireRoot(t, "BPF tokens")
	testutils.SkipOnOldKernel(t, "6.9", "BPF tokens")
	if f, err := KernelAttrFields(); err != nil || !f.Token {
		t.Fatalf("Linux ≥ 6.9 without prog_token_fd in union bpf_attr (%v)", err)
	}
}

func collectNamed(t testing.TB, s *Sensor, name string, timeout time.Duration) *Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				t.Fatal("sensor closed")
			}
			if ev.Program.Name == name && !interruptedAttempt(ev) {
				return ev // the attempt that ran to the end (see collect)
			}
		case <-deadline:
			t.Fatalf("no event for %s", name)
		}
	}
}

func TestTokenLoadsNameTheTokensOrigin(t *testing.T) {
	requireTokens(t)
	set, err := rules.Parse("token.yaml", []byte(`
- id: provtok-kprobe
  description: kprobe programs loaded through a BPF token
  severity: high
  action: block
  match:
    prog_name: {prefix: [provtok_]}
    via_token: true
    prog_type: [kprobe]
`))
	if err != nil {
		t.Fatal(err)
	}
	c := rules.Compile(set)
	if len(c.Slots) != 1 {
		t.Fatalf("the token rule is not enforceable in the kernel: %+v", c.Placements)
	}
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: c.Kernel()})
	helper := buildTokenHelper(t)
	insns := writeInsns(t, helperProg(fnKtimeGetNs))
	for _, tc := range []struct {
		name, prog, typ string
		killed          bool
	}{
		{"a socket filter through the token loads", "provtok_sock", "1", false},
		{"a kprobe through the token is stopped", "provtok_kprobe", "2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := runToken(t, "-insns", insns, "-type", tc.typ, "-token-fd", "3", "-name", tc.prog)
			if run.err != nil {
				t.Fatalf("bpftoken: %v\n%s", run.err, run.stderr)
			}
			// Stopped: killed on the syscall hooks, denied (EPERM) on the LSM hook.
			denied := len(run.loads) == 1 && run.loads[0].Ret == -int(syscall.EPERM)
			if stopped := run.killed || denied; stopped != tc.killed {
				t.Fatalf("loader stopped=%v, want %v (loads %+v)", stopped, tc.killed, run.loads)
			}
			if !tc.killed && (len(run.loads) != 1 || run.loads[0].Ret < 0) {
				t.Fatalf("the token load failed: %+v", run.loads)
			}
			ev := collectNamed(t, s, tc.prog, eventWait)
			p := ev.Program.Provenance
			if p == nil || !p.ViaToken || p.TokenFD != 3 {
				t.Fatalf("provenance %+v, want via_token with fd 3", p)
			}
			tok := p.Token
			if tok == nil || tok.Error != "" || tok.Creator == nil {
				t.Fatalf("token origin %+v", tok)
			}
			// The kernel vouches for the executable's inode and device; the
			// path is read from /proc while the creator still runs.
			var st unix.Stat_t
			if err := unix.Stat(helper, &st); err != nil {
				t.Fatal(err)
			}
			if int(tok.Creator.PID) != run.CreatorPID || tok.Creator.ExeInode != st.Ino ||
				tok.Creator.ExeDev != unix.Major(st.Dev)<<20|unix.Minor(st.Dev) || (tok.Creator.Exe != helper && tok.Creator.Exe != "") {
				t.Errorf("creator %+v, want pid %d exe %s (inode %d)", tok.Creator, run.CreatorPID, helper, st.Ino)
			}
			if want := "user:[" + strconv.FormatUint(tok.UserNS, 10) + "]"; run.UserNS != want {
				t.Errorf("token userns %d, the creator's is %s", tok.UserNS, run.UserNS)
			}
			if !strings.Contains(strings.Join(tok.AllowedProgs.Names, ","), "kprobe") || !strings.Contains(strings.Join(tok.AllowedCmds.Names, ","), "prog_load") {
				t.Errorf("delegation progs %+v cmds %+v, want kprobe and prog_load delegated", tok.AllowedProgs, tok.AllowedCmds)
			}
			if tc.killed && (ev.Verdict != VerdictBlock || ev.RuleID != "provtok-kprobe") {
				t.Errorf("verdict %v rule %q, want block by provtok-kprobe", ev.Verdict, ev.RuleID)
			}
			// The creation itself was an event.
			deadline := time.After(10 * time.Second)
			for found := false; !found; {
				select {
				case tcr := <-s.TokenEvents():
					if int(tcr.Token.Creator.PID) == run.CreatorPID {
						found = true
						if tcr.Errno != 0 || tcr.FD != run.TokenFD || tcr.Token.UserNS != tok.UserNS {
							t.Errorf("token creation %+v %+v", tcr, tcr.Token)
						}
					}
				case <-deadline:
					t.Fatalf("no token creation event for creator %d", run.CreatorPID)
				}
			}
		})
	}
}

// checkTokenOrigin asserts that tok names the token bpftoken made in run.
func checkTokenOrigin(t *testing.T, tok *program.Token, run tokenRun, helper string) {
	t.Helper()
	if tok == nil || tok.Error != "" || tok.Creator == nil {
		t.Fatalf("token origin %+v", tok)
	}
	var st unix.Stat_t
	if err := unix.Stat(helper, &st); err != nil {
		t.Fatal(err)
	}
	if int(tok.Creator.PID) != run.CreatorPID || tok.Creator.ExeInode != st.Ino {
		t.Errorf("creator %+v, want pid %d exe inode %d", tok.Creator, run.CreatorPID, st.Ino)
	}
	if want := "user:[" + strconv.FormatUint(tok.UserNS, 10) + "]"; run.UserNS != want {
		t.Errorf("token userns %d, the creator's is %s", tok.UserNS, run.UserNS)
	}
}

// A map created and an attach made through a token, and a load the kernel
// refuses before lsm/bpf_prog_load because the token does not delegate its
// type: each is reported with the token's origin.
func TestTokenMapsAttachesAndRefusalsNameTheToken(t *testing.T) {
	requireTokens(t)
	s := startSensor(t, Config{Mode: ModeMonitor})
	// Where the kernel has lsm/bpf_prog_load the sensor uses it: that is
	// where a refusal before the hook used to go unreported.
	if want, known := kernelExpectation(t).decides(kernelcaps.LSMProgLoadDeny); known && want != (s.Hook() == HookLSMProgLoad) {
		t.Fatalf("hook %s on a kernel whose lsm/bpf_prog_load support is %v", s.Hook(), want)
	}
	t.Logf("hook %s", s.Hook())
	helper := buildTokenHelper(t)
	insns := writeInsns(t, helperProg(fnKtimeGetNs))

	t.Run("map creation and attach through the token", func(t *testing.T) {
		run := runToken(t, "-insns", insns, "-type", "1", "-token-fd", "3", "-name", "provtok_att", "-token-map", "-token-attach")
		if run.err != nil {
			t.Fatalf("bpftoken: %v\n%s", run.err, run.stderr)
		}
		if run.mapRet == nil || *run.mapRet < 0 {
			t.Fatalf("map creation through the token: %v", run.mapRet)
		}
		if len(run.loads) != 1 || run.loads[0].Ret < 0 || run.attaches != 1 {
			t.Fatalf("loads %+v, attaches %d", run.loads, run.attaches)
		}
		loadPID := run.loads[0].PID
		deadline := time.After(20 * time.Second)
		var mc *MapCreated
		var at *AttachEvent
		for mc == nil || at == nil {
			select {
			case m := <-s.MapCreates():
				if int(m.Caller.PID) == loadPID {
					mc = m
				}
			case a := <-s.Attaches():
				if int(a.Caller.PID) == loadPID && a.Result != AttachUnknown {
					at = a
				}
			case <-s.Events():
			case <-deadline:
				t.Fatalf("map creation %v, attach %v: not both reported", mc != nil, at != nil)
			}
		}
		if mc.Errno != 0 || mc.MapID == 0 || mc.MapTypeStr != "array" || mc.Name != "tokmap" || mc.FD != *run.mapRet {
			t.Errorf("map creation %+v, want array tokmap created as fd %d", mc, *run.mapRet)
		}
		if p := mc.Provenance; p == nil || !p.ViaToken || p.TokenFD != 3 {
			t.Fatalf("map creation provenance %+v", p)
		}
		checkTokenOrigin(t, mc.Provenance.Token, run, helper)
		if at.ProgID != run.loads[0].ID || !at.ViaToken || at.Result != AttachFailed {
			t.Errorf("attach %+v (result %s), want prog %d via a token, failed", at, at.Result, run.loads[0].ID)
		}
		checkTokenOrigin(t, at.Token, run, helper)
	})

	t.Run("a load the token does not delegate is reported", func(t *testing.T) {
		// xdp is not in delegate_progs: the kernel ignores the token and
		// refuses the load for lack of CAP_BPF (EPERM), before
		// lsm/bpf_prog_load would run.
		run := runToken(t, "-insns", insns, "-type", "6", "-token-fd", "3", "-name", "provtok_xdp")
		if run.err != nil {
			t.Fatalf("bpftoken: %v\n%s", run.err, run.stderr)
		}
		if len(run.loads) != 1 || run.loads[0].Ret != -int(syscall.EPERM) {
			t.Fatalf("loads %+v, want one refused with EPERM", run.loads)
		}
		ev := collectNamed(t, s, "provtok_xdp", eventWait)
		if ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != int(syscall.EPERM) {
			t.Errorf("outcome %+v, want failed with EPERM", ev.Outcome)
		}
		if want := s.Hook() == HookLSMProgLoad; ev.RefusedBeforeHook != want {
			t.Errorf("refused_before_hook %v on the %s hook", ev.RefusedBeforeHook, s.Hook())
		}
		p := ev.Program.Provenance
		if p == nil || !p.ViaToken {
			t.Fatalf("provenance %+v, want via_token", p)
		}
		checkTokenOrigin(t, p.Token, run, helper)
	})
}
