package output

import "sync"

// CgroupPaths turns cgroup v2 ids (the kernel's, in the loader section)
// into paths under the cgroup2 mount, for ContainerFromCgroup. It
// remembers at most max ids; a miss walks the hierarchy once and refreshes
// the whole cache, so a host with many containers costs one walk per new
// cgroup, not one per event.
type CgroupPaths struct {
	Root string // the cgroup2 mount, /sys/fs/cgroup
	Max  int

	mu    sync.Mutex
	paths map[uint64]string
}

// NewCgroupPaths resolves ids under root, remembering at most max of them.
func NewCgroupPaths(root string, max int) *CgroupPaths {
	return &CgroupPaths{Root: root, Max: max, paths: map[uint64]string{}}
}

// Path returns the cgroup's path relative to the mount ("/kubepods.slice/…"),
// or "" when id is 0 or no cgroup has it (gone, or cgroup v1).
func (c *CgroupPaths) Path(id uint64) string {
	if c == nil || id == 0 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.paths[id]; ok {
		return p
	}
	c.paths = walkCgroups(c.Root, c.Max)
	return c.paths[id]
}
