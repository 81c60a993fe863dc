//go:build linux && amd64

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/fleet"
	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// recordedProgLoads are real prog_load events recorded from `run` on the
// CI host (testdata/fleet-recorded.jsonl: six programs, each loaded once).
func recordedProgLoads(t *testing.T) []*output.Event {
	t.Helper()
	f, err := os.Open("testdata/fleet-recorded.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []*output.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev output.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("recorded event %d: %v", len(evs)+1, err)
		}
		if ev.Event != output.KindProgLoad || ev.Prog == nil || ev.Prog.SHA256 == "" {
			t.Fatalf("recorded event %d is not a fingerprinted prog_load", len(evs)+1)
		}
		evs = append(evs, &ev)
	}
	if err := sc.Err(); err != nil || len(evs) != 6 {
		t.Fatalf("recorded events: %d, %v", len(evs), err)
	}
	return evs
}

// jsonLines returns the JSON objects of a file of events written so far.
func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func field(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[p]
	}
	s, _ := v.(string)
	return s
}

// TestFleetFindsTheLiveSensorsFirstSeenProgramAmongThreeHosts is the
// fleet end to end with the real pieces: a 3-node JetStream cluster
// (stream of 3 replicas), a live `ebpf-sentry run --output nats://…` on this
// host and two agents' NATS sinks replaying recorded real events as the
// hosts rec-1 and rec-2, each connected to another node, and the real
// `ebpf-sentry fleet` consumer. A program loaded only under the live
// sensor raises one fleet_first_seen naming this host; every fingerprint
// raises at most one; `fleet query --sha256` and `--host` answer in text
// and JSON, and `--fingerprint` finds it by the kernel's instruction hash
// with the loader's identity. The stream run created has the documented
// settings.
func TestFleetFindsTheLiveSensorsFirstSeenProgramAmongThreeHosts(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	recorded := recordedProgLoads(t)
	dir := t.TempDir()
	c := natstest.StartCluster(t, 3, filepath.Join(dir, "nats"))
	defer c.Shutdown()
	var hostports []string
	for _, u := range c.URLs() {
		hostports = append(hostports, strings.TrimPrefix(u, "nats://"))
	}
	spec := "nats://" + strings.Join(hostports, ",")
	const stream, prefix, bucket = "FLEETLIVE", "fleetlive", "FLEETLIVE_INV"
	liveFile, fleetFile := filepath.Join(dir, "live.json"), filepath.Join(dir, "fleet.json")

	// `fleet` starts first, before any agent created the stream: it waits.
	fl := exec.Command(goBuild(t, ".", "ebpf-sentry"), "fleet", "--nats", spec, "--replicas", "3", "--bucket", bucket,
		"--nats-stream", stream, "--nats-subject", prefix, "--output", "file:"+fleetFile)
	var flErr syncBuffer
	fl.Stderr = &flErr
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { fl.Process.Kill(); fl.Wait() }()
	waitFor(t, "fleet waiting for the stream", &flErr, "stream "+stream+" does not exist yet: waiting for it")

	f := startRun(t, "--rules-poll", "0", "--output", spec, "--output", "file:"+liveFile,
		"--nats-create-stream", "--nats-replicas", "3", "--nats-stream", stream, "--nats-subject", prefix,
		"--nats-spool-dir", filepath.Join(dir, "spool"))

	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			// The settings docs/FLEET.md ("The stream") gives, with run's
			// defaults and --nats-replicas 3.
			cfg := s.CachedInfo().Config
			if cfg.Replicas != 3 || cfg.Retention != jetstream.LimitsPolicy || cfg.Storage != jetstream.FileStorage ||
				cfg.Discard != jetstream.DiscardOld || cfg.MaxAge != 7*24*time.Hour || cfg.MaxBytes != -1 ||
				cfg.Duplicates != 2*time.Minute || len(cfg.Subjects) != 1 || cfg.Subjects[0] != prefix+".>" {
				t.Fatalf("the stream run created: %+v", cfg)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("run never created stream %s: %v\n%s", stream, err, f.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The two recorded hosts: rec-1 loaded all six programs, rec-2 the
	// first three.
	for i, n := range []int{6, 3} {
		sink, err := output.NewNATSSink(output.NATSOptions{URLs: []string{c.URLs()[i+1]}, Stream: stream, Subject: prefix,
			SpoolDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		p := output.NewPipeline(output.Config{Host: fmt.Sprintf("rec-%d", i+1), LossInterval: -1})
		p.Add(sink, output.QueueOptions{})
		for _, ev := range recorded[:n] {
			cp := *ev
			p.Emit(&cp)
		}
		defer p.Close(context.Background())
	}

	// A program only this host loads (no recorded event has 23 instructions).
	// The loader stays (-keep, until its stdin closes) until run has
	// written the load's event: run hashes the executable through
	// /proc/PID/exe, which a loader that already exited no longer has.
	const live = "fleetlive_p23"
	ld := exec.Command(f.loader, "-gen", "23", "-name", live, "-keep")
	ldIn, err := ld.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.Start(); err != nil {
		t.Fatalf("loader: %v", err)
	}
	defer func() { ldIn.Close(); ld.Wait() }()
	var liveSHA, liveFP string
	for liveSHA == "" {
		for _, m := range jsonLines(t, liveFile) {
			if field(m, "event") == "prog_load" && field(m, "prog", "name") == live {
				liveSHA, liveFP = field(m, "prog", "sha256"), field(m, "prog", "insn_hash")
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no fingerprinted prog_load of %s from run:\n%s", live, f.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ldIn.Close()
	if err := ld.Wait(); err != nil {
		t.Fatalf("loader: %v", err)
	}
	hostname, _ := os.Hostname()
	want := map[string]bool{liveSHA: true}
	for _, ev := range recorded {
		want[ev.Prog.SHA256] = true
	}
	var firsts map[string][]string // sha256 -> hosts named by its first-seen events
	for {
		firsts = map[string][]string{}
		for _, m := range jsonLines(t, fleetFile) {
			if field(m, "event") == "fleet_first_seen" {
				firsts[field(m, "fleet", "sha256")] = append(firsts[field(m, "fleet", "sha256")], field(m, "fleet", "host"))
			}
		}
		n := 0
		for sha := range want {
			if len(firsts[sha]) > 0 {
				n++
			}
		}
		if n == len(want) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("fleet_first_seen for %d of %d fingerprints: %v\nfleet:\n%s", n, len(want), firsts, flErr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for sha, hosts := range firsts {
		if len(hosts) != 1 {
			t.Errorf("fingerprint %s first seen %d times (%v): want once", sha, len(hosts), hosts)
		}
	}
	if h := firsts[liveSHA]; len(h) != 1 || h[0] != hostname {
		t.Errorf("first sighting of the live program on %v, want %q", h, hostname)
	}

	// The inventory keeps the kernel's fingerprint and the loader's
	// identity (inode and sha256 of the executable), not only its path.
	loaderBin, err := os.ReadFile(f.loader)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.loader, &st); err != nil {
		t.Fatal(err)
	}
	wantLoader := fleet.LoaderID{Exe: f.loader, Inode: st.Ino, SHA256: fmt.Sprintf("%x", sha256.Sum256(loaderBin))}
	var entries []fleet.Entry
	out, errs, code := runRulesCLI(t, "fleet", "query", "--nats", spec, "--bucket", bucket, "--fingerprint", liveFP, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || entries[0].SHA256 != liveSHA ||
		len(entries[0].Fingerprints) != 1 || entries[0].Fingerprints[0] != liveFP || len(entries[0].LoaderIDs) != 1 {
		t.Fatalf("JSON query --fingerprint %s: %d\n%s%s", liveFP, code, out, errs)
	}
	if got := entries[0].LoaderIDs[0]; got.Exe != wantLoader.Exe || got.Inode != wantLoader.Inode || got.SHA256 != wantLoader.SHA256 || got.Dev == 0 {
		t.Errorf("loader identity %+v, want %+v and a device", got, wantLoader)
	}

	// The queries, in text and JSON.
	out, errs, code = runRulesCLI(t, "fleet", "query", "--nats", spec, "--bucket", bucket, "--sha256", strings.ToUpper(liveSHA))
	if code != 0 || !strings.Contains(out, "sha256 "+liveSHA) || !strings.Contains(out, "host "+hostname) || !strings.Contains(out, live) ||
		!strings.Contains(out, liveFP) || !strings.Contains(out, "sha256 "+wantLoader.SHA256) {
		t.Errorf("text query --sha256: %d\n%s%s", code, out, errs)
	}
	entries = nil
	out, errs, code = runRulesCLI(t, "fleet", "query", "--nats", spec, "--bucket", bucket, "--sha256", recorded[0].Prog.SHA256, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 ||
		entries[0].Hosts["rec-1"] == nil || entries[0].Hosts["rec-2"] == nil {
		t.Errorf("JSON query --sha256 of a program both recorded hosts loaded: %d\n%s%s", code, out, errs)
	}
	out, errs, code = runRulesCLI(t, "fleet", "query", "--nats", spec, "--bucket", bucket, "--host", "rec-2", "--json")
	entries = nil
	if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 3 {
		t.Errorf("JSON query --host rec-2: %d entries, want 3: %d\n%s%s", len(entries), code, out, errs)
	}
	for _, e := range entries {
		if e.Hosts["rec-2"] == nil || e.Hosts["rec-2"].Loads != 1 {
			t.Errorf("entry %s: rec-2 loaded it once: %+v", e.SHA256, e.Hosts["rec-2"])
		}
	}
	out, errs, code = runRulesCLI(t, "fleet", "query", "--nats", spec, "--bucket", bucket, "--host", hostname)
	if code != 0 || !strings.Contains(out, "sha256 "+liveSHA) {
		t.Errorf("text query --host %s: %d\n%s%s", hostname, code, out, errs)
	}
}
