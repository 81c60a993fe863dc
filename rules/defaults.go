package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"sync"
)

//go:embed defaults/*.yaml
var defaultFiles embed.FS

var (
	defaultsOnce sync.Once
	defaultSet   *Set
	defaultErr   error
)

// DefaultSource names the embedded default rule set in Set.Source.
const DefaultSource = "defaults"

// Defaults returns the embedded default rule set (rules/defaults/*.yaml),
// used when no rules are given. The set is parsed once and shared: treat it
// as read-only.
func Defaults() (*Set, error) {
	defaultsOnce.Do(func() {
		defaultSet, defaultErr = loadFS(defaultFiles, "defaults")
		if defaultSet != nil {
			defaultSet.Source = DefaultSource
		}
	})
	return defaultSet, defaultErr
}

// MustDefaults is Defaults for callers that cannot go on without them; the
// embedded files are checked by the package's tests, so this cannot fail in
// a tested build.
func MustDefaults() *Set {
	s, err := Defaults()
	if err != nil {
		panic(fmt.Sprintf("embedded default rules are invalid: %v", err))
	}
	return s
}

func loadFS(fsys fs.FS, dir string) (*Set, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	d := &decoder{}
	var all []*Rule
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		d.file = "rules/" + n
		all = append(all, d.parseFile(data)...)
	}
	d.checkSet(all)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &Set{Rules: all}, nil
}
