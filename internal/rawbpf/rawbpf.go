// Package rawbpf issues bpf(BPF_PROG_LOAD) directly, for tests and test
// loaders that must submit exactly the bytes they hold (no library rewriting).
package rawbpf

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxAttempts bounds the retries on EAGAIN, as libbpf does.
const maxAttempts = 10

// ProgLoad runs BPF_PROG_LOAD with the attr at attr (size bytes) and
// returns the new program's fd. The verifier gives up with EAGAIN whenever
// a signal is pending for the loading thread (the Go runtime sends some), so
// EAGAIN is retried; any other error is returned as the kernel's errno.
// The caller keeps every buffer attr points to alive until it returns.
func ProgLoad(attr unsafe.Pointer, size uintptr) (int, error) {
	var err error
	for range maxAttempts {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(attr), size)
		if errno == 0 {
			return int(fd), nil
		}
		err = errno
		if !errors.Is(errno, unix.EAGAIN) {
			break
		}
	}
	return -1, err
}
