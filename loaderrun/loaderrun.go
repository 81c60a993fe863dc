package loaderrun

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// Run is one bracketed BPF_PROG_TEST_RUN of a syscall program.
type Run struct {
	PID, TID, UID uint32
	Comm          string
	// The syscall program that ran.
	ProgID   uint32
	ProgTag  string
	ProgName string
	ProgFD   int32
	// EnterNs and ExitNs are CLOCK_BOOTTIME, the clock of
	// bpf_prog_info.load_time: a program loaded by the run has a load
	// time between them.
	EnterNs, ExitNs uint64
	Ret             int64 // 0 or -errno
	// Stopped: SIGSTOP was queued for the caller at the run's exit; it
	// waits, stopped, for SIGKILL or SIGCONT. StopErr is the helper's
	// error when queueing failed.
	Stopped bool
	StopErr int32
}

// Options configure the bracket.
type Options struct {
	// Self is the sentry's tgid: its own runs (the ring pre-fault) are
	// neither reported nor stopped.
	Self uint32
	// Stop queues SIGSTOP for the caller at every run's exit. Whoever reads
	// the runs must then resume (SIGCONT) or kill each stopped caller.
	Stop bool
}

// Bracket is the attached pair of tracepoints and their ring buffer.
type Bracket struct {
	objs   LoaderrunObjects
	links  []link.Link
	rd     *ringbuf.Reader
	closed bool // Close ran (the agent may close early when Finish fails)
}

// New loads and attaches the bracket.
func New(o Options) (*Bracket, error) {
	spec, err := LoadLoaderrun()
	if err != nil {
		return nil, err
	}
	stop := uint32(0)
	if o.Stop {
		stop = 1
	}
	set := map[string]any{"self_tgid": o.Self, "stop_caller": stop, "prog_fops": progFops()}
	for name, v := range set {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("bracket object lacks %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	b := &Bracket{}
	if err := spec.LoadAndAssign(&b.objs, nil); err != nil {
		return nil, fmt.Errorf("load the BPF_PROG_TEST_RUN bracket: %w", err)
	}
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{{"sys_enter_bpf", b.objs.LoaderrunEnter}, {"sys_exit_bpf", b.objs.LoaderrunExit}} {
		l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("attach syscalls:%s: %w", tp.name, err)
		}
		b.links = append(b.links, l)
	}
	if b.rd, err = ringbuf.NewReader(b.objs.LoaderrunEvents); err != nil {
		b.Close()
		return nil, fmt.Errorf("ring buffer: %w", err)
	}
	return b, nil
}

// progFops is &bpf_prog_fops from /proc/kallsyms, so that the kernel side
// reads a struct bpf_prog only behind a program fd; 0 when unknown (then
// the type check alone filters).
func progFops() uint64 {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "bpf_prog_fops" {
			a, err := strconv.ParseUint(fs[0], 16, 64)
			if err != nil {
				return 0
			}
			return a
		}
	}
	return 0
}

// Read blocks for the next run; it returns ringbuf.ErrClosed after Close.
func (b *Bracket) Read() (*Run, error) {
	rec, err := b.rd.Read()
	if err != nil {
		return nil, err
	}
	return Parse(rec.RawSample)
}

// Lost is the number of runs the ring had no room for (each caller was
// killed instead of stopped, when stopping).
func (b *Bracket) Lost() (uint64, error) {
	var n uint64
	err := b.objs.LoaderrunLost.Lookup(uint32(0), &n)
	return n, err
}

// Finish detaches the bracket's programs, so that no caller is stopped
// from here on, and makes Read return the runs already recorded (stopped
// callers among them), then ringbuf.ErrFlushed: whoever reads can resume
// or kill every caller the bracket stopped before it goes.
func (b *Bracket) Finish() error {
	var errs []error
	for _, l := range b.links {
		errs = append(errs, l.Close())
	}
	b.links = nil
	if b.rd != nil {
		errs = append(errs, b.rd.Flush())
	}
	return errors.Join(errs...)
}

// Close detaches the bracket.
func (b *Bracket) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	if b.rd != nil {
		errs = append(errs, b.rd.Close())
	}
	for _, l := range b.links {
		errs = append(errs, l.Close())
	}
	b.links = nil
	errs = append(errs, b.objs.Close())
	return errors.Join(errs...)
}

// Parse decodes one ring-buffer record.
func Parse(raw []byte) (*Run, error) {
	var e LoaderrunLoaderrunEvent
	if len(raw) < int(unsafe.Sizeof(e)) {
		return nil, fmt.Errorf("test-run record of %d bytes, want %d", len(raw), unsafe.Sizeof(e))
	}
	if err := binary.Read(bytes.NewReader(raw[:unsafe.Sizeof(e)]), binary.NativeEndian, &e); err != nil {
		return nil, fmt.Errorf("test-run record: %w", err)
	}
	r := &Run{PID: e.Tgid, TID: e.Tid, UID: e.Uid, ProgID: e.ProgId, ProgFD: e.ProgFd,
		ProgTag: hex.EncodeToString(e.Tag[:]), ProgName: cstr(e.Name[:]), Comm: cstr(e.Comm[:]),
		EnterNs: e.EnterNs, ExitNs: e.ExitNs, Ret: e.Ret, Stopped: e.Stopped == 1}
	if e.Stopped < 0 {
		r.StopErr = e.Stopped
	}
	return r, nil
}

func cstr(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
