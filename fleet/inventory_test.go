package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestMain(m *testing.M) { natstest.Main(m) }

func fingerprint(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// progLoad is the prog_load event an agent emits for a program with this
// fingerprint, name and loader.
func progLoad(sha, name, exe string) *output.Event {
	p := &program.Program{Name: name, Type: 2, InsnCnt: 2, Insns: make([]byte, 16),
		Loader: &program.Loader{PID: 42, Comm: "loader", Exe: exe}}
	return output.NewProgLoad(output.ProgLoad{Program: p, Report: &analysis.Report{SHA256: sha, ProgType: "kprobe"},
		Outcome: output.NewOutcome(output.ResultLoaded, 0)}, output.InsnOptions{Mode: output.InsnModeNone})
}

func TestFleetFindsFirstSeenFingerprintsFromThreePublishers(t *testing.T) {
	dir := t.TempDir()
	c := natstest.StartCluster(t, 3, dir)
	defer c.Shutdown()
	const stream, prefix = "FLEET", "fleet-test"
	// Three agents, one per node, each publishing as its own host.
	var pipes []*output.Pipeline
	for i, u := range c.URLs() {
		sink, err := output.NewNATSSink(output.NATSOptions{URLs: []string{u}, Stream: stream, Subject: prefix,
			CreateStream: true, Replicas: 3, SpoolDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		p := output.NewPipeline(output.Config{Host: fmt.Sprintf("host-%d", i+1), LossInterval: -1})
		p.Add(sink, output.QueueOptions{})
		pipes = append(pipes, p)
	}
	common, rare, late := fingerprint("common"), fingerprint("rare"), fingerprint("late")
	for _, p := range pipes {
		p.Emit(progLoad(common, "common_prog", "/usr/bin/agent"))
	}
	pipes[1].Emit(progLoad(rare, "rare_prog", "/tmp/.x/loader"))
	pipes[1].Emit(progLoad(rare, "rare_prog", "/tmp/.x/loader"))

	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	inv, err := OpenInventory(ctx, js, "FLEET_INV", 3)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var first []Sighting
	var skipped []error
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		// The stream exists once the sinks created it.
		for cctx.Err() == nil {
			err := Consume(cctx, js, stream, prefix, "fleet", inv, func(s Sighting) {
				mu.Lock()
				first = append(first, s)
				mu.Unlock()
			}, func(err error) {
				mu.Lock()
				skipped = append(skipped, err)
				mu.Unlock()
			})
			if err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		done <- nil
	}()
	waitFirst := func(n int) []Sighting {
		t.Helper()
		for {
			mu.Lock()
			got := append([]Sighting(nil), first...)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			if ctx.Err() != nil {
				t.Fatalf("fleet_first_seen raised %d times, want %d", len(got), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFirst(2)
	// The late program appears after the others are known.
	pipes[2].Emit(progLoad(late, "late_prog", "/opt/late"))
	got := waitFirst(3)
	// Every prog_load is in: 3 + 2 + 1 loads.
	for {
		e, err := inv.Get(ctx, common)
		if err == nil && len(e.Hosts) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("common program never seen on three hosts: %+v %v", e, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Copies the stream holds twice (a pack re-sent after the
	// de-duplication window, or with other companions) count once: three
	// more loads of the rare program on host-2, published directly in
	// three messages that carry five copies of them between them.
	rareCopy := func(id string) []byte {
		ev := progLoad(rare, "rare_prog", "/tmp/.x/loader")
		ev.ID, ev.Host, ev.Time = id, "host-2", time.Now().UTC()
		b, err := output.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d1, d2, d3 := rareCopy("dup-1"), rareCopy("dup-2"), rareCopy("dup-3")
	for i, evs := range [][][]byte{{d1, d2}, {d2, d3}, {d3}} {
		m := nats.NewMsg(prefix + ".host-2.prog_load")
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("copy-%d", i))
		m.Data = evs[0]
		if len(evs) > 1 {
			m.Header.Set(output.NATSPackHeader, output.NATSPackVersion)
			m.Data = nil
			for _, e := range evs {
				m.Data = append(append(m.Data, e...), '\n')
			}
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// An event naming another host than its subject's (what a host that
	// may publish only on its own subjects would send to speak for
	// another) is skipped: it neither adds host-9 nor counts a load.
	forged := progLoad(rare, "rare_prog", "/tmp/.x/loader")
	forged.ID, forged.Host, forged.Time = "forged-1", "host-9", time.Now().UTC()
	fb, err := output.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	fm := nats.NewMsg(prefix + ".host-2.prog_load")
	fm.Header.Set(jetstream.MsgIDHeader, "forged-1")
	fm.Data = fb
	if _, err := js.PublishMsg(ctx, fm); err != nil {
		t.Fatal(err)
	}
	// A new program published after them: once it is first seen, the
	// consumer (one, reading in stream order) has read the copies.
	pipes[0].Emit(progLoad(fingerprint("marker"), "marker_prog", "/opt/marker"))
	waitFirst(4)
	for _, p := range pipes {
		p.Close(ctx)
	}
	ccancel()
	<-done
	shas := map[string]int{}
	for _, s := range got {
		shas[s.SHA256]++
	}
	if len(got) != 3 || shas[common] != 1 || shas[rare] != 1 || shas[late] != 1 {
		t.Errorf("first-seen sightings %+v: want each fingerprint exactly once", got)
	}
	if got[len(got)-1].SHA256 != late || got[len(got)-1].Host != "host-3" {
		t.Errorf("last first-seen %+v: want the late program on host-3", got[len(got)-1])
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), `fleet-test.host-2.prog_load: event of host "host-9" not on its host's subject fleet-test.host-9.prog_load`) {
		t.Errorf("skipped: %v; want only the event of host-9 on host-2's subject", skipped)
	}
	e, err := inv.Get(ctx, rare)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Hosts) != 1 || e.Hosts["host-2"] == nil || e.Omitted != 0 || e.Hosts["host-2"].Loads != 5 || e.Loaders[0] != "/tmp/.x/loader" || e.Names[0] != "rare_prog" {
		t.Errorf("rare entry %+v", e)
	}
	byHost, err := inv.Find(ctx, func(e *Entry) bool { return e.Hosts["host-3"] != nil })
	if err != nil || len(byHost) != 2 {
		t.Errorf("programs of host-3: %d, %v; want common and late", len(byHost), err)
	}
	ev := output.NewFleetFirstSeen(output.FleetFirstSeen{SHA256: got[0].SHA256, Host: got[0].Host, Time: got[0].Time, EventID: got[0].EventID})
	if ev.Fleet.Host == "" || ev.Fleet.EventID == "" {
		t.Errorf("first-seen event lacks its origin: %+v", ev.Fleet)
	}
}

func TestEntryListsStayBoundedAndCountWhatTheyOmit(t *testing.T) {
	e := &Entry{SHA256: fingerprint("many")}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const n = 1000
	for i := 0; i < n; i++ {
		merge(e, Sighting{EventID: fmt.Sprint(i), Host: "h", SHA256: e.SHA256, Name: fmt.Sprintf("n%04d", i), ProgType: "kprobe",
			LoaderExe: "/tmp/" + strings.Repeat("x", 4000) + fmt.Sprint(i), Time: at})
	}
	if len(e.Names) != MaxNames || len(e.Loaders) != MaxLoaders || len(e.ProgTypes) != 1 {
		t.Errorf("names %d, loaders %d, types %d: want %d, %d, 1", len(e.Names), len(e.Loaders), len(e.ProgTypes), MaxNames, MaxLoaders)
	}
	if want := uint64(2*n - MaxNames - MaxLoaders); e.Omitted != want {
		t.Errorf("omitted %d, want %d", e.Omitted, want)
	}
	if e.Hosts["h"].Loads != n {
		t.Errorf("loads %d, want %d: a full list must not stop the count", e.Hosts["h"].Loads, n)
	}
	// Far below the servers' default max_payload (1 MiB), which a KV value
	// cannot exceed: an entry that grew past it could never be updated again.
	b, _ := json.Marshal(e)
	if len(b) > 512<<10 {
		t.Errorf("entry of %d bytes", len(b))
	}
	// A name already listed still merges when the list is full.
	merge(e, Sighting{Host: "h", SHA256: e.SHA256, Name: e.Names[0], Time: at})
	if e.Omitted != uint64(2*n-MaxNames-MaxLoaders) {
		t.Errorf("a listed name counted as omitted")
	}
}

// The host map is bounded like the lists: the first MaxHosts hosts keep
// their history, every sighting from a host past them is counted in
// Omitted, and the entry's own first and last sightings still follow all.
func TestEntryHostsStayBoundedAndCountWhatTheyOmit(t *testing.T) {
	e := &Entry{SHA256: fingerprint("everywhere")}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const n = 10000
	for i := 0; i < n; i++ {
		merge(e, Sighting{EventID: fmt.Sprint(i), Host: fmt.Sprintf("host-%05d", i), SHA256: e.SHA256, Name: "p", Time: at.Add(time.Duration(i) * time.Second)})
	}
	if len(e.Hosts) != MaxHosts {
		t.Fatalf("%d hosts, want %d", len(e.Hosts), MaxHosts)
	}
	if want := uint64(n - MaxHosts); e.Omitted != want {
		t.Errorf("omitted %d, want %d", e.Omitted, want)
	}
	if e.Hosts["host-00000"] == nil || e.Hosts[fmt.Sprintf("host-%05d", MaxHosts)] != nil {
		t.Errorf("hosts kept: want the first %d seen", MaxHosts)
	}
	if !e.LastSeen.Equal(at.Add((n - 1) * time.Second)) {
		t.Errorf("last seen %v: an omitted host's sighting must still date the entry", e.LastSeen)
	}
	// A listed host still counts its loads when the map is full.
	merge(e, Sighting{Host: "host-00000", SHA256: e.SHA256, Name: "p", Time: at})
	if e.Hosts["host-00000"].Loads != 2 || e.Omitted != uint64(n-MaxHosts) {
		t.Errorf("listed host loads %d, omitted %d: want 2 and %d", e.Hosts["host-00000"].Loads, e.Omitted, n-MaxHosts)
	}
	b, _ := json.Marshal(e)
	if len(b) > 512<<10 {
		t.Errorf("entry of %d bytes", len(b))
	}
}

func TestParseProgLoadRefusesWhatIsNotAFingerprintedLoad(t *testing.T) {
	for name, data := range map[string]string{
		"not JSON":             "{",
		"another kind":         `{"event":"loss","host":"h","time":"2026-01-01T00:00:00Z"}`,
		"no fingerprint":       `{"event":"prog_load","host":"h","time":"2026-01-01T00:00:00Z","prog":{"name":"x"}}`,
		"a forged fingerprint": `{"event":"prog_load","host":"h","time":"2026-01-01T00:00:00Z","prog":{"sha256":"../x"}}`,
		"no host":              `{"event":"prog_load","time":"2026-01-01T00:00:00Z","prog":{"sha256":"` + fingerprint("a") + `"}}`,
		"a malformed insn_hash": `{"event":"prog_load","host":"h","time":"2026-01-01T00:00:00Z","prog":{"sha256":"` + fingerprint("a") +
			`","insn_hash":"0x12\u0007"}}`,
		"a malformed exe_sha256": `{"event":"prog_load","host":"h","time":"2026-01-01T00:00:00Z","loader":{"exe":"/x","exe_sha256":"../"},"prog":{"sha256":"` +
			fingerprint("a") + `"}}`,
	} {
		if _, err := ParseProgLoad([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseProgLoadKeepsTheFingerprintAndTheLoadersIdentity(t *testing.T) {
	exeSHA := fingerprint("loader binary")
	s, err := ParseProgLoad([]byte(`{"event":"prog_load","id":"i-1","host":"web-1","time":"2026-01-01T00:00:00Z",` +
		`"loader":{"pid":7,"comm":"x","exe":"/usr/bin/l\u001b","exe_inode":1311,"exe_dev":265289728,"exe_sha256":"` + exeSHA + `"},` +
		`"prog":{"name":"p","type":{"id":5,"name":"tracepoint"},"sha256":"` + fingerprint("p") + `","insn_hash":"0x8e07a1bd2a1f0c53"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := LoaderID{Exe: `/usr/bin/l\x1b`, Inode: 1311, Dev: 265289728, SHA256: exeSHA}
	if s.Fingerprint != "0x8e07a1bd2a1f0c53" || s.Loader != want || s.LoaderExe != want.Exe {
		t.Errorf("sighting %+v: want fingerprint 0x8e07a1bd2a1f0c53 and loader %+v (the path escaped)", s, want)
	}
	e := &Entry{SHA256: s.SHA256}
	merge(e, s)
	merge(e, s)
	other := s
	other.Loader.Inode, other.Loader.SHA256 = 99, fingerprint("another binary at the same path")
	merge(e, other)
	if len(e.Fingerprints) != 1 || len(e.Loaders) != 1 || len(e.LoaderIDs) != 2 || e.LoaderIDs[1] != want {
		t.Errorf("entry %+v: one fingerprint, one path, two identities", e)
	}
}
