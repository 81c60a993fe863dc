package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/fleet"
	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
)

func TestFleetQueryAnswersInTextAndJSON(t *testing.T) {
	srv := natstest.NewServer(t, "fleetq", filepath.Join(t.TempDir(), "nats"), "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := (&natstest.Cluster{Servers: []*natstest.Server{srv}}).WaitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	inv, err := fleet.OpenInventory(ctx, js, "EBPF_SENTRY_FLEET", 1)
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("ab", 32)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, h := range []string{"web-1", "db-1"} {
		if _, err := inv.Observe(ctx, fleet.Sighting{EventID: h + "-1", Host: h, SHA256: sha, Name: "hider", ProgType: "kprobe", LoaderExe: "/tmp/x", Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	out, errs, code := runRulesCLI(t, "fleet", "query", "--nats", srv.URL(), "--name", "hider")
	if code != 0 || !strings.Contains(out, "sha256 "+sha) || !strings.Contains(out, "host db-1") || !strings.Contains(out, "host web-1") {
		t.Fatalf("text query: %d %s %s", code, out, errs)
	}
	out, errs, code = runRulesCLI(t, "fleet", "query", "--nats", srv.URL(), "--host", "web-1", "--json")
	var entries []fleet.Entry
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || len(entries[0].Hosts) != 2 {
		t.Fatalf("JSON query: %d %s %s", code, out, errs)
	}
	out, errs, code = runRulesCLI(t, "fleet", "query", "--nats", srv.URL(), "--sha256", "ABABABAB", "--json")
	entries = nil
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || entries[0].SHA256 != sha {
		t.Errorf("JSON query of a sha256 prefix: %d %s %s", code, out, errs)
	}
	for _, bad := range []string{"a.b*", "abab", "xyxyxyxy", sha + "00"} {
		_, errs, code = runRulesCLI(t, "fleet", "query", "--nats", srv.URL(), "--sha256", bad)
		if code == 0 || !strings.Contains(errs, "--sha256") || !strings.Contains(errs, "64 hex digits, or a prefix of at least 8") {
			t.Errorf("query --sha256 %q: %d %s", bad, code, errs)
		}
	}
	if _, errs, code := runRulesCLI(t, "fleet", "query", "--nats", srv.URL(), "--fingerprint", "0xnothex"); code == 0 || !strings.Contains(errs, "--fingerprint") {
		t.Errorf("query --fingerprint 0xnothex: %d %s", code, errs)
	}
	out, _, code = runRulesCLI(t, "fleet", "query", "--nats", srv.URL(), "--host", "nowhere")
	if code != 0 || !strings.Contains(out, "no program found") {
		t.Errorf("query of an unknown host: %d %s", code, out)
	}
}

// An entry written into the bucket by someone other than the consumer (raw
// escape sequences, a bidi override, a newline that would forge a line) is
// printed by `fleet query` with every such character escaped, and text the
// consumer already escaped reads the same.
func TestFleetQueryEscapesWhatTheBucketHolds(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	e := &fleet.Entry{
		SHA256:    "ab\x1b[2J",
		Names:     []string{"evil\x1b[31m", "rtl\u202egnp.exe", `already\x1b`},
		ProgTypes: []string{"kprobe\nhost forged"},
		Loaders:   []string{"/tmp/\x07bell"},
		LoaderIDs: []fleet.LoaderID{{Exe: "/x\ry", SHA256: "00\x00"}},
		FirstSeen: now, LastSeen: now,
		Hosts: map[string]*fleet.HostSeen{"h\x1b]0;title\x07": {FirstSeen: now, LastSeen: now, Loads: 1}},
	}
	var b strings.Builder
	writeFleetEntries(&b, []*fleet.Entry{e})
	out := b.String()
	for _, bad := range []string{"\x1b", "\u202e", "\x07", "\r", "\x00", "\nhost forged"} {
		if strings.Contains(out, bad) {
			t.Errorf("fleet query text contains %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{`evil\x1b[31m`, `already\x1b`, `kprobe\x0ahost forged`, `/tmp/\x07bell`} {
		if !strings.Contains(out, want) {
			t.Errorf("fleet query text lacks %q:\n%s", want, out)
		}
	}
}
