package sensor

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// untilTampered polls CheckIntegrity (as run does) until it reports
// something or the deadline passes.
func untilTampered(t *testing.T, s *Sensor, within time.Duration) []Tampering {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := s.CheckIntegrity()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// What the judges read cannot be written by another process at all: the
// config map is frozen (`bpftool map update` on it fails), and a write of
// the staged config (monitor mode: reported, not stopped) is never copied
// into it, so the integrity check finds the kernel config as the agent
// wrote it. A change that does reach the judges' tables (here the agent
// itself zeroing the rule table) is detected at the next check.
func TestConfigMapUpdateFromAnotherProcessIsDetected(t *testing.T) {
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		testutils.SkipOrFail(t, "no bpftool to tamper with: "+err.Error())
	}
	s := startSensor(t, Config{Mode: ModeMonitor, Rules: compiledTestRules(t)})
	if got, err := s.CheckIntegrity(); err != nil || len(got) != 0 {
		t.Fatalf("untouched sensor: %v %v", got, err)
	}
	update := func(name string) (string, error) {
		info, err := s.coll.Maps[name].Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		value := strings.Fields(strings.Repeat("0 ", int(info.ValueSize)))
		args := append([]string{"map", "update", "id", fmt.Sprint(id), "key", "0", "0", "0", "0", "value"}, value...)
		out, err := exec.Command(bpftool, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := update(sentryMapConfig); err == nil {
		t.Fatalf("bpftool map update on the frozen config map succeeded:\n%s", out)
	}
	if out, err := update(sentryMapConfigStaged); err != nil {
		t.Fatalf("bpftool map update on the staged config (monitor mode): %v\n%s", err, out)
	}
	var staged sentrySentryConfig
	if err := s.coll.Maps[sentryMapConfigStaged].Lookup(uint32(0), &staged); err != nil {
		t.Fatal(err)
	}
	if staged.SelfTgid != 0 {
		t.Fatalf("the staged config was not written: %+v", staged)
	}
	if got, err := s.CheckIntegrity(); err != nil || len(got) != 0 {
		t.Fatalf("another process's staged write reached the kernel config: %+v %v", got, err)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		a, ok := nextAttempt(t, s, 10*time.Second)
		if !ok {
			t.Fatalf("attempts reported: %v", seen)
		}
		if a.Action != ActionMonitor || a.Command != "BPF_MAP_UPDATE_ELEM" {
			t.Fatalf("attempt %+v", a)
		}
		seen[fmt.Sprint(a.ObjectID)] = true
	}

	// The agent rewrites its config; now the rule table is zeroed.
	if err := s.SetMode(ModeEnforce); err != nil {
		t.Fatal(err)
	}
	var zero sentryRulesTable
	if err := s.coll.Maps[sentryMapRulesStaged].Put(s.rulesActive, &zero); err != nil {
		t.Fatal(err)
	}
	got := untilTampered(t, s, 10*time.Second)
	if len(got) != 1 || got[0].What != "rules" {
		t.Fatalf("after zeroing the rule table: %+v", got)
	}
}

// A heartbeat's facts: every hook the sensor attached is still attached to
// one of its programs, the tables are intact, and the judged-load counter
// moves with loads.
func TestHealthReportsHooksTablesAndLoads(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor})
	before, err := s.Health()
	if err != nil {
		t.Fatal(err)
	}
	if before.Hooks == 0 || before.HooksAttached != before.Hooks || !before.TablesIntact {
		t.Fatalf("fresh sensor: %+v", before)
	}
	runLoader(t, "-gen", "2", "-name", "se2e_health")
	after, err := s.Health()
	if err != nil {
		t.Fatal(err)
	}
	if after.LoadsJudged <= before.LoadsJudged {
		t.Fatalf("loads judged %d then %d after a load", before.LoadsJudged, after.LoadsJudged)
	}
	t.Logf("%+v", after)
}
