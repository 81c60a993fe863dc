//go:build linux && amd64

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// exeSegment is a read-only mapping of the agent's own executable.
type exeSegment struct {
	start, end uintptr
	perms      string
}

// exeReadOnlySegments lists, from maps (/proc/self/maps format), the
// private read-only mappings of the file exe: its code and read-only data.
// Writable mappings (data, the embedded BPF objects) are left out: a page
// written there exists only in this process.
func exeReadOnlySegments(maps io.Reader, exe string) ([]exeSegment, error) {
	var out []exeSegment
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != exe {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps: bad range %q", f[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("maps: bad range %q", f[0])
		}
		out = append(out, exeSegment{uintptr(start), uintptr(end), perms})
	}
	return out, sc.Err()
}

// releaseStartupPages drops the agent's read-only executable pages from its
// page tables once start-up is done (MADV_DONTNEED). Start-up touches most
// of the binary's code and read-only data (~15 MB of the idle RSS: rule
// parsing, BTF, the inventory), an idle agent few of them. The pages stay
// in the page cache; those the agent runs again fault back in from it (a
// minor fault each). Returns the bytes released from the page tables.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	segs, err := exeReadOnlySegments(f, exe)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range segs {
		// The addresses are mappings of this process, not Go memory:
		// passed to the kernel as numbers.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED); errno != 0 {
			return n, fmt.Errorf("madvise %x-%x (%s): %w", s.start, s.end, s.perms, errno)
		}
		n += int64(s.end - s.start)
	}
	return n, nil
}
