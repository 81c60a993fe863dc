package sensor

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// The exe identity is the sha256 of the file the kernel named, whether
// computed or cached, and nothing for another file.
func TestExeHashIsTheKernelsFileOrNothing(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	want := hex.EncodeToString(sum[:])
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	pid, dev := uint32(os.Getpid()), kernelDev(st.Dev)
	var x exeHasher
	if got := x.hash(pid, st.Ino, dev); got != want {
		t.Fatalf("first hash %q, want %q", got, want)
	}
	if got := x.hash(pid, st.Ino, dev); got != want {
		t.Fatalf("cached hash %q, want %q", got, want)
	}
	if got := x.hash(pid, st.Ino+1, dev); got != "" {
		t.Fatalf("another inode than the running file's: %q, want none", got)
	}
	if got := x.hash(pid, st.Ino, dev+1); got != "" {
		t.Fatalf("another device than the running file's: %q, want none", got)
	}
}

// A loader that exited before the reader took its load has no exe_sha256,
// even when the same (inode, device) was hashed before: the kernel's record
// names the file by inode and device only, which a file rewritten in place
// (or a new file on a freed inode) shares, so the cache is consulted only
// through /proc/PID/exe (docs/EVENTS.md, "exe_sha256 can be absent").
func TestExeHashOfAnExitedLoaderIsNothing(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	var x exeHasher
	if x.hash(uint32(os.Getpid()), st.Ino, kernelDev(st.Dev)) == "" {
		t.Fatal("no hash of this running test binary")
	}
	// the same file, run by a process that has exited and been reaped
	child := exec.Command(exe, "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	if got := x.hash(uint32(child.Process.Pid), st.Ino, kernelDev(st.Dev)); got != "" {
		t.Fatalf("exited loader %d: hash %q from the cache, want none", child.Process.Pid, got)
	}
}
