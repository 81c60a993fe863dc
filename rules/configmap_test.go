package rules

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// configMapVersion writes files the way the kubelet projects a ConfigMap
// volume: the files in a hidden timestamped directory, "..data" a symlink to
// it swapped atomically by rename, and each visible name a symlink through
// "..data".
func configMapVersion(t *testing.T, dir, stamp string, files map[string]string, mtime time.Time) {
	t.Helper()
	ts := filepath.Join(dir, stamp)
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(ts, name)
		writeFile(t, p, body)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(stamp, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// Rules mounted from a Kubernetes ConfigMap load, and an update of the
// ConfigMap (a new ..data target, even with files of the same size and
// modification time) is noticed and reloaded.
func TestConfigMapLayoutLoadsAndReloads(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Unix(1700000000, 0)
	configMapVersion(t, dir, "..2026_12_01_10_00_00.1", map[string]string{"a.yaml": ruleYAML("aaa"), "b.yml": ruleYAML("bbb")}, mtime)
	s, err := NewStore(dir)
	if err != nil {
		t.Fatalf("rules from a ConfigMap volume: %v", err)
	}
	if got := ids(s.Set()); got != "aaa,bbb" {
		t.Fatalf("loaded %q, want aaa,bbb", got)
	}
	if _, changed := s.poll(); changed {
		t.Fatal("poll reports a change before the ConfigMap changed")
	}
	configMapVersion(t, dir, "..2026_12_01_10_05_00.2", map[string]string{"a.yaml": ruleYAML("ccc"), "b.yml": ruleYAML("ddd")}, mtime)
	ev, changed := s.poll()
	if !changed || ev.Err != nil {
		t.Fatalf("ConfigMap update: changed=%v err=%v", changed, ev.Err)
	}
	if got := ids(s.Set()); got != "ccc,ddd" {
		t.Fatalf("after the update: %q, want ccc,ddd", got)
	}
}
