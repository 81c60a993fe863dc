//go:build linux && amd64

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// A real `run` follows a fleet bucket: the signed bundle blocks, an unsigned
// one is rejected with the block still in force, and a second run boots from
// the cache with no server at all.
func TestRunFollowsSignedFleetPolicyAndBootsFromItsCache(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	dir := t.TempDir()
	srv := natstest.NewServer(t, "policy", filepath.Join(dir, "nats"), "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := (&natstest.Cluster{Servers: []*natstest.Server{srv}}).WaitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	keyPrefix := filepath.Join(dir, "fleet")
	if out, errs, code := runRulesCLI(t, "rules", "keygen", keyPrefix); code != 0 {
		t.Fatalf("keygen: %s %s", out, errs)
	}
	bundleDir := filepath.Join(dir, "bundle")
	os.Mkdir(bundleDir, 0o700)
	os.WriteFile(filepath.Join(bundleDir, "block.yaml"), []byte(blockRule), 0o600)
	if out, errs, code := runRulesCLI(t, "rules", "publish", bundleDir, "--key", keyPrefix+".key", "--nats", srv.URL(), "--bucket", "POLICY"); code != 0 || !strings.Contains(out, "published 1 files as POLICY/rules") {
		t.Fatalf("publish: %s %s", out, errs)
	}
	cache := filepath.Join(dir, "cache")
	f := startRun(t, "--rules-poll", "0", "--rules", "nats-kv://POLICY", "--policy-key", keyPrefix+".pub",
		"--policy-nats", srv.URL(), "--policy-cache", cache)
	waitFor(t, "the bundle applied", &f.stderr, "rules reloaded")
	if !load(t, f.loader, "sclirunblk_1") {
		t.Error("the signed bundle's block rule did not kill the load")
	}

	// An unsigned bundle (plain rule YAML that blocks nothing) is refused.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), "POLICY")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "rules", []byte(alertRule)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsigned bundle rejected", &f.stderr, "bundle is not signed")
	if !load(t, f.loader, "sclirunblk_2") {
		t.Error("an unsigned bundle lifted the block")
	}
	f.cmd.Process.Signal(os.Interrupt)
	f.cmd.Wait()

	// Without the bus: the cached bundle blocks from the start.
	srv.Stop()
	g := startRun(t, "--rules-poll", "0", "--rules", "nats-kv://POLICY", "--policy-key", keyPrefix+".pub",
		"--policy-nats", srv.URL(), "--policy-cache", cache)
	if !strings.Contains(g.stderr.String(), "booted_from="+cache) {
		t.Errorf("second run did not boot from the cache:\n%s", g.stderr.String())
	}
	if !load(t, g.loader, "sclirunblk_3") {
		t.Error("booted from the cache without the bus, the block rule did not kill the load")
	}
}
