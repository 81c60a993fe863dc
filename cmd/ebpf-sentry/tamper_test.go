//go:build linux && amd64

package main

import (
	"regexp"
	"testing"
)

// run emits heartbeats on its interval, each saying every hook is attached
// and the tables are intact while nobody interferes.
func TestRunEmitsHeartbeats(t *testing.T) {
	f := startRun(t, "--format", "json", "--heartbeat-interval", "300ms")
	waitForN(t, "heartbeats", &f.stdout, `"event":"heartbeat"`, 2)
	beats := regexp.MustCompile(`"heartbeat":\{"hooks":(\d+),"hooks_attached":(\d+),"tables_intact":(true|false)`).FindAllStringSubmatch(f.stdout.String(), -1)
	if len(beats) < 2 {
		t.Fatalf("%d heartbeat sections in:\n%s", len(beats), f.stdout.String())
	}
	for _, b := range beats {
		if b[1] == "0" || b[1] != b[2] || b[3] != "true" {
			t.Errorf("heartbeat: %s hooks, %s attached, tables intact %s", b[1], b[2], b[3])
		}
	}
}
