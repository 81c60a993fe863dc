//go:build linux

package testutils

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Cgroup is a fresh cgroup v2 made for one test: tests that start an
// enforcing sensor scope it to their own loaders with it, so that other
// processes of a shared host keep loading what they load.
type Cgroup struct {
	Path string
	ID   uint64 // what bpf_get_current_cgroup_id returns inside it
	fd   int
}

// cgroup2Root is the first cgroup2 mount in mountinfo.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// … mount point (field 5) … " - " fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return fields[4], nil
		}
	}
	return "", fmt.Errorf("no cgroup2 mount in /proc/self/mountinfo")
}

// NewCgroup makes a cgroup v2 named after the test (and name) and removes
// it at cleanup, once the processes started in it are gone.
func NewCgroup(t testing.TB, name string) *Cgroup {
	t.Helper()
	root, err := cgroup2Root()
	if err != nil {
		t.Fatalf("cgroup v2: %v", err)
	}
	path := filepath.Join(root, fmt.Sprintf("ebpf-sentry-test-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("cgroup v2: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		os.Remove(path)
		t.Fatalf("cgroup v2: %v", err)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(path)
		t.Fatalf("cgroup v2: %v", err)
	}
	cg := &Cgroup{Path: path, ID: st.Ino, fd: fd}
	t.Cleanup(func() {
		syscall.Close(fd)
		os.Remove(path)
	})
	return cg
}

// Start puts cmd into the cgroup from its first instruction (clone3
// CLONE_INTO_CGROUP): nothing it loads escapes the cgroup.
func (c *Cgroup) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = c.fd
	return cmd.Start()
}

// Enter moves the calling process into the cgroup until the test ends,
// when it goes back where it was.
func (c *Cgroup) Enter(t testing.TB) {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var back string
	for _, line := range strings.Split(string(self), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			back = rest
		}
	}
	root, err := cgroup2Root()
	if err != nil || back == "" {
		t.Fatalf("cgroup v2 of this process: %v (%q)", err, self)
	}
	pid := []byte(fmt.Sprint(os.Getpid()))
	if err := os.WriteFile(filepath.Join(c.Path, "cgroup.procs"), pid, 0); err != nil {
		t.Fatalf("enter cgroup %s: %v", c.Path, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(root, back, "cgroup.procs"), pid, 0); err != nil {
			t.Errorf("leave cgroup %s: %v", c.Path, err)
		}
	})
}
