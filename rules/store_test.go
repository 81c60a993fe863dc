package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func ruleYAML(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString("- id: " + id + "\n  severity: low\n  action: alert\n  match: {helpers_any: [1]}\n")
	}
	return b.String()
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ids(s *Set) string {
	var v []string
	for _, r := range s.Rules {
		v = append(v, r.ID)
	}
	return strings.Join(v, ",")
}

func TestStoreReloadKeepsTheOldSetOnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, ruleYAML("one"))
	s, err := NewStore(p)
	if err != nil {
		t.Fatal(err)
	}
	var reloaded []string
	s.OnReload(func(set *Set) { reloaded = append(reloaded, ids(set)) })

	writeFile(t, p, ruleYAML("one", "two"))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ids(s.Set()); got != "one,two" {
		t.Fatalf("after reload: %s", got)
	}

	writeFile(t, p, "- id: three\n  severity: low\n  action: alert\n  match: {helpers: {bpf_nope: 1}}\n")
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), "keeping the 2 rules in force") || !strings.Contains(err.Error(), p+":4:21") {
		t.Fatalf("broken reload error: %v", err)
	}
	if got := ids(s.Set()); got != "one,two" {
		t.Fatalf("a broken file replaced the set: %s", got)
	}
	if s.LastError() == nil {
		t.Error("LastError is nil after a failed reload")
	}
	if strings.Join(reloaded, "|") != "one,two" {
		t.Errorf("OnReload saw %v, want only the good reload", reloaded)
	}
}

func TestNewStoreNeedsValidRules(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, "")
	if _, err := NewStore(p); err == nil {
		t.Fatal("NewStore accepted an empty file")
	}
	s, err := NewStore("")
	if err != nil || len(s.Set().Rules) == 0 {
		t.Fatalf("defaults store: %v", err)
	}
}

func TestWatchReloadsAChangedDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), ruleYAML("one"))
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan ReloadEvent, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx, 5*time.Millisecond, func(e ReloadEvent) { events <- e }); close(done) }()
	defer func() { cancel(); <-done }()

	// os.WriteFile truncates, then writes: the watcher may poll between
	// the two and reload a half-written file (an empty b.yaml fails to
	// load). Each step therefore waits for the event of the finished
	// change and checks that the ones before it kept a valid set.
	until := func(step string, done func(ReloadEvent) bool) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Err != nil && ids(e.Set) != ids(s.Set()) {
					t.Fatalf("%s: a failed reload changed the set: event %s, store %s", step, ids(e.Set), ids(s.Set()))
				}
				if done(e) {
					return
				}
				t.Logf("%s: intermediate reload (err %v, set %s)", step, e.Err, ids(e.Set))
			case <-deadline:
				t.Fatalf("%s: no such reload event within 20 s (store has %s, last error %v)", step, ids(s.Set()), s.LastError())
			}
		}
	}

	writeFile(t, filepath.Join(dir, "b.yaml"), ruleYAML("two"))
	until("new file", func(e ReloadEvent) bool { return e.Err == nil && ids(e.Set) == "one,two" })
	writeFile(t, filepath.Join(dir, "b.yaml"), ruleYAML("one")) // duplicate id across files
	until("broken change", func(e ReloadEvent) bool {
		if e.Err != nil && strings.Contains(e.Err.Error(), "duplicate id") {
			if ids(e.Set) != "one,two" || ids(s.Set()) != "one,two" {
				t.Fatalf("broken change: set %s, store %s, want the last good one,two kept", ids(e.Set), ids(s.Set()))
			}
			return true
		}
		if e.Err == nil {
			t.Fatalf("broken change loaded: set %s", ids(e.Set))
		}
		return false
	})
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	until("fixed by removal", func(e ReloadEvent) bool { return e.Err == nil && ids(e.Set) == "one" })
}

func TestReadersNeverSeeAPartialSet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, ruleYAML("a1", "a2"))
	s, err := NewStore(p)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad sync.Once
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := ids(s.Set())
				if got != "a1,a2" && got != "b1,b2,b3" {
					bad.Do(func() { t.Errorf("reader saw %q", got) })
				}
			}
		}()
	}
	for i := range 50 {
		if i%2 == 0 {
			writeFile(t, p, ruleYAML("b1", "b2", "b3"))
		} else {
			writeFile(t, p, ruleYAML("a1", "a2"))
		}
		_ = s.Reload()
	}
	close(stop)
	wg.Wait()
}
