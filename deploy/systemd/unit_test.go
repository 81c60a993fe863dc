package systemd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/agent"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

const unitFile = "ebpf-sentry.service"

// bin is the agent the tests run, built once.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "unit-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "ebpf-sentry")
	if err := agent.Build(bin, "unit-test"); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// directives returns every Key=value of the unit, in order.
func directives(t *testing.T, unit []byte) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not Key=value", line)
		}
		m[k] = append(m[k], v)
	}
	return m
}

// systemd-analyze verify prints unknown keys and bad values as warnings and
// still exits 0, so the test requires silence, with the real binary in place
// of /usr/bin/ebpf-sentry (verify checks that ExecStart is executable).
func TestUnitVerifiesClean(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is missing (scripts/deps.sh installs systemd): %v", err)
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	patched := bytes.ReplaceAll(unit, []byte("/usr/bin/ebpf-sentry"), []byte(bin))
	path := filepath.Join(dir, unitFile)
	if err := os.WriteFile(path, patched, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: err=%v\n%s", unitFile, err, out)
	}

	// And the check is not vacuous: a misspelt key is reported.
	bad := bytes.Replace(patched, []byte("ProtectClock="), []byte("ProtectClok="), 1)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); !bytes.Contains(out, []byte("ProtectClok")) {
		t.Fatalf("verify did not report a misspelt key: %s", out)
	}
}

// The promises docs/DEPLOY.md makes about the unit.
func TestUnitRestartsAndPins(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	d := directives(t, unit)
	want := map[string]string{
		"Restart":                  "on-failure",
		"StartLimitIntervalSec":    "0",
		"RestartPreventExitStatus": "2",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"WantedBy":                 "multi-user.target",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%v, want %s", k, got, v)
		}
	}
	exec := d["ExecStart"]
	if len(exec) != 1 || !strings.Contains(exec[0], " run --pin ") {
		t.Errorf("ExecStart=%v: want `run --pin` so the kernel keeps enforcing across restarts", exec)
	}
	if rw := strings.Join(d["ReadWritePaths"], " "); !strings.Contains(rw, "/sys/fs/bpf") {
		t.Errorf("ReadWritePaths=%q: the pins under /sys/fs/bpf must stay writable", rw)
	}
}

// The capability bounding set of the unit is enough for the sensor: run
// starts, attaches its hook and reports itself running with exactly those
// capabilities (setpriv applies the same bounding set systemd would).
func TestUnitCapabilitiesSufficeForRun(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor with the unit's capabilities")
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	caps := directives(t, unit)["CapabilityBoundingSet"]
	if len(caps) != 1 {
		t.Fatalf("CapabilityBoundingSet=%v: want one line", caps)
	}
	set := "-all"
	for _, c := range strings.Fields(caps[0]) {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Monitor mode with its own lock file: nothing on the shared host is
	// stopped, and another sensor's lock does not interfere.
	cmd := exec.CommandContext(ctx, "setpriv", "--inh-caps=-all", "--bounding-set="+set, "--",
		bin, "run", "--mode", "monitor", "--lock-file", filepath.Join(dir, "lock"), "--format", "text")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(90 * time.Second)
	for !strings.Contains(stderr.String(), "sensor running") {
		select {
		case err := <-exited:
			t.Fatalf("sensor with bounding set %s exited before running (%v):\n%s", set, err, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("sensor with bounding set %s not running after 90 s:\n%s", set, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cmd.Process.Signal(os.Interrupt)
	if err := <-exited; err != nil {
		t.Fatalf("sensor with bounding set %s: %v\n%s", set, err, stderr.String())
	}
	t.Logf("run works with %s: %s", caps[0], firstLine(stderr.String(), "sensor running"))
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
