package rules

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Load reads rules from a file or from every *.yaml / *.yml file of a
// directory (not recursive, in name order).
func Load(p string) (*Set, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	if st.IsDir() {
		return LoadDir(p)
	}
	return LoadFile(p)
}

// LoadFile reads one rule file.
func LoadFile(name string) (*Set, error) {
	data, err := readCapped(name)
	if err != nil {
		return nil, err
	}
	return Parse(name, data)
}

func readCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	defer f.Close()
	// Read one byte past the cap so that a huge file is refused without
	// reading it all.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, &LoadError{Errs: []*FieldError{{Pos: Position{name, 1, 1},
			Msg: fmt.Sprintf("file is larger than %d bytes: %v", MaxFileSize, ErrTooLarge), Err: ErrTooLarge}}}
	}
	return data, nil
}

// LoadDir reads every *.yaml and *.yml file of dir as one set; rule ids
// must be unique across the files.
func LoadDir(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	var files []string
	for _, e := range entries {
		if ruleFileName(e.Name()) && isRegular(dir, e) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, &LoadError{Errs: []*FieldError{{Pos: Position{dir, 1, 1},
			Msg: "directory has no *.yaml or *.yml files: " + ErrEmpty.Error(), Err: ErrEmpty}}}
	}
	if len(files) > MaxFiles {
		return nil, &LoadError{Errs: []*FieldError{{Pos: Position{dir, 1, 1},
			Msg: fmt.Sprintf("%d rule files, at most %d: %v", len(files), MaxFiles, ErrTooLarge), Err: ErrTooLarge}}}
	}
	sort.Strings(files)
	d := &decoder{}
	var all []*Rule
	for _, f := range files {
		data, err := readCapped(f)
		if err != nil {
			var le *LoadError
			if errors.As(err, &le) {
				d.errs = append(d.errs, le.Errs...)
				continue
			}
			return nil, err
		}
		d.file = f
		all = append(all, d.parseFile(data)...)
	}
	d.checkSet(all)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &Set{Rules: all, Source: dir}, nil
}

// ruleFileName says whether a directory entry is a rule file by name:
// *.yaml or *.yml, not hidden (a Kubernetes ConfigMap volume keeps its
// real files in hidden "..<timestamp>" directories).
func ruleFileName(name string) bool {
	ext := filepath.Ext(name)
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

// isRegular says whether e is a regular file or a symlink to one: a
// ConfigMap volume presents each key as a symlink through "..data".
func isRegular(dir string, e os.DirEntry) bool {
	if e.Type().IsRegular() {
		return true
	}
	if e.Type()&os.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && st.Mode().IsRegular()
}

// Parse reads rules from the contents of a file; name is used in errors.
func Parse(name string, data []byte) (*Set, error) {
	d := &decoder{file: name}
	rules := d.parseFile(data)
	d.checkSet(rules)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &Set{Rules: rules, Source: name}, nil
}
