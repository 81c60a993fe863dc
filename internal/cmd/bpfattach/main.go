// Command bpfattach is the sensor's attach test client: it loads one
// program of an object file and attaches it one way (a tracepoint through
// perf_event_open + LINK_CREATE or the older ioctl PERF_EVENT_IOC_SET_BPF,
// a raw tracepoint, a uprobe), then prints one JSON line with the program
// id and the attach's result. Tests run it as a separate process so that
// the sensor sees a foreign caller it may kill.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

type result struct {
	PID    int    `json:"pid"`
	ProgID uint32 `json:"prog_id"`
	LinkID uint32 `json:"link_id,omitempty"`
	// NewProgID: the second program of a replace or update (-replace, -update).
	NewProgID uint32 `json:"new_prog_id,omitempty"`
	Ifindex   int    `json:"ifindex,omitempty"`
	MapID     uint32 `json:"map_id,omitempty"`
	// NotSupported: the library found the kernel without the feature
	// (ebpf.ErrNotSupported), a probe tests gate on.
	NotSupported bool   `json:"not_supported,omitempty"`
	Errno        int    `json:"errno,omitempty"`
	Error        string `json:"error,omitempty"`
}

var na netAttach

func main() {
	obj := flag.String("obj", "", "BPF object file")
	builtin := flag.String("builtin", "", "instead of -obj: a two-instruction program (r0 = 0; exit) of this type: tracepoint | raw_tracepoint")
	progName := flag.String("prog", "", "program (function) name in the object")
	tp := flag.String("tracepoint", "", "GROUP/NAME: attach as a tracepoint perf event")
	ioctl := flag.Bool("ioctl", false, "with -tracepoint: attach with ioctl(PERF_EVENT_IOC_SET_BPF) instead of a link")
	rawTP := flag.String("raw-tp", "", "NAME: bpf(BPF_RAW_TRACEPOINT_OPEN)")
	uprobe := flag.String("uprobe", "", "BINARY:SYMBOL: a uprobe")
	closeFirst := flag.Bool("close-prog-first", false, "with -ioctl: close the program before attaching it (an fd that no longer names a program)")
	tpID := flag.Int("tracepoint-id", -1, "with -ioctl: use this tracepoint id instead of looking GROUP/NAME up (a bogus perf attr)")
	flag.BoolVar(&barrier, "barrier", false, "with -ioctl: after perf_event_open write \"opened\\n\" to fd 3 and wait for a byte on fd 4 before the ioctl; after it, write \"attached\\n\" to fd 3 and wait for a byte on fd 4 before closing the perf event (the test decides when)")
	flag.BoolVar(&ioctlHighBits, "ioctl-high-bits", false, "with -ioctl: set bit 32 of the command word (the kernel takes the command as 32 bits, so the attach still happens)")
	flag.StringVar(&na.mode, "mode", "", "instead of the above: cgroup | flow_dissector | sockmap | xdp | tcx | netkit | netfilter | uprobe_multi | kprobe_multi (a built-in program of the matching type)")
	flag.StringVar(&na.netns, "netns", "", "enter this network namespace (/run/netns/NAME) first")
	flag.StringVar(&na.cgroup, "cgroup", "", "-mode cgroup: the cgroup directory")
	flag.BoolVar(&na.link, "link", false, "-mode cgroup: BPF_LINK_CREATE instead of BPF_PROG_ATTACH")
	flag.BoolVar(&na.progAttach, "prog-attach", false, "-mode tcx: BPF_PROG_ATTACH instead of BPF_LINK_CREATE")
	flag.BoolVar(&na.detach, "detach", false, "BPF_PROG_ATTACH modes: BPF_PROG_DETACH afterwards; links: BPF_LINK_DETACH")
	flag.BoolVar(&na.replace, "replace", false, "BPF_PROG_ATTACH modes: attach a second program with BPF_F_REPLACE of the first")
	flag.BoolVar(&na.update, "update", false, "link modes: BPF_LINK_UPDATE to a second program")
	flag.StringVar(&na.iface, "iface", "", "-mode xdp/tcx/netkit: the interface (netkit: created when missing)")
	flag.IntVar(&na.ifindex, "ifindex", 0, "-mode tcx/netkit: this ifindex instead of -iface's (a bogus one)")
	flag.IntVar(&na.targetFD, "target-fd", -1, "-mode cgroup, flow_dissector, sockmap: this target fd instead of the real one (a bogus one)")
	flag.StringVar(&na.mapName, "map-name", "sentry_sockmap", "-mode sockmap: the map's name")
	flag.StringVar(&na.mapPin, "map-pin", "", "-mode sockmap: use the map pinned here, or pin the new map here (it then outlives this process)")
	flag.StringVar(&na.syms, "syms", "", "-mode uprobe_multi: BINARY:SYM,SYM…; kprobe_multi: SYM,SYM…")
	wrong := flag.String("wrong-fd", "", "instead of the above: link (BPF_LINK_DETACH on a perf event fd) | perf (BPF_LINK_CREATE of a perf event attach on an eventfd)")
	flag.BoolVar(&na.hold, "hold", false, "after the JSON line, keep everything attached until stdin closes")
	flag.StringVar(&linkPin, "pin", "", "-tracepoint, -raw-tp, -uprobe: pin the link here (it then outlives this process)")
	flag.Parse()
	res := result{PID: os.Getpid()}
	var err error
	if *wrong != "" {
		err = wrongFD(*wrong, &res)
	} else if na.mode != "" {
		err = na.run(&res)
	} else {
		err = run(*obj, *builtin, *progName, *tp, *ioctl, *rawTP, *uprobe, *closeFirst, *tpID, &res)
	}
	if err != nil {
		res.Error = err.Error()
		res.NotSupported = errors.Is(err, ebpf.ErrNotSupported)
		var errno unix.Errno
		if errors.As(err, &errno) {
			res.Errno = int(errno)
		} else {
			// cilium/ebpf wraps some errnos so that only errors.Is sees them
			for _, e := range []unix.Errno{unix.EPERM, unix.ENOENT, unix.EBADF, unix.EINVAL, unix.ENOTTY, unix.EOPNOTSUPP, unix.ENOTSUP} {
				if errors.Is(err, e) {
					res.Errno = int(e)
					break
				}
			}
		}
	}
	json.NewEncoder(os.Stdout).Encode(res)
	if na.hold {
		io.Copy(io.Discard, os.Stdin)
	}
	for _, c := range held {
		c.Close()
	}
	na.close()
	if err != nil && res.Errno == 0 {
		os.Exit(1)
	}
}

func run(obj, builtin, name, tp string, ioctl bool, rawTP, uprobe string, closeFirst bool, tpID int, res *result) error {
	var spec *ebpf.CollectionSpec
	var err error
	if builtin != "" {
		// no object needed (matrix VMs carry no testdata)
		typ := map[string]ebpf.ProgramType{"tracepoint": ebpf.TracePoint, "raw_tracepoint": ebpf.RawTracepoint}[builtin]
		if typ == ebpf.UnspecifiedProgram {
			return fmt.Errorf("-builtin %q: want tracepoint or raw_tracepoint", builtin)
		}
		name = "attach_" + builtin[:3]
		spec = &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{name: {Name: name, Type: typ, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}}}}
	} else if spec, err = ebpf.LoadCollectionSpec(obj); err != nil {
		return err
	}
	ps := spec.Programs[name]
	if ps == nil {
		return fmt.Errorf("%s: no program %q", obj, name)
	}
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{name: ps}, Maps: spec.Maps}, ebpf.CollectionOptions{})
	if err != nil {
		return err
	}
	defer coll.Close() // what is attached holds the program
	prog := coll.Programs[name]
	if info, err := prog.Info(); err == nil {
		id, _ := info.ID()
		res.ProgID = uint32(id)
	}
	var l link.Link
	switch {
	case tp != "" && ioctl:
		return attachIoctl(prog, tp, closeFirst, tpID)
	case tp != "":
		group, event, _ := strings.Cut(tp, "/")
		l, err = link.Tracepoint(group, event, prog, nil)
	case rawTP != "":
		l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: rawTP, Program: prog})
	case uprobe != "":
		bin, sym, _ := strings.Cut(uprobe, ":")
		var ex *link.Executable
		if ex, err = link.OpenExecutable(bin); err == nil {
			l, err = ex.Uprobe(sym, prog, nil)
		}
	default:
		return errors.New("one of -tracepoint, -raw-tp, -uprobe")
	}
	if err != nil {
		return err
	}
	if na.hold {
		held = append(held, l) // closed when stdin closes, or with the process
	} else {
		defer l.Close()
	}
	if info, err := l.Info(); err == nil {
		res.LinkID = uint32(info.ID)
	}
	if linkPin != "" {
		return l.Pin(linkPin)
	}
	return nil
}

// linkPin: -pin; held: what -hold keeps open until stdin closes.
var (
	linkPin string
	held    []io.Closer
)

// attachIoctl is the pre-link way: perf_event_open on the tracepoint id,
// then ioctl(PERF_EVENT_IOC_SET_BPF, prog fd).
func attachIoctl(prog *ebpf.Program, tp string, closeFirst bool, id int) error {
	if id < 0 {
		b, err := os.ReadFile("/sys/kernel/tracing/events/" + tp + "/id")
		if err != nil {
			return err
		}
		if id, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return err
		}
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: uint64(id), Sample: 1, Wakeup: 1}
	attr.Size = uint32(unsafeSizeofAttr)
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		// A bogus attr fails here, before any attach: still try the
		// ioctl on a non-perf fd so that the attach itself fails.
		fd, err = unix.Open("/dev/null", unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
	}
	if na.hold {
		held = append(held, perfFD(fd))
	} else {
		defer unix.Close(fd)
	}
	if barrier {
		if err := barrierWait("opened\n"); err != nil {
			return err
		}
		defer barrierWait("attached\n")
	}
	pfd := prog.FD()
	if closeFirst {
		dup, err := unix.Dup(pfd)
		if err != nil {
			return err
		}
		prog.Close()
		unix.Close(dup)
		pfd = dup // closed: no longer a program in this process
	}
	req := uint64(unix.PERF_EVENT_IOC_SET_BPF)
	if ioctlHighBits {
		req |= 1 << 32 // dropped by uint on a 32-bit build, whose register has no upper half
	}
	return unix.IoctlSetInt(fd, uint(req), pfd)
}

// perfFD closes a perf event fd held by -hold.
type perfFD int

func (f perfFD) Close() error { return unix.Close(int(f)) }

const unsafeSizeofAttr = unix.PERF_ATTR_SIZE_VER5

var ioctlHighBits, barrier bool

// barrierWait tells the test where the attacher is (fd 3) and waits for
// its go (a byte on fd 4).
func barrierWait(where string) error {
	if _, err := unix.Write(3, []byte(where)); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	var b [1]byte
	if _, err := unix.Read(4, b[:]); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return nil
}
