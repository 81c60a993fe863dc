package rules

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds the rule set in force and replaces it atomically on reload:
// readers (Set) never wait and never see a half-loaded set, and a reload
// that fails leaves the previous set in force.
type Store struct {
	path string // file or directory; "" means the embedded defaults
	cur  atomic.Pointer[Set]

	mu        sync.Mutex // serialises reloads and guards the fields below
	stamp     string     // what the source looked like at the last load attempt
	lastErr   error
	listeners []func(*Set)
}

// ReloadEvent reports one reload attempt.
type ReloadEvent struct {
	Set    *Set  // the set in force afterwards (the old one when Err != nil)
	Err    error // why the new rules were refused
	Reason string
}

// NewStore loads the rules at path (a file or directory; "" for the
// embedded defaults). The first load must succeed: there is no old set to
// keep.
func NewStore(path string) (*Store, error) {
	s := &Store{path: path}
	stamp, _ := s.sourceStamp()
	set, err := s.load()
	if err != nil {
		return nil, err
	}
	s.stamp = stamp
	s.cur.Store(set)
	return s, nil
}

// Set returns the rule set in force. It is never nil and must not be modified.
func (s *Store) Set() *Set { return s.cur.Load() }

// Path is where the store loads rules from ("" for the defaults).
func (s *Store) Path() string { return s.path }

// LastError is the error of the last reload attempt, nil when it succeeded.
func (s *Store) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// OnReload registers fn to run after every successful reload, with the new
// set, before Reload returns (e.g. to recompile the kernel table).
func (s *Store) OnReload(fn func(*Set)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, fn)
}

func (s *Store) load() (*Set, error) {
	if s.path == "" {
		return Defaults()
	}
	// The agent enforces what these files say: someone who can change
	// them can switch enforcement off.
	if err := CheckTrusted(s.path); err != nil {
		return nil, err
	}
	return Load(s.path)
}

// Reload loads the rules again (on SIGHUP, say). On error the old set stays
// in force and the error says why.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp, _ := s.sourceStamp()
	return s.reloadLocked(stamp)
}

func (s *Store) reloadLocked(stamp string) error {
	s.stamp = stamp
	set, err := s.load()
	if err != nil {
		s.lastErr = fmt.Errorf("reload rules %s (keeping the %d rules in force): %w", s.describe(), len(s.Set().Rules), err)
		return s.lastErr
	}
	s.lastErr = nil
	s.cur.Store(set)
	for _, fn := range s.listeners {
		fn(set)
	}
	return nil
}

func (s *Store) describe() string {
	if s.path == "" {
		return DefaultSource
	}
	return s.path
}

// Watch polls the source every interval and reloads when a rule file
// changed (size, modification time, or the set of files in a directory),
// reporting each attempt to report. It returns when ctx is done.
func (s *Store) Watch(ctx context.Context, interval time.Duration, report func(ReloadEvent)) {
	if s.path == "" {
		<-ctx.Done() // the embedded defaults never change
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ev, changed := s.poll()
		if changed && report != nil {
			report(ev)
		}
	}
}

func (s *Store) poll() (ReloadEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp, err := s.sourceStamp()
	if err != nil {
		// The source vanished or became unreadable: report once per change.
		stamp = "error: " + err.Error()
	}
	if stamp == s.stamp {
		return ReloadEvent{}, false
	}
	rerr := s.reloadLocked(stamp)
	return ReloadEvent{Set: s.Set(), Err: rerr, Reason: "rule files changed"}, true
}

// sourceStamp summarises the rule files' identity cheaply (no reading).
func (s *Store) sourceStamp() (string, error) {
	if s.path == "" {
		return DefaultSource, nil
	}
	st, err := os.Stat(s.path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	add := func(name string, fi os.FileInfo) {
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", name, fi.Size(), fi.ModTime().UnixNano())
	}
	if !st.IsDir() {
		add(s.path, st)
		return fmt.Sprintf("%x", h.Sum(nil)), nil
	}
	entries, err := os.ReadDir(s.path)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if ruleFileName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(s.path, n)
		fi, err := os.Stat(p)
		if err != nil {
			continue // removed meanwhile: the next poll sees it
		}
		add(n, fi)
		// Where a name resolves to: a ConfigMap update swaps "..data" to a
		// new directory, whose files may have the old size and mtime.
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			fmt.Fprintf(h, "%s\x00", real)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
