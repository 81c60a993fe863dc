package output

import (
	"io/fs"
	"path/filepath"
	"syscall"
)

// walkCgroups maps each cgroup directory's inode number (its cgroup v2 id)
// to its path, up to max entries.
func walkCgroups(root string, max int) map[uint64]string {
	m := map[uint64]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if len(m) >= max {
			return filepath.SkipAll
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			rel, _ := filepath.Rel(root, p)
			m[st.Ino] = "/" + filepath.ToSlash(rel)
			if rel == "." {
				m[st.Ino] = "/"
			}
		}
		return nil
	})
	return m
}
