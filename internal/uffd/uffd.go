package uffd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Values from linux/userfaultfd.h (x/sys/unix has none of them);
// TestConstantsMatchTheKernelHeader checks them against the header.
const (
	uffdAPI               = 0xaa
	uffdEventPagefault    = 0x12
	uffdioRegisterMissing = 1 << 0

	// ioctl numbers within type 0xaa (_UFFDIO_*).
	nrRegister = 0x00
	nrWake     = 0x02
	nrCopy     = 0x03
	nrAPI      = 0x3f

	// _IOWR(0xaa, nr, struct) and _IOR(0xaa, nr, struct): direction in
	// bits 30-31, struct size in 16-29, type 0xaa in 8-15, nr in 0-7.
	iocRead, iocReadWrite = 2 << 30, 3 << 30
	ioctlAPI              = iocReadWrite | uint(unsafe.Sizeof(uffdioAPI{}))<<16 | 0xaa<<8 | nrAPI
	ioctlRegister         = iocReadWrite | uint(unsafe.Sizeof(uffdioRegister{}))<<16 | 0xaa<<8 | nrRegister
	ioctlWake             = iocRead | uint(unsafe.Sizeof(uffdioRange{}))<<16 | 0xaa<<8 | nrWake
	ioctlCopy             = iocReadWrite | uint(unsafe.Sizeof(uffdioCopy{}))<<16 | 0xaa<<8 | nrCopy

	msgSize = 32 // sizeof(struct uffd_msg)
)

type uffdioAPI struct{ API, Features, Ioctls uint64 }

type uffdioRange struct{ Start, Len uint64 }

type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

type uffdioCopy struct {
	Dst, Src, Len, Mode uint64
	Copy                int64 // bytes copied, or -errno; written by the kernel
}

// Stats says what a Region's handler did.
type Stats struct {
	Faults  int           // pages supplied: one fault each
	Held    int           // faults held (for the stall or by HoldFirstFault) before they were served
	Stalled time.Duration // from reading the first fault to resolving it
}

// Region is page-aligned anonymous memory that reads as the contents given
// to New once its handler has supplied each page. Nothing in this process
// may touch the memory: only the kernel, on behalf of a syscall. A Go read
// of it would block a thread that holds a P, and with GOMAXPROCS=1 the
// handler would never run.
type Region struct {
	mem   []byte // the registered mapping
	pre   []byte // ordinary pages mapped just before mem (NewWithPrefix)
	whole []byte // the whole mapping, pre and mem
	src   []byte // contents, padded to whole pages
	stall time.Duration

	uffd         int // owned by the handler, which closes it on return
	stopR, stopW int // a pipe: closing stopW ends the handler
	done         chan struct{}
	closeOnce    sync.Once

	mu      sync.Mutex
	stats   Stats
	err     error  // the handler's, reported by Close
	onFault func() // OnFirstFault's
	hold    func() // HoldFirstFault's
}

// HoldFirstFault makes the handler call hold when the first fault arrives,
// instead of sleeping for the stall given to New: the faulting syscall
// waits until hold returns (then OnFirstFault's function runs and the page
// is supplied). A test that must act while the kernel waits uses it as a
// barrier, where a fixed stall would only make overlap likely. Set it
// before anything can touch the memory.
func (r *Region) HoldFirstFault(hold func()) {
	r.mu.Lock()
	r.hold = hold
	r.mu.Unlock()
}

// OnFirstFault makes the handler call f when the first fault arrives, after
// the stall and before the page is supplied: while the faulting syscall
// waits. Set it before anything can touch the memory.
func (r *Region) OnFirstFault(f func()) {
	r.mu.Lock()
	r.onFault = f
	r.mu.Unlock()
}

// New maps len(contents) bytes (rounded up to pages) registered with a new
// userfaultfd and starts a handler that supplies each page on its first
// fault. The first fault is held for stall before it is resolved; later
// faults are resolved at once.
func New(contents []byte, stall time.Duration) (*Region, error) {
	return NewWithPrefix(0, contents, stall)
}

// NewWithPrefix is New with prefix bytes (rounded up to pages) of ordinary,
// resident memory mapped right before the region (Prefix): a value placed at
// the prefix's end runs on into the region, so the kernel reads its first
// part at once and stalls on the rest.
func NewWithPrefix(prefix int, contents []byte, stall time.Duration) (*Region, error) {
	if len(contents) == 0 {
		return nil, errors.New("uffd: no contents to serve")
	}
	page := os.Getpagesize()
	size := (len(contents) + page - 1) / page * page
	src := make([]byte, size)
	copy(src, contents)

	// O_NONBLOCK: the handler polls, so that Close can stop it.
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if errno != 0 {
		if errno == unix.EPERM {
			return nil, fmt.Errorf("uffd: userfaultfd: %w (serving kernel faults needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)", errno)
		}
		return nil, fmt.Errorf("uffd: userfaultfd: %w", errno)
	}
	r := &Region{src: src, stall: stall, uffd: int(fd), stopR: -1, stopW: -1, done: make(chan struct{})}
	if err := r.setup((prefix+page-1)/page*page, size); err != nil {
		r.release()
		return nil, err
	}
	go r.serve(r.uffd)
	r.uffd = -1 // the handler owns it now
	return r, nil
}

func (r *Region) setup(prefix, size int) error {
	api := uffdioAPI{API: uffdAPI}
	if err := ioctl(r.uffd, ioctlAPI, unsafe.Pointer(&api)); err != nil {
		return fmt.Errorf("uffd: UFFDIO_API: %w", err)
	}
	whole, err := unix.Mmap(-1, 0, prefix+size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("uffd: mmap %d bytes: %w", prefix+size, err)
	}
	r.whole, r.pre, r.mem = whole, whole[:prefix:prefix], whole[prefix:]
	reg := uffdioRegister{Range: uffdioRange{Start: uint64(r.Addr()), Len: uint64(size)}, Mode: uffdioRegisterMissing}
	if err := ioctl(r.uffd, ioctlRegister, unsafe.Pointer(&reg)); err != nil {
		return fmt.Errorf("uffd: UFFDIO_REGISTER %d bytes at %#x: %w", size, r.Addr(), err)
	}
	if reg.Ioctls&(1<<nrCopy) == 0 {
		return fmt.Errorf("uffd: the registered range offers no UFFDIO_COPY (ioctls %#x)", reg.Ioctls)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("uffd: stop pipe: %w", err)
	}
	r.stopR, r.stopW = p[0], p[1]
	return nil
}

// Addr is the address of the region's first byte, for a syscall argument.
func (r *Region) Addr() uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(r.mem))) }

// Prefix is the ordinary memory right before the region (NewWithPrefix).
func (r *Region) Prefix() []byte { return r.pre }

// Len is the region's size: len(contents) rounded up to whole pages.
func (r *Region) Len() int { return len(r.mem) }

// Stats reports the faults served so far.
func (r *Region) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close stops the handler, unmaps the region and returns the handler's
// error, if any; later calls return the same. A syscall still reading the region must have returned:
// once the userfaultfd is closed its pages read as zeros.
func (r *Region) Close() error {
	r.closeOnce.Do(func() {
		unix.Close(r.stopW)
		<-r.done
		r.release()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// release frees what setup acquired; the handler, if it ran, has already
// closed the userfaultfd.
func (r *Region) release() {
	if r.uffd >= 0 {
		unix.Close(r.uffd)
		r.uffd = -1
	}
	if r.stopR >= 0 {
		unix.Close(r.stopR)
		r.stopR = -1
	}
	if r.whole != nil {
		unix.Munmap(r.whole)
		r.whole, r.pre, r.mem = nil, nil, nil
	}
}

// serve resolves faults until the stop pipe closes or resolving fails. It
// closes the userfaultfd on return, which wakes any faulting thread still
// waiting (its page then reads as zeros) rather than leave it blocked.
func (r *Region) serve(uffd int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(r.done)
	defer unix.Close(uffd)
	if err := r.loop(uffd); err != nil {
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
	}
}

func (r *Region) loop(uffd int) error {
	base := uint64(r.Addr())
	page := uint64(os.Getpagesize())
	var buf [16 * msgSize]byte
	fds := []unix.PollFd{{Fd: int32(uffd), Events: unix.POLLIN}, {Fd: int32(r.stopR), Events: unix.POLLIN}}
	first := true
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("uffd: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		n, err := unix.Read(uffd, buf[:])
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("uffd: read fault messages: %w", err)
		}
		for off := 0; off+msgSize <= n; off += msgSize {
			msg := buf[off : off+msgSize]
			if msg[0] != uffdEventPagefault {
				continue // no other events were asked for
			}
			addr := binary.NativeEndian.Uint64(msg[16:24]) &^ (page - 1)
			if addr < base || addr-base >= uint64(len(r.src)) {
				return fmt.Errorf("uffd: fault at %#x, outside the region %#x+%d", addr, base, len(r.src))
			}
			start := time.Now()
			if first {
				r.mu.Lock()
				f, hold := r.onFault, r.hold
				r.mu.Unlock()
				if hold != nil {
					hold()
				} else {
					time.Sleep(r.stall)
				}
				if f != nil {
					f()
				}
			}
			if err := resolve(uffd, addr, r.src[addr-base:addr-base+page]); err != nil {
				return err
			}
			r.mu.Lock()
			r.stats.Faults++
			if first {
				r.stats.Held++
				r.stats.Stalled = time.Since(start)
			}
			r.mu.Unlock()
			first = false
		}
	}
}

// resolve supplies the page at addr with contents.
func resolve(uffd int, addr uint64, contents []byte) error {
	for {
		c := uffdioCopy{Dst: addr, Src: uint64(uintptr(unsafe.Pointer(&contents[0]))), Len: uint64(len(contents))}
		err := ioctl(uffd, ioctlCopy, unsafe.Pointer(&c))
		runtime.KeepAlive(contents)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EAGAIN):
			// The address space changed under the copy (or only part of
			// the page was copied): try again.
			continue
		case errors.Is(err, unix.EEXIST):
			// Two threads faulted on the page and the first fault's copy
			// filled it: wake whoever still waits.
			w := uffdioRange{Start: addr, Len: uint64(len(contents))}
			if err := ioctl(uffd, ioctlWake, unsafe.Pointer(&w)); err != nil {
				return fmt.Errorf("uffd: UFFDIO_WAKE at %#x: %w", addr, err)
			}
			return nil
		default:
			return fmt.Errorf("uffd: UFFDIO_COPY %d bytes to %#x: %w", len(contents), addr, err)
		}
	}
}

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// WithSignalsBlocked runs f on one OS thread with every blocking signal
// blocked. A signal that arrives while the kernel waits for a fault in a
// syscall's copy_from_user ends the wait, and the syscall fails with EFAULT
// instead of stalling; SIGKILL still ends the process.
func WithSignalsBlocked(f func()) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	all := unix.Sigset_t{}
	// Val is [16]uint64 on 64-bit arches and [32]uint32 on 386: complement
	// each zero word, whatever its width, to set every bit.
	for i := range all.Val {
		all.Val[i] = ^all.Val[i]
	}
	var old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		return fmt.Errorf("uffd: block signals: %w", err)
	}
	f()
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil); err != nil {
		return fmt.Errorf("uffd: restore the signal mask: %w", err)
	}
	return nil
}
