package output

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The cgroup of this test process, by its kernel id, resolves to the path
// /proc/self/cgroup shows.
func TestCgroupPathsResolveOwnCgroup(t *testing.T) {
	var sfs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no cgroup v2 at /sys/fs/cgroup")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "0::"))
	var st unix.Stat_t
	if err := unix.Stat("/sys/fs/cgroup"+strings.TrimSuffix(want, "/"), &st); err != nil {
		t.Fatal(err)
	}
	c := NewCgroupPaths("/sys/fs/cgroup", 100000)
	if got := c.Path(st.Ino); got != want {
		t.Fatalf("Path(%d) = %q, want %q", st.Ino, got, want)
	}
	if got := c.Path(0); got != "" {
		t.Fatalf("Path(0) = %q", got)
	}
}
