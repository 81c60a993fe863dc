package allowlist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func obs(fp Fingerprint, name string, at time.Time, exe string) Observation {
	return Observation{Fingerprint: fp, Name: name, Type: "tracepoint", Time: at,
		Loader: Loader{Exe: exe, Inode: 42, Dev: 8 << 20, SHA256: strings.Repeat("ab", 32)}}
}

// Learning records each fingerprint once, counts sightings, keeps first
// and last time and every distinct loader; the file written atomically
// reads back the same and is 0600.
func TestRecordSaveAndLoadRoundTrip(t *testing.T) {
	l := New()
	for _, o := range []Observation{
		obs(0x1111, "prog_a", t0, "/usr/bin/a"),
		obs(0x2222, "prog_b\x1b[31m", t0.Add(time.Minute), "/usr/bin/b"),
		obs(0x1111, "prog_a", t0.Add(time.Hour), "/usr/bin/a"),
		obs(0x1111, "prog_a", t0.Add(2*time.Hour), "/opt/other/a"),
	} {
		if _, err := l.Record(o); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.Entries) != 2 {
		t.Fatalf("%d entries, want 2", len(l.Entries))
	}
	a := l.Find(0x1111)
	if a.Count != 3 || !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(t0.Add(2*time.Hour)) || len(a.Loaders) != 2 || a.Source != "learn" {
		t.Fatalf("entry a %+v: want count 3, first %v, last +2h, two loaders, source learn", a, t0)
	}
	path := filepath.Join(t.TempDir(), "allow.yaml")
	if err := l.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v mode %v, want 0600", err, st.Mode())
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Entries) != 2 || back.Find(0x2222).Name != "prog_b\x1b[31m" || back.Find(0x1111).Loaders[1].Exe != "/opt/other/a" {
		t.Fatalf("read back %+v", back.Entries)
	}
	if got := back.Fingerprints(); len(got) != 2 || got[0] != 0x1111 || got[1] != 0x2222 {
		t.Errorf("fingerprints %#x, want sorted 0x1111 0x2222", got)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "fingerprint: \"0x0000000000001111\"") && !strings.Contains(string(data), "fingerprint: 0x0000000000001111") {
		t.Errorf("the file does not show the fingerprint as 0x and 16 digits:\n%s", data)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left beside the list: %v", entries)
	}
}

func TestLoadRefusesFilesOthersCouldWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allow.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nentries: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("a 0600 file of ours: %v", err)
	}
	os.Chmod(path, 0o620)
	if _, err := Load(path); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "0620") {
		t.Errorf("group-writable file: %v, want ErrUnsafeFile naming the mode", err)
	}
	os.Chmod(path, 0o600)
	if os.Geteuid() == 0 {
		os.Chown(path, 65534, 65534)
		if _, err := Load(path); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("file owned by nobody: %v, want ErrUnsafeFile naming the owner", err)
		}
	}
}

func TestParseNamesTheBadEntryAndField(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"an unknown field is refused with its line", "version: 1\nentries:\n  - fingerprint: \"0x1\"\n    nmae: x\n", "[4:5]"},
		{"a fingerprint without 0x", "version: 1\nentries:\n  - fingerprint: \"1234\"\n", "want 0x"},
		{"a fingerprint too long", "version: 1\nentries:\n  - fingerprint: \"0x11112222333344445\"\n", "want 0x"},
		{"the same fingerprint twice", "version: 1\nentries:\n  - fingerprint: \"0x1\"\n  - fingerprint: \"0x01\"\n", "entry 2 (fingerprint 0x0000000000000001): listed again (first at entry 1)"},
		{"a bad tag", "version: 1\nentries:\n  - fingerprint: \"0x1\"\n    tag: XYZ\n", "entry 1 (fingerprint 0x0000000000000001): tag \"XYZ\""},
		{"a bad loader hash", "version: 1\nentries:\n  - fingerprint: \"0x1\"\n    loaders: [{exe: /a, sha256: nothex}]\n", "loaders[0].sha256"},
		{"last seen before first seen", "version: 1\nentries:\n  - fingerprint: \"0x1\"\n    first_seen: 2026-01-02T00:00:00Z\n    last_seen: 2026-01-01T00:00:00Z\n", "before first_seen"},
		{"an unknown version", "version: 2\nentries: []\n", "version 2"},
		{"an unknown source", "version: 1\nentries:\n  - fingerprint: \"0x1\"\n    source: magic\n", "source \"magic\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Errorf("error %v, want one starting with the file name and containing %q", err, tc.want)
			}
		})
	}
}

func TestDiffApprovePrune(t *testing.T) {
	a, b := New(), New()
	a.Record(obs(1, "one", t0, ""))
	a.Record(obs(2, "two", t0, ""))
	b.Record(obs(2, "two", t0, ""))
	b.Record(obs(3, "three", t0, ""))
	d := Diff(a, b)
	if len(d.Added) != 1 || d.Added[0].Fingerprint != 3 || len(d.Removed) != 1 || d.Removed[0].Fingerprint != 1 {
		t.Fatalf("diff %+v, want +3 -1", d)
	}
	n, err := a.Approve([]Entry{{Fingerprint: 3, Name: "three", Note: "ticket 12"}, {Fingerprint: 1, Note: "still wanted"}}, t0.Add(48*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("approve: %d new, %v; want 1", n, err)
	}
	if e := a.Find(3); e == nil || e.Source != "approve" || !e.LastSeen.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("approved entry %+v", e)
	}
	if a.Find(1).Note != "still wanted" {
		t.Error("approving a listed fingerprint did not keep its note")
	}
	gone := a.Prune(t0.Add(24 * time.Hour))
	if len(gone) != 2 || len(a.Entries) != 1 || a.Entries[0].Fingerprint != 3 {
		t.Fatalf("prune removed %+v, kept %+v; want 1 and 2 gone, 3 kept", gone, a.Entries)
	}
}

func TestParseDate(t *testing.T) {
	now := t0
	for in, want := range map[string]time.Time{
		"2026-10-01":           time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		"2026-10-01T05:00:00Z": time.Date(2026, 10, 1, 5, 0, 0, 0, time.UTC),
		"30d":                  now.Add(-30 * 24 * time.Hour),
		"36h":                  now.Add(-36 * time.Hour),
	} {
		if got, err := ParseDate(in, now); err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseDate("last tuesday", now); err == nil {
		t.Error("a date in words was accepted")
	}
}
