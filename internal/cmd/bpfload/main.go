// Command bpfload is the sensor's end-to-end test loader: it submits raw
// instruction streams with bpf(BPF_PROG_LOAD) exactly as given (no library
// rewriting them), and prints one JSON line per load. Tests run it as a
// separate process so that the sensor sees a foreign loader it may kill.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/uffd"
)

type result struct {
	PID   int    `json:"pid"`
	TID   int    `json:"tid"`
	Ret   int    `json:"ret"`             // fd, or -errno
	ID    uint32 `json:"id,omitempty"`    // prog id when loaded
	Pin   string `json:"pin,omitempty"`   // race mode: path pinned before the kill
	Error string `json:"error,omitempty"` // errno text
	// Time in bpf(BPF_PROG_LOAD), retries on EAGAIN included.
	SyscallNS int64 `json:"syscall_ns"`
	// -inner: the syscall program that loaded it from inside the kernel.
	LoaderID  uint32 `json:"loader_id,omitempty"`
	LoaderTag string `json:"loader_tag,omitempty"`
	// -uffd-stall, first load only: how long the handler held the kernel's
	// first fault on the instructions, and how many pages it served
	// (-fd-array-uffd, every load: pages of its fd_array served).
	StalledNS  int64 `json:"stalled_ns,omitempty"`
	UffdFaults int   `json:"uffd_faults,omitempty"`
	UffdHeld   int   `json:"uffd_held,omitempty"` // of those, faults held before they were served
}

func main() {
	insnsPath := flag.String("insns", "", "file with raw instructions (8 bytes each); several files separated by commas (unless the whole argument names a file) are loaded one after the other, each -count times, by this one process")
	gen := flag.Int("gen", 0, "instead of -insns: n-1 times r0 = 0, then exit")
	name := flag.String("name", "bpfload", "program name (≤ 15 bytes)")
	typ := flag.Uint("type", 5, "enum bpf_prog_type (5: tracepoint)")
	license := flag.String("license", "GPL", "license")
	count := flag.Int("count", 1, "loads to perform")
	keep := flag.Bool("keep", false, "keep fds open until stdin closes")
	race := flag.String("race", "", "a second thread pins every new fd at this bpffs path prefix while the load runs")
	attachType := flag.Uint("attach-type", 0, "expected_attach_type")
	attachBTFID := flag.Uint("attach-btf-id", 0, "attach_btf_id (a vmlinux BTF type id)")
	flags := flag.Uint("flags", 0, "prog_flags")
	flip := flag.Int("flip", -1, "a second thread keeps toggling bit 0 of this instruction's imm while the loads run (a time-of-check to time-of-use race)")
	flipInJudge := flag.Int("flip-in-judge", -1, "every load passes instructions whose first part (up to and including this instruction) ends an ordinary page and whose rest starts a userfaultfd page; a hook that reads them in a sleepable program (lsm.s/bpf's bpf_copy_from_user) faults on the second page after reading the first, and the fault handler then toggles bit 0 of this instruction's imm before serving it: the kernel's later copy differs from the judged one, deterministically")
	flipInCopy := flag.Int("flip-in-copy", -1, "every load passes a bpf_attr whose zero tail sits in fresh userfaultfd memory; while the kernel waits for it (after the syscall's entry, before it copies the attr and then the instructions) the fault handler toggles bit 0 of this instruction's imm: a deterministic time-of-check to time-of-use race")
	progArray := flag.String("prog-array", "", "a pinned BPF_MAP_TYPE_PROG_ARRAY: its fd goes into every ld_imm64 map-fd pseudo instruction (src_reg 1) of the program")
	mapPins := flag.String("maps", "", "pinned maps, separated by commas: a ld_imm64 map-fd pseudo instruction (src_reg 1) whose imm is i gets the fd of the i-th (with -prog-array, that one is then only the -tail-slot target)")
	badWrites := flag.Bool("bad-writes", false, "after the loads, two writes that fail: an update of map fd 9999 (not open) and, with -prog-array, of slot 0 of that array with program fd 9999; their errnos go to stderr")
	tailSlot := flag.Int("tail-slot", -1, "with -prog-array: store each loaded program at this index of the array (a tail-call target)")
	uffdStall := flag.Duration("uffd-stall", 0, "the first load's instructions sit in userfaultfd-registered memory: the kernel's first read of them blocks this long inside the syscall (0: off)")
	uffdHold := flag.String("uffd-hold", "", "with -uffd-stall: when the kernel's first read of the instructions faults, create DIR/fault and hold the fault until DIR/release exists, instead of for the stall (a barrier for a test that acts while the load waits)")
	comm := flag.String("comm", "", "rename the loading thread first (prctl PR_SET_NAME), as a loader posing as another program would")
	mapWriteID := flag.Uint("map-write-id", 0, "instead of loading: get an fd on this map id and write zeros at key 0 (-value-size bytes), as an attacker of the sensor's maps would")
	valueSize := flag.Uint("value-size", 0, "with -map-write-id: the map's value size")
	attachProgID := flag.Uint("attach-to-prog-id", 0, "instead of loading: get an fd on this program id and attach to it (-attach-how), as an attacker of the sensor's programs would")
	attachHow := flag.String("attach-how", "fentry", "with -attach-to-prog-id: fentry or freplace (a load with attach_prog_fd), or link (BPF_LINK_CREATE with target_fd)")
	signalPID := flag.Int("signal-pid", 0, "instead of loading: send -signal to this pid with kill(2)")
	signalNum := flag.Int("signal", 15, "with -signal-pid: the signal number")
	detachLinkID := flag.Uint("detach-link-id", 0, "instead of loading: get an fd on this link id and issue BPF_LINK_DETACH on it, as an attacker of the sensor's links would")
	fakeLinkID := flag.Uint("fake-link-id", 0, "instead of loading: load a socket filter whose expected_attach_type is this number (the kernel accepts any for that type; it sits where a link keeps its id) and issue BPF_LINK_DETACH on the program's fd, which is no link")
	mapIDs := flag.String("map-ids", "", "instead of -maps: map ids, separated by commas, opened with BPF_MAP_GET_FD_BY_ID (a map passed by id rather than by a pin)")
	openPins := flag.String("open-pins", "", "pinned maps or programs, separated by commas, opened with BPF_OBJ_GET before the loads and kept open")
	pinProgs := flag.String("pin-progs", "", "pin each loaded program at this bpffs path followed by _<n> (n counts the loads from 0)")
	fdArrayUffd := flag.Bool("fd-array-uffd", false, "with -fd-array: every load passes its fd_array in a fresh userfaultfd-registered page, supplied at its first fault: a read that cannot fault (bpf_probe_read_user) finds it absent, one that can (bpf_copy_from_user, the kernel's own) gets the fds; the line's uffd_faults says how many pages were supplied")
	fdArray := flag.Bool("fd-array", false, "with -maps, -map-ids or -prog-array: pass the map fds in attr.fd_array and turn every ld_imm64 map-fd slot (src_reg 1) into an fd_array index (BPF_PSEUDO_MAP_IDX, src_reg 5; kernel 5.14+), as light skeletons do")
	inner := flag.Bool("inner", false, "load from inside the kernel, as a light skeleton does: a syscall program calls bpf_sys_bpf(BPF_PROG_LOAD) in this process's BPF_PROG_TEST_RUN, with the instructions and license in the run's context (kernel memory); the line names the loader program (loader_id, loader_tag)")
	flag.Parse()

	if *mapWriteID != 0 {
		mapWrite(uint32(*mapWriteID), uint32(*valueSize))
		return
	}
	if *attachProgID != 0 {
		attachToProg(uint32(*attachProgID), *attachHow)
		return
	}
	if *signalPID != 0 {
		sendSignal(*signalPID, *signalNum)
		return
	}
	if *fakeLinkID != 0 {
		detachFakeLink(uint32(*fakeLinkID))
		return
	}
	if *detachLinkID != 0 {
		detachLink(uint32(*detachLinkID))
		return
	}

	var insns []byte
	var more [][]byte // the files after the first (-insns a,b)
	switch {
	case *insnsPath != "":
		paths := strings.Split(*insnsPath, ",")
		if _, err := os.Stat(*insnsPath); err == nil {
			paths = []string{*insnsPath} // one file whose name has a comma (a test's temp dir)
		}
		for i, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				fatal(err)
			}
			if len(b)%8 != 0 || len(b) == 0 {
				fatal(fmt.Errorf("%s: %d bytes of instructions: not a whole number of 8-byte slots", p, len(b)))
			}
			if i == 0 {
				insns = b
			} else {
				more = append(more, b)
			}
		}
	case *gen > 0:
		insns = make([]byte, *gen*8)
		for i := 0; i < *gen-1; i++ {
			insns[i*8] = 0xb7 // r0 = 0
		}
		insns[(*gen-1)*8] = 0x95 // exit
	default:
		fatal(fmt.Errorf("give -insns or -gen"))
	}
	if len(insns)%8 != 0 || len(insns) == 0 {
		fatal(fmt.Errorf("%d bytes of instructions: not a whole number of 8-byte slots", len(insns)))
	}
	arrayFD := -1
	var fdArr []int32 // -fd-array: attr.fd_array
	if *openPins != "" {
		for _, p := range strings.Split(*openPins, ",") {
			if _, err := objGet(p); err != nil {
				fatal(fmt.Errorf("-open-pins %s: %w", p, err))
			}
		}
	}
	if *mapPins != "" && *mapIDs != "" {
		fatal(fmt.Errorf("give -maps or -map-ids, not both"))
	}
	if *mapPins != "" || *mapIDs != "" {
		var fds []int
		if *mapPins != "" {
			for _, p := range strings.Split(*mapPins, ",") {
				fd, err := objGet(p)
				if err != nil {
					fatal(fmt.Errorf("-maps %s: %w", p, err))
				}
				fds = append(fds, fd)
			}
		} else {
			for _, v := range strings.Split(*mapIDs, ",") {
				id, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					fatal(fmt.Errorf("-map-ids %q: %w", v, err))
				}
				fd, err := mapFDByID(uint32(id))
				if err != nil {
					fatal(fmt.Errorf("-map-ids %d: %w", id, err))
				}
				fds = append(fds, fd)
			}
		}
		for _, b := range append([][]byte{insns}, more...) {
			for i := 0; i+16 <= len(b); i += 8 {
				if b[i] == 0x18 && b[i+1]>>4 == 1 {
					n := binary.LittleEndian.Uint32(b[i+4:])
					if int(n) >= len(fds) {
						fatal(fmt.Errorf("-maps: instruction %d names map %d of %d", i/8, n, len(fds)))
					}
					if *fdArray {
						b[i+1] = b[i+1]&0x0f | 5<<4 // the index n stays in imm
					} else {
						binary.LittleEndian.PutUint32(b[i+4:], uint32(fds[n]))
					}
					i += 8
				}
			}
		}
		for _, fd := range fds {
			fdArr = append(fdArr, int32(fd))
		}
	}
	if *progArray != "" {
		fd, err := objGet(*progArray)
		if err != nil {
			fatal(fmt.Errorf("-prog-array %s: %w", *progArray, err))
		}
		arrayFD = fd
		for _, b := range append([][]byte{insns}, more...) {
			if *mapPins != "" {
				break
			}
			for i := 0; i+16 <= len(b); i += 8 {
				if b[i] == 0x18 && b[i+1]>>4 == 1 { // ld_imm64 with BPF_PSEUDO_MAP_FD
					if *fdArray {
						b[i+1] = b[i+1]&0x0f | 5<<4 // BPF_PSEUDO_MAP_IDX 0
						binary.LittleEndian.PutUint32(b[i+4:], 0)
					} else {
						binary.LittleEndian.PutUint32(b[i+4:], uint32(fd))
					}
					i += 8
				}
			}
		}
		if *mapPins == "" {
			fdArr = []int32{int32(fd)}
		}
	} else if *tailSlot >= 0 {
		fatal(fmt.Errorf("-tail-slot needs -prog-array"))
	}
	lic := append([]byte(*license), 0)
	attr := rawbpf.ProgLoadAttr{ProgType: uint32(*typ), InsnCnt: uint32(len(insns) / 8), ExpectedAttachType: uint32(*attachType),
		AttachBTFID: uint32(*attachBTFID), ProgFlags: uint32(*flags)}
	attr.Insns = uint64(uintptr(unsafe.Pointer(&insns[0])))
	attr.License = uint64(uintptr(unsafe.Pointer(&lic[0])))
	attr.SetName(*name)
	if *fdArray {
		if len(fdArr) == 0 {
			fatal(fmt.Errorf("-fd-array needs -maps, -map-ids or -prog-array"))
		}
		attr.FdArray = uint64(uintptr(unsafe.Pointer(&fdArr[0])))
	}

	var stall *uffd.Region
	if *uffdStall > 0 {
		if *flip >= 0 {
			// The flipper writes the ordinary buffer, which the stalled
			// load does not read.
			fatal(fmt.Errorf("-uffd-stall and -flip cannot be combined"))
		}
		r, err := uffd.New(insns, *uffdStall)
		if err != nil {
			fatal(fmt.Errorf("-uffd-stall: %w", err))
		}
		if *uffdHold != "" {
			r.HoldFirstFault(func() { holdUntilReleased(*uffdHold) })
		}
		stall = r
	} else if *uffdHold != "" {
		fatal(fmt.Errorf("-uffd-hold needs -uffd-stall"))
	}

	if *flipInCopy >= 0 && (*flip >= 0 || stall != nil) {
		fatal(fmt.Errorf("-flip-in-copy cannot be combined with -flip or -uffd-stall"))
	}
	if *flipInJudge >= 0 && (*flip >= 0 || stall != nil || *flipInCopy >= 0) {
		fatal(fmt.Errorf("-flip-in-judge cannot be combined with -flip, -flip-in-copy or -uffd-stall"))
	}
	if *flipInJudge >= len(insns)/8-1 {
		fatal(fmt.Errorf("-flip-in-judge %d: the program has %d instructions; at least one must follow it", *flipInJudge, len(insns)/8))
	}
	if *flipInCopy >= len(insns)/8 {
		fatal(fmt.Errorf("-flip-in-copy %d: the program has %d instructions", *flipInCopy, len(insns)/8))
	}

	if *fdArrayUffd && (!*fdArray || *flipInJudge >= 0 || *flipInCopy >= 0 || stall != nil || *inner || wantFull()) {
		fatal(fmt.Errorf("-fd-array-uffd needs -fd-array, and cannot be combined with -flip-in-*, -uffd-stall, -inner or the newer attr fields"))
	}
	if *inner && (*flipInJudge >= 0 || *flipInCopy >= 0 || stall != nil || *flip >= 0 || *race != "" || wantFull() || *fdArray) {
		fatal(fmt.Errorf("-inner cannot be combined with -flip*, -uffd-stall, -race, -fd-array or the newer attr fields"))
	}
	var stop atomic.Bool
	var pinned atomic.Value
	if *race != "" {
		go pinRacer(*race, &stop, &pinned)
	}
	if *flip >= 0 {
		if *flip >= len(insns)/8 {
			fatal(fmt.Errorf("-flip %d: the program has %d instructions", *flip, len(insns)/8))
		}
		// Atomic 32-bit stores on the imm word: the kernel and the sensor
		// each read a whole old or new value, never a torn one.
		imm := (*uint32)(unsafe.Pointer(&insns[*flip*8+4]))
		go func() {
			for !stop.Load() {
				atomic.StoreUint32(imm, atomic.LoadUint32(imm)^1)
			}
		}()
	}
	var full *rawbpf.ProgLoadAttrFull
	var sigBuf []byte
	if wantFull() {
		full, sigBuf = fullAttr(attr)
	}
	enc := json.NewEncoder(os.Stdout)
	tokenMapCreate()
	var fds []int
	all := append([][]byte{insns}, more...)
	if len(more) > 0 && (stall != nil || *flip >= 0 || *flipInCopy >= 0) {
		fatal(fmt.Errorf("several -insns files cannot be combined with -uffd-stall, -flip or -flip-in-copy"))
	}
	for i := 0; i < *count*len(all); i++ {
		if len(more) > 0 {
			cur := all[i / *count]
			attr.Insns = uint64(uintptr(unsafe.Pointer(&cur[0])))
			attr.InsnCnt = uint32(len(cur) / 8)
		}
		runtime.LockOSThread()
		if *comm != "" {
			// comm is per thread: rename the one that calls bpf().
			if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&append([]byte(*comm), 0)[0])), 0, 0, 0); err != nil {
				fatal(fmt.Errorf("-comm: %w", err))
			}
		}
		var fd int
		var err error
		var took time.Duration
		var loaderID uint32
		var loaderTag string
		var arrFaults int
		load := func() {
			start := time.Now()
			if *inner {
				cur := all[i / *count]
				fd, loaderID, loaderTag, err = rawbpf.InnerLoad(attr, cur, lic)
			} else if full != nil {
				fd, err = rawbpf.LoadFull(full)
			} else {
				fd, err = rawbpf.Load(&attr)
			}
			took = time.Since(start)
		}
		if *flipInJudge >= 0 {
			fd, took, err = flipInJudgedCopy(&attr, insns, *flipInJudge)
		} else if *flipInCopy >= 0 {
			fd, took, err = flipInKernelCopy(&attr, insns, *flipInCopy)
		} else if *fdArrayUffd {
			fd, took, arrFaults, err = fdArrayInUffd(&attr, fdArr)
		} else if i == 0 && stall != nil {
			attr.Insns = uint64(stall.Addr())
			// A signal would end the kernel's wait for the page with
			// EFAULT instead of a stall.
			if berr := uffd.WithSignalsBlocked(load); berr != nil {
				fatal(fmt.Errorf("-uffd-stall: %w", berr))
			}
		} else {
			load()
		}
		r := result{PID: os.Getpid(), TID: unix.Gettid(), SyscallNS: took.Nanoseconds(), LoaderID: loaderID, LoaderTag: loaderTag, UffdFaults: arrFaults}
		runtime.UnlockOSThread()
		if i == 0 && stall != nil {
			// Later loads read the ordinary buffer, without a stall.
			attr.Insns = uint64(uintptr(unsafe.Pointer(&insns[0])))
			if cerr := stall.Close(); cerr != nil {
				fatal(fmt.Errorf("-uffd-stall: %w", cerr))
			}
			st := stall.Stats()
			r.StalledNS, r.UffdFaults, r.UffdHeld = st.Stalled.Nanoseconds(), st.Faults, st.Held
		}
		runtime.KeepAlive(insns)
		runtime.KeepAlive(all)
		runtime.KeepAlive(lic)
		runtime.KeepAlive(fdArr)
		runtime.KeepAlive(sigBuf)
		if err != nil {
			var errno unix.Errno
			if !errors.As(err, &errno) {
				fatal(err) // -inner: the loader program itself failed
			}
			r.Ret = -int(errno)
			r.Error = err.Error()
		} else {
			r.Ret = fd
			r.ID = progID(fd)
			tokenLinkCreate(fd)
			if *pinProgs != "" {
				if perr := objPin(fd, fmt.Sprintf("%s_%d", *pinProgs, i)); perr != nil {
					fatal(fmt.Errorf("-pin-progs: %w", perr))
				}
			}
			if *tailSlot >= 0 {
				if uerr := arrayUpdate(arrayFD, uint32(*tailSlot), uint32(fd)); uerr != nil {
					fatal(fmt.Errorf("-tail-slot %d: %w", *tailSlot, uerr))
				}
			}
			if *keep {
				fds = append(fds, fd)
			} else {
				unix.Close(fd)
			}
		}
		if p, ok := pinned.Load().(string); ok {
			r.Pin = p
		}
		enc.Encode(r)
	}
	stop.Store(true)
	if *badWrites {
		const notOpen = 9999
		fmt.Fprintf(os.Stderr, "update of map fd %d: %v\n", notOpen, arrayUpdate(notOpen, 0, 0))
		if arrayFD >= 0 {
			fmt.Fprintf(os.Stderr, "update of the prog array with fd %d: %v\n", notOpen, arrayUpdate(arrayFD, 0, notOpen))
		}
	}
	if *keep {
		buf := make([]byte, 1)
		os.Stdin.Read(buf)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	// The instructions stay in memory until here: with -keep, a sensor
	// may read them back while the loader waits (sensor/recover.go).
	runtime.KeepAlive(insns)
}

// holdUntilReleased creates dir/fault, then waits until dir/release exists
// (-uffd-hold). It runs on the fault handler's thread while the faulting
// load waits.
func holdUntilReleased(dir string) {
	if err := os.WriteFile(filepath.Join(dir, "fault"), nil, 0o600); err != nil {
		fatal(fmt.Errorf("-uffd-hold: %w", err))
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pinRacer tries to pin fds that a concurrent load may create, as a loader
// would that wants its program to outlive a SIGKILL.
func pinRacer(prefix string, stop *atomic.Bool, pinned *atomic.Value) {
	runtime.LockOSThread()
	next, err := unix.Dup(0)
	if err != nil {
		return
	}
	unix.Close(next)
	path := fmt.Sprintf("%s%d", prefix, os.Getpid())
	p := append([]byte(path), 0)
	for !stop.Load() {
		for fd := next; fd < next+4; fd++ {
			attr := struct {
				pathname uint64
				fd       uint32
				flags    uint32
			}{uint64(uintptr(unsafe.Pointer(&p[0]))), uint32(fd), 0}
			_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_PIN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
			if errno == 0 {
				pinned.Store(path)
				return
			}
		}
		time.Sleep(0)
	}
}

// flipInKernelCopy runs load with attr copied to the end of an ordinary page
// that a userfaultfd-registered page follows, and a size that reaches into
// it. The kernel first checks that the bytes past its own bpf_attr are zero
// (bpf_check_uarg_tail_zero, before copying the attr) and so faults on that
// page after every syscall-entry hook has read the attr and the
// instructions; while it waits, the handler toggles bit 0 of instruction
// n's imm, then serves zeros, and the kernel goes on to copy the toggled
// instructions.
func flipInKernelCopy(attr *rawbpf.ProgLoadAttr, insns []byte, n int) (fd int, took time.Duration, err error) {
	const tail = 512 // zero bytes past our struct, all on the stalled page
	r, rerr := uffd.NewWithPrefix(os.Getpagesize(), make([]byte, tail), 0)
	if rerr != nil {
		fatal(fmt.Errorf("-flip-in-copy: %w", rerr))
	}
	imm := (*uint32)(unsafe.Pointer(&insns[n*8+4]))
	r.OnFirstFault(func() { atomic.StoreUint32(imm, atomic.LoadUint32(imm)^1) })
	pre := r.Prefix()
	size := unsafe.Sizeof(*attr)
	at := unsafe.Pointer(&pre[len(pre)-int(size)])
	*(*rawbpf.ProgLoadAttr)(at) = *attr
	if berr := uffd.WithSignalsBlocked(func() {
		start := time.Now()
		fd, err = rawbpf.ProgLoad(at, size+tail)
		took = time.Since(start)
	}); berr != nil {
		fatal(fmt.Errorf("-flip-in-copy: %w", berr))
	}
	if cerr := r.Close(); cerr != nil {
		fatal(fmt.Errorf("-flip-in-copy: %w", cerr))
	}
	if f := r.Stats().Faults; f != 1 {
		fatal(fmt.Errorf("-flip-in-copy: the kernel faulted %d times on the attr's tail, want 1", f))
	}
	return fd, took, err
}

// fdArrayInUffd loads with attr's fd_array in a fresh userfaultfd page,
// which holds the fds only once its handler has supplied it at the first
// fault: until a reader faults, the page is not resident. Returns the pages
// supplied (1 when anything read the fds, 0 when nothing did).
func fdArrayInUffd(attr *rawbpf.ProgLoadAttr, fdArr []int32) (fd int, took time.Duration, faults int, err error) {
	b := make([]byte, 4*len(fdArr))
	for i, v := range fdArr {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	r, rerr := uffd.New(b, 0)
	if rerr != nil {
		fatal(fmt.Errorf("-fd-array-uffd: %w", rerr))
	}
	a := *attr
	a.FdArray = uint64(r.Addr())
	// A signal would end a wait for the page with EFAULT.
	if berr := uffd.WithSignalsBlocked(func() {
		start := time.Now()
		fd, err = rawbpf.Load(&a)
		took = time.Since(start)
	}); berr != nil {
		fatal(fmt.Errorf("-fd-array-uffd: %w", berr))
	}
	if cerr := r.Close(); cerr != nil {
		fatal(fmt.Errorf("-fd-array-uffd: %w", cerr))
	}
	return fd, took, r.Stats().Faults, err
}

// flipInJudgedCopy runs load with the instructions straddling an ordinary
// page and a userfaultfd-registered one: instructions 0..n end the first,
// the rest start the second. A hook that copies the instructions in a
// sleepable program (lsm.s/bpf, before the kernel's own copy) reads the
// first part, then faults on the second; while it waits, the handler
// toggles bit 0 of instruction n's imm, which the hook has already read,
// and serves the rest. The kernel's copy then holds the toggled value.
func flipInJudgedCopy(attr *rawbpf.ProgLoadAttr, insns []byte, n int) (fd int, took time.Duration, err error) {
	split := (n + 1) * 8
	r, rerr := uffd.NewWithPrefix(os.Getpagesize(), insns[split:], 0)
	if rerr != nil {
		fatal(fmt.Errorf("-flip-in-judge: %w", rerr))
	}
	pre := r.Prefix()
	first := pre[len(pre)-split:]
	copy(first, insns[:split])
	imm := (*uint32)(unsafe.Pointer(&first[n*8+4]))
	r.OnFirstFault(func() { atomic.StoreUint32(imm, atomic.LoadUint32(imm)^1) })
	a := *attr
	a.Insns = uint64(uintptr(unsafe.Pointer(&first[0])))
	if berr := uffd.WithSignalsBlocked(func() {
		start := time.Now()
		fd, err = rawbpf.Load(&a)
		took = time.Since(start)
	}); berr != nil {
		fatal(fmt.Errorf("-flip-in-judge: %w", berr))
	}
	if cerr := r.Close(); cerr != nil {
		fatal(fmt.Errorf("-flip-in-judge: %w", cerr))
	}
	if f := r.Stats().Faults; f != 1 {
		fatal(fmt.Errorf("-flip-in-judge: %d faults on the instructions' second page, want 1", f))
	}
	return fd, took, err
}

// objGet opens a pinned BPF object.
func objGet(path string) (int, error) {
	p := append([]byte(path), 0)
	attr := struct {
		pathname uint64
		fd       uint32
		flags    uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(&p[0])))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// objPin pins fd at path.
func objPin(fd int, path string) error {
	p := append([]byte(path), 0)
	attr := struct {
		pathname uint64
		fd       uint32
		flags    uint32
	}{pathname: uint64(uintptr(unsafe.Pointer(&p[0]))), fd: uint32(fd)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_PIN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if errno != 0 {
		return errno
	}
	return nil
}

// mapFDByID opens the map with this id.
func mapFDByID(id uint32) (int, error) {
	attr := struct {
		id        uint32
		nextID    uint32
		openFlags uint32
	}{id: id}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_GET_FD_BY_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// arrayUpdate stores a program fd at key of a prog array.
func arrayUpdate(mapFD int, key, progFD uint32) error {
	attr := struct {
		mapFD uint32
		_     uint32
		key   uint64
		value uint64
		flags uint64
	}{mapFD: uint32(mapFD), key: uint64(uintptr(unsafe.Pointer(&key))), value: uint64(uintptr(unsafe.Pointer(&progFD)))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_UPDATE_ELEM, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(&key)
	runtime.KeepAlive(&progFD)
	if errno != 0 {
		return errno
	}
	return nil
}

func progID(fd int) uint32 {
	var info [256]byte // struct bpf_prog_info: id at offset 4
	attr := struct {
		fd      uint32
		infoLen uint32
		info    uint64
	}{uint32(fd), uint32(len(info)), uint64(uintptr(unsafe.Pointer(&info[0])))}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		return 0
	}
	return uint32(info[4]) | uint32(info[5])<<8 | uint32(info[6])<<16 | uint32(info[7])<<24
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bpfload:", err)
	os.Exit(2)
}
