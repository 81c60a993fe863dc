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

// Another process switching enforcement off with `bpftool map update` on
// the config map (mode monitor, agent tgid 0) is detected at the next
// check; an untouched sensor reports nothing; a zeroed rule table too.
func TestConfigMapUpdateFromAnotherProcessIsDetected(t *testing.T) {
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		testutils.SkipOrFail(t, "no bpftool to tamper with: "+err.Error())
	}
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	if got, err := s.CheckIntegrity(); err != nil || len(got) != 0 {
		t.Fatalf("untouched sensor: %v %v", got, err)
	}
	info, err := s.coll.Maps[sentryMapConfig].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	value := strings.Fields(strings.Repeat("0 ", int(info.ValueSize)))
	args := append([]string{"map", "update", "id", fmt.Sprint(id), "key", "0", "0", "0", "0", "value"}, value...)
	if out, err := exec.Command(bpftool, args...).CombinedOutput(); err != nil {
		t.Fatalf("bpftool %v: %v\n%s", args, err, out)
	}
	start := time.Now()
	got := untilTampered(t, s, 10*time.Second)
	if len(got) != 1 || got[0].What != "config" || !strings.Contains(got[0].Detail, "mode 0, written 1") {
		t.Fatalf("after bpftool zeroed the config: %+v", got)
	}
	t.Logf("detected in %v: %s", time.Since(start), got[0].Detail)

	// The agent rewrites its config; now the rule table is zeroed.
	if err := s.SetMode(ModeEnforce); err != nil {
		t.Fatal(err)
	}
	var zero sentryRulesTable
	if err := s.coll.Maps[sentryMapRules].Put(s.rulesActive, &zero); err != nil {
		t.Fatal(err)
	}
	got = untilTampered(t, s, 10*time.Second)
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
