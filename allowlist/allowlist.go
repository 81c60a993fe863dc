package allowlist

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// MaxEntries is how many fingerprints one list holds: the kernel map's size.
const MaxEntries = 65536

// MaxFileSize bounds an allowlist file.
const MaxFileSize = 32 << 20

// MaxLoaders bounds the loader identities remembered per entry.
const MaxLoaders = 16

// Fingerprint is the kernel's instruction hash of a program as submitted
// (the rule table's insn_hash, rules/kernel.Hash), written 0x and 16 hex
// digits.
type Fingerprint uint64

func (f Fingerprint) String() string { return fmt.Sprintf("0x%016x", uint64(f)) }

// MarshalText writes 0x and 16 hex digits.
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads what MarshalText writes (fewer digits are allowed).
func (f *Fingerprint) UnmarshalText(b []byte) error {
	v, err := ParseFingerprint(string(b))
	*f = v
	return err
}

var fpPattern = regexp.MustCompile(`^0x[0-9a-fA-F]{1,16}$`)

// ParseFingerprint reads 0x followed by up to 16 hex digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	if !fpPattern.MatchString(s) {
		return 0, fmt.Errorf("fingerprint %q: want 0x and up to 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s[2:], 16, 64)
	return Fingerprint(v), err
}

// Loader is the identity of an executable that loaded a program, as the
// kernel saw it (inode, device) and as user space hashed it.
type Loader struct {
	Exe    string `yaml:"exe,omitempty" json:"exe,omitempty"`
	Inode  uint64 `yaml:"inode,omitempty" json:"inode,omitempty"`
	Dev    uint32 `yaml:"dev,omitempty" json:"dev,omitempty"` // kernel dev_t: MAJOR << 20 | MINOR
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
}

// Entry is one allowed fingerprint and what is known of it.
type Entry struct {
	Fingerprint Fingerprint `yaml:"fingerprint" json:"fingerprint"`
	Name        string      `yaml:"name,omitempty" json:"name,omitempty"` // program name when learned or approved
	Type        string      `yaml:"type,omitempty" json:"type,omitempty"` // program type (bpftool's name)
	Tag         string      `yaml:"tag,omitempty" json:"tag,omitempty"`   // kernel tag once loaded: matches `scan`
	SHA256      string      `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	Loaders     []Loader    `yaml:"loaders,omitempty" json:"loaders,omitempty"`
	FirstSeen   time.Time   `yaml:"first_seen,omitempty" json:"first_seen,omitzero"`
	LastSeen    time.Time   `yaml:"last_seen,omitempty" json:"last_seen,omitzero"`
	Count       uint64      `yaml:"count,omitempty" json:"count,omitempty"`
	Source      string      `yaml:"source,omitempty" json:"source,omitempty"` // learn | approve
	Note        string      `yaml:"note,omitempty" json:"note,omitempty"`
}

// List is an allowlist file.
type List struct {
	Version int     `yaml:"version" json:"version"`
	Entries []Entry `yaml:"entries" json:"entries"`
}

// New is an empty list of the current version.
func New() *List { return &List{Version: 1} }

var (
	tagPattern    = regexp.MustCompile(`^[0-9a-f]{16}$`)
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Parse reads an allowlist; name is used in errors, which say which entry
// and field is wrong.
func Parse(name string, data []byte) (*List, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", name, len(data), MaxFileSize)
	}
	l, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if l.Version != 1 {
		return nil, fmt.Errorf("%s: version %d: this agent reads version 1", name, l.Version)
	}
	if len(l.Entries) > MaxEntries {
		return nil, fmt.Errorf("%s: %d entries, at most %d (the kernel map's size)", name, len(l.Entries), MaxEntries)
	}
	seen := make(map[Fingerprint]int, len(l.Entries))
	for i, e := range l.Entries {
		where := fmt.Sprintf("%s: entry %d (fingerprint %s)", name, i+1, e.Fingerprint)
		if j, dup := seen[e.Fingerprint]; dup {
			return nil, fmt.Errorf("%s: listed again (first at entry %d)", where, j+1)
		}
		seen[e.Fingerprint] = i
		if e.Tag != "" && !tagPattern.MatchString(e.Tag) {
			return nil, fmt.Errorf("%s: tag %q: want 16 lower-case hex digits", where, e.Tag)
		}
		if e.SHA256 != "" && !sha256Pattern.MatchString(e.SHA256) {
			return nil, fmt.Errorf("%s: sha256 %q: want 64 lower-case hex digits", where, e.SHA256)
		}
		if len(e.Loaders) > MaxLoaders {
			return nil, fmt.Errorf("%s: %d loaders, at most %d", where, len(e.Loaders), MaxLoaders)
		}
		for k, ld := range e.Loaders {
			if ld.SHA256 != "" && !sha256Pattern.MatchString(ld.SHA256) {
				return nil, fmt.Errorf("%s: loaders[%d].sha256 %q: want 64 lower-case hex digits", where, k, ld.SHA256)
			}
		}
		if !e.FirstSeen.IsZero() && !e.LastSeen.IsZero() && e.LastSeen.Before(e.FirstSeen) {
			return nil, fmt.Errorf("%s: last_seen %s before first_seen %s", where, e.LastSeen.Format(time.RFC3339), e.FirstSeen.Format(time.RFC3339))
		}
		switch e.Source {
		case "", "learn", "approve":
		default:
			return nil, fmt.Errorf("%s: source %q: want learn or approve", where, e.Source)
		}
	}
	return l, nil
}

// decode is the YAML decoder, which panics on some malformed input (a tag
// on a sequence, found by FuzzParse): that is an error here, not a crash.
func decode(data []byte) (l *List, err error) {
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("malformed YAML (the decoder failed: %v)", r)
		}
	}()
	l = &List{}
	if err := yaml.UnmarshalWithOptions(data, l, yaml.Strict()); err != nil {
		return nil, errors.New(yaml.FormatError(err, false, true))
	}
	return l, nil
}

// ErrUnsafeFile is returned for a file that someone other than its owner
// could have written, or that another user owns.
var ErrUnsafeFile = errors.New("unsafe allowlist file")

// Load reads path, refusing a file that is not regular, is writable by
// group or others, or is owned by a user other than this process's: an
// allowlist decides what may load, like a rule file.
func Load(path string) (*List, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnsafeFile, path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, writable by group or others (chmod 600)", ErrUnsafeFile, path, st.Mode().Perm())
	}
	if uid, ok := fileOwner(st); ok && uid != os.Geteuid() {
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not by this process's uid %d", ErrUnsafeFile, path, uid, os.Geteuid())
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, st.Size(), MaxFileSize)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	return Parse(path, b.Bytes())
}

// Marshal writes the list as YAML, entries sorted by fingerprint.
func (l *List) Marshal() ([]byte, error) {
	l.Sort()
	body, err := yaml.MarshalWithOptions(l, yaml.IndentSequence(true))
	if err != nil {
		return nil, err
	}
	head := "# ebpf-sentry allowlist (docs/FLEET.md): the fingerprints `run --mode lock` lets load.\n"
	return append([]byte(head), body...), nil
}

// Save writes the list to path atomically (a temporary file in the same
// directory, fsync, rename, fsync of the directory), mode 0600.
func (l *List) Save(path string) error {
	data, err := l.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("save allowlist: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save allowlist: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save allowlist: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save allowlist: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save allowlist: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save allowlist: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Sort orders the entries by fingerprint.
func (l *List) Sort() {
	sort.Slice(l.Entries, func(i, j int) bool { return l.Entries[i].Fingerprint < l.Entries[j].Fingerprint })
}

// Fingerprints is what the kernel map holds.
func (l *List) Fingerprints() []uint64 {
	out := make([]uint64, len(l.Entries))
	for i, e := range l.Entries {
		out[i] = uint64(e.Fingerprint)
	}
	return out
}

// Find returns the entry of f, or nil.
func (l *List) Find(f Fingerprint) *Entry {
	for i := range l.Entries {
		if l.Entries[i].Fingerprint == f {
			return &l.Entries[i]
		}
	}
	return nil
}

// Observation is one load that learn mode saw succeed.
type Observation struct {
	Fingerprint Fingerprint
	Name, Type  string
	Tag, SHA256 string
	Loader      Loader
	Time        time.Time
}

// Record adds o to the list, or updates its entry (last seen, count, a
// loader not seen before). It reports whether the list grew.
func (l *List) Record(o Observation) (bool, error) {
	if e := l.Find(o.Fingerprint); e != nil {
		e.Count++
		if o.Time.After(e.LastSeen) {
			e.LastSeen = o.Time
		}
		if e.FirstSeen.IsZero() || o.Time.Before(e.FirstSeen) {
			e.FirstSeen = o.Time
		}
		if e.Name == "" {
			e.Name = o.Name
		}
		if e.Tag == "" {
			e.Tag = o.Tag
		}
		if e.SHA256 == "" {
			e.SHA256 = o.SHA256
		}
		addLoader(e, o.Loader)
		return false, nil
	}
	if len(l.Entries) >= MaxEntries {
		return false, fmt.Errorf("allowlist full (%d entries): %s not recorded", MaxEntries, o.Fingerprint)
	}
	e := Entry{Fingerprint: o.Fingerprint, Name: o.Name, Type: o.Type, Tag: o.Tag, SHA256: o.SHA256,
		FirstSeen: o.Time, LastSeen: o.Time, Count: 1, Source: "learn"}
	addLoader(&e, o.Loader)
	l.Entries = append(l.Entries, e)
	return true, nil
}

func addLoader(e *Entry, ld Loader) {
	if ld == (Loader{}) || len(e.Loaders) >= MaxLoaders {
		return
	}
	for _, have := range e.Loaders {
		if have == ld {
			return
		}
	}
	e.Loaders = append(e.Loaders, ld)
}

// Approve adds entries (a fingerprint already listed keeps its entry and
// gains what the new one knows). It returns how many were new.
func (l *List) Approve(entries []Entry, now time.Time) (int, error) {
	added := 0
	for _, n := range entries {
		if e := l.Find(n.Fingerprint); e != nil {
			if e.Name == "" {
				e.Name = n.Name
			}
			if n.Note != "" {
				e.Note = n.Note
			}
			for _, ld := range n.Loaders {
				addLoader(e, ld)
			}
			continue
		}
		if len(l.Entries) >= MaxEntries {
			return added, fmt.Errorf("allowlist full (%d entries)", MaxEntries)
		}
		n.Source = "approve"
		if n.FirstSeen.IsZero() {
			n.FirstSeen = now
		}
		if n.LastSeen.IsZero() {
			n.LastSeen = now
		}
		l.Entries = append(l.Entries, n)
		added++
	}
	return added, nil
}

// Prune removes the entries last seen before t (an entry never seen counts
// from its first sighting or approval) and returns them.
func (l *List) Prune(t time.Time) []Entry {
	var keep, gone []Entry
	for _, e := range l.Entries {
		last := e.LastSeen
		if last.IsZero() {
			last = e.FirstSeen
		}
		if last.Before(t) {
			gone = append(gone, e)
		} else {
			keep = append(keep, e)
		}
	}
	l.Entries = keep
	return gone
}

// Difference is what changed from list A to list B.
type Difference struct {
	Added   []Entry `json:"added"`   // in B, not in A
	Removed []Entry `json:"removed"` // in A, not in B
}

// Diff compares two lists by fingerprint.
func Diff(a, b *List) Difference {
	var d Difference
	inA := map[Fingerprint]bool{}
	for _, e := range a.Entries {
		inA[e.Fingerprint] = true
	}
	inB := map[Fingerprint]bool{}
	for _, e := range b.Entries {
		inB[e.Fingerprint] = true
		if !inA[e.Fingerprint] {
			d.Added = append(d.Added, e)
		}
	}
	for _, e := range a.Entries {
		if !inB[e.Fingerprint] {
			d.Removed = append(d.Removed, e)
		}
	}
	sortEntries(d.Added)
	sortEntries(d.Removed)
	return d
}

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Fingerprint < es[j].Fingerprint })
}

// ParseDate reads a prune cut-off: RFC 3339, a date (YYYY-MM-DD, UTC), or
// a duration before now ("720h", "30d").
func ParseDate(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want a date (2026-01-31), an RFC 3339 time or an age (30d, 720h)", s)
}
