package sensor

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
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
