package sensor

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// maxHashedExe bounds the executables hashed for loader.exe_identity: a
// bigger one is left without a sha256 (an identity naming one never matches).
const maxHashedExe = 1 << 30

// exeHasher computes the sha256 of a loader's executable, the part of its
// identity the kernel cannot compute at load time. The file is reached
// through /proc/PID/exe and must be the one the kernel saw (same inode and
// device); hashes are cached per file version (inode, device, size, mtime,
// ctime: any write changes ctime).
type exeHasher struct {
	mu    sync.Mutex
	cache map[exeVersion]string
}

type exeVersion struct {
	ino, size    uint64
	dev          uint32
	mtime, ctime unix.Timespec
}

// kernelDev is the kernel's dev_t encoding (MKDEV) of a stat st_dev.
func kernelDev(st uint64) uint32 {
	return unix.Major(st)<<20 | unix.Minor(st)
}

// hash returns the sha256 of pid's executable when it is still the file
// the kernel named by (ino, dev), else "". A cached version costs one
// stat of /proc/PID/exe (the file the loader runs, as open would reach
// it); only a miss opens and reads the file, and checks it again on the
// open file.
func (x *exeHasher) hash(pid uint32, ino uint64, dev uint32) string {
	if ino == 0 {
		return ""
	}
	path := "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/exe"
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	v, ok := fileVersion(&st, ino, dev)
	if !ok {
		return ""
	}
	x.mu.Lock()
	sum, ok := x.cache[v]
	x.mu.Unlock()
	if ok {
		return sum
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ""
	}
	if v, ok = fileVersion(&st, ino, dev); !ok {
		return ""
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	sum = hex.EncodeToString(h.Sum(nil))
	x.mu.Lock()
	if x.cache == nil || len(x.cache) > 4096 {
		x.cache = map[exeVersion]string{}
	}
	x.cache[v] = sum
	x.mu.Unlock()
	return sum
}

// fileVersion is st's cache key when st is the file the kernel named by
// (ino, dev) and small enough to hash.
func fileVersion(st *unix.Stat_t, ino uint64, dev uint32) (exeVersion, bool) {
	v := exeVersion{ino: st.Ino, dev: kernelDev(st.Dev), size: uint64(st.Size), mtime: st.Mtim, ctime: st.Ctim}
	return v, v.ino == ino && v.dev == dev && st.Size <= maxHashedExe
}
