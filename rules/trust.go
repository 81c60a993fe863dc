package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrUntrustedFile is wrapped by CheckTrusted's errors.
var ErrUntrustedFile = errors.New("rules writable by someone other than root")

// CheckTrusted refuses rules that someone other than root (or the user
// running the agent) could change: the file or directory at path, every rule
// file in a directory (through its symlinks, as a Kubernetes ConfigMap
// volume presents them, and the directories they resolve into), and the
// directory holding a single file, must be owned by root or this user and
// not group- or world-writable. A world-writable directory with the sticky
// bit (/tmp) may hold a single rule file: others cannot replace it there.
func CheckTrusted(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	if !st.IsDir() {
		return checkFileAndDir(path)
	}
	if err := checkOwnerMode(path, false); err != nil {
		return err
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	for _, e := range entries {
		if ruleFileName(e.Name()) && isRegular(path, e) {
			if err := checkFileAndDir(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkFileAndDir checks a rule file where it really is, and its directory.
func checkFileAndDir(name string) error {
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	if err := checkOwnerMode(real, false); err != nil {
		return err
	}
	return checkOwnerMode(filepath.Dir(real), true)
}

func checkOwnerMode(p string, stickyOK bool) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	if uid, ok := fileOwner(st); ok && uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("rules %s: owned by uid %d, want root (or this user, uid %d): %w", p, uid, os.Geteuid(), ErrUntrustedFile)
	}
	m := st.Mode()
	if m.Perm()&0o022 != 0 && !(stickyOK && m&os.ModeSticky != 0 && st.IsDir()) {
		return fmt.Errorf("rules %s: mode %v lets group or others change it (chmod go-w): %w", p, m.Perm(), ErrUntrustedFile)
	}
	return nil
}
