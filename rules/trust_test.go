package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The agent's rules must be changeable by root (or its own user) alone: a
// group- or world-writable file or directory, also behind a ConfigMap's
// symlinks, is refused with a clear error, at start and at reload; a
// private file in /tmp (sticky) is fine.
func TestRulesWritableByOthersAreRefused(t *testing.T) {
	const rule = "- id: r\n  severity: low\n  action: alert\n  match:\n    prog_name: {exact: [x]}\n"
	write := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte(rule), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	write(good, 0o644)
	if _, err := NewStore(good); err != nil {
		t.Fatalf("a 0644 file in a private directory: %v", err)
	}

	worldFile := filepath.Join(dir, "world.yaml")
	write(worldFile, 0o666)
	if _, err := NewStore(worldFile); !errors.Is(err, ErrUntrustedFile) {
		t.Fatalf("a world-writable file: %v", err)
	}

	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	write(filepath.Join(open, "r.yaml"), 0o644)
	if _, err := NewStore(open); !errors.Is(err, ErrUntrustedFile) {
		t.Fatalf("a world-writable rules directory: %v", err)
	}

	// ConfigMap layout: the file behind "..data" is group-writable.
	cm := filepath.Join(dir, "cm")
	data := filepath.Join(cm, "..2026_12_02")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(data, "r.yaml"), 0o664)
	if err := os.Symlink("..2026_12_02", filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "r.yaml"), filepath.Join(cm, "r.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(cm); !errors.Is(err, ErrUntrustedFile) {
		t.Fatalf("a group-writable file behind a ConfigMap symlink: %v", err)
	}
	os.Chmod(filepath.Join(data, "r.yaml"), 0o644)
	s, err := NewStore(cm)
	if err != nil {
		t.Fatalf("the same ConfigMap made private: %v", err)
	}
	// A reload sees the file made writable again, and keeps the old set.
	os.Chmod(filepath.Join(data, "r.yaml"), 0o666)
	if err := s.Reload(); !errors.Is(err, ErrUntrustedFile) {
		t.Fatalf("reload of a world-writable file: %v", err)
	}
	if s.Set() == nil || len(s.Set().Rules) != 1 {
		t.Fatal("the old set is gone")
	}

	// A private file in a sticky world-writable directory.
	tmp, err := os.CreateTemp("", "sentry-trust-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	write(tmp.Name(), 0o644)
	if st, err := os.Stat(filepath.Dir(tmp.Name())); err == nil && st.Mode()&os.ModeSticky != 0 {
		if _, err := NewStore(tmp.Name()); err != nil {
			t.Fatalf("a private file in sticky %s: %v", filepath.Dir(tmp.Name()), err)
		}
	}
}
