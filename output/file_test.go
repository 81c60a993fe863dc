package output

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// readLines reads every line of the given files, failing on a torn line
// (one that is not a whole JSON event).
func readEventFiles(t *testing.T, paths ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range paths {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: torn or invalid line %q: %v", p, sc.Text(), err)
			}
			out = append(out, m)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestFileRotationUnderConcurrentLoadLosesNoLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	const maxSize = 64 << 10
	const keep = 1000 // keep all rotated files so every line can be checked
	fs, err := NewFileSink(path, maxSize, keep)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{Host: "h", LossInterval: -1})
	const producers, each = 8, 1000
	p.Add(fs, QueueOptions{Size: producers * each})
	prog := sampleProgram(16)
	var wg sync.WaitGroup
	for g := range producers {
		wg.Go(func() {
			for i := range each {
				ev := NewProgLoad(ProgLoad{Program: prog, Disasm: disasmLines(16)}, InsnOptions{Mode: InsnModeText})
				ev.Prog.Origin = strconv.Itoa(g) + "/" + strconv.Itoa(i)
				p.Emit(ev)
			}
		})
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := p.LossTotals(); len(l) != 0 {
		t.Fatalf("losses: %+v", l)
	}
	files := []string{path}
	for i := 1; ; i++ {
		name := path + "." + strconv.Itoa(i)
		st, err := os.Stat(name)
		if err != nil {
			break
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes, over the %d limit", name, st.Size(), maxSize)
		}
		files = append(files, name)
	}
	if len(files) < 10 {
		t.Fatalf("only %d files: rotation did not happen as often as expected", len(files))
	}
	seen := map[string]bool{}
	for _, ev := range readEventFiles(t, files...) {
		origin := ev["prog"].(map[string]any)["origin"].(string)
		if seen[origin] {
			t.Fatalf("event %s written twice", origin)
		}
		seen[origin] = true
	}
	if len(seen) != producers*each {
		t.Fatalf("found %d distinct events in %d files, want %d", len(seen), len(files), producers*each)
	}
}

func TestFileRotationKeepsOnlyNFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.json")
	fs, err := NewFileSink(path, 1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(fs, QueueOptions{Size: 1000})
	for range 100 {
		p.Emit(SensorStarted(Sensor{})) // ~200 bytes each: many rotations
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(path + "*")
	if len(names) != 3 {
		t.Fatalf("files = %v, want e.json, e.json.1, e.json.2", names)
	}
	// The newest events are the ones kept: the last seq is in the current file.
	evs := readEventFiles(t, path+".2", path+".1", path)
	if last := evs[len(evs)-1]["seq"].(float64); last != 100 {
		t.Errorf("last kept event has seq %v, want 100", last)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i]["seq"].(float64) != evs[i-1]["seq"].(float64)+1 {
			t.Fatalf("kept events are not contiguous at %d: %v after %v", i, evs[i]["seq"], evs[i-1]["seq"])
		}
	}
}

func TestAFullDiskIsCountedAndLeavesNoTornLine(t *testing.T) {
	testutils.RequireRoot(t, "mounting a tiny tmpfs")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		testutils.SkipOrFail(t, "mount tmpfs: "+err.Error())
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "events.json")
	fs, err := NewFileSink(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(fs, QueueOptions{Size: 10000, BatchMax: 7})
	const n = 2000 // ~300 bytes each: several times what fits
	for range n {
		p.Emit(RulesRejected(Rules{Source: "/etc/rules.yaml", Count: 3, Error: "rules.yaml:1:1: something long enough to fill the disk quickly"}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := lossOf(p, StageSink, fs.Name(), "disk_full")
	written := readEventFiles(t, path) // fails on a torn line
	delivered := p.Delivered()[fs.Name()]
	if lost == 0 {
		t.Fatal("no disk_full loss counted on a full disk")
	}
	if uint64(len(written)) != delivered {
		t.Errorf("file holds %d events, sink reported %d delivered", len(written), delivered)
	}
	// Every emitted event (plus the final loss report) is either on disk or counted.
	if delivered+lost+lossOf(p, StageSink, fs.Name(), ReasonShutdown) != n+1 {
		t.Errorf("delivered %d + lost %d != %d emitted", delivered, lost, n+1)
	}
}

func TestDevFullIsCountedAsDiskFull(t *testing.T) {
	fs, err := NewFileSink("/dev/full", 1<<20, 3)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(fs, QueueOptions{})
	for range 3 {
		p.Emit(SensorStarted(Sensor{}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(p, StageSink, "file:/dev/full", "disk_full"); got < 3 {
		t.Errorf("disk_full losses = %d, want at least 3", got)
	}
}

func TestAWriterWhoseReaderWentAwayCountsClosed(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	p := NewPipeline(Config{LossInterval: -1})
	s := NewWriterSink("stdout", w)
	p.Add(s, QueueOptions{})
	for range 3 {
		p.Emit(SensorStarted(Sensor{}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(p, StageSink, "stdout", "closed"); got < 3 {
		t.Errorf("closed losses = %d, want at least 3: %+v", got, p.LossTotals())
	}
}

// The file sink does not follow a symbolic link at its path (an attacker's
// link to a file root would then append to), and creates the file 0600;
// rotation creates the new file the same way.
func TestFileSinkRefusesSymlinksAndCreatesPrivateFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "events.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if s, err := NewFileSink(link, 0, 0); err == nil {
		s.Close()
		t.Fatal("the file sink opened a symbolic link")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("error %q does not say why", err)
	}
	path := filepath.Join(dir, "fresh.json")
	s, err := NewFileSink(path, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := []Record{{JSON: []byte(`{"n":"` + strings.Repeat("x", 40) + `"}`)}}
	for i := 0; i < 3; i++ { // the second write rotates
		if _, err := s.Send(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
}
