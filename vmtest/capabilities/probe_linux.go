package capabilities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/startabort"
)

// Observation is what a probe found: whether the capability is present, the
// evidence (attach target, hit counts, the kernel's refusal) and what the
// shared prober (internal/kernelprobe, which doctor and the sensor's hook
// choice call) answered.
type Observation struct {
	Present bool
	Detail  string
	// Prober is the shared prober's answer, "" where it asks nothing
	// about this capability (the ia32 ones: the sensor only asks whether
	// __ia32_sys_bpf exists).
	Prober string
}

func present(format string, args ...any) Observation {
	return Observation{Present: true, Detail: fmt.Sprintf(format, args...)}
}

func absent(format string, args ...any) Observation {
	return Observation{Detail: fmt.Sprintf(format, args...)}
}

// proberAnswer is the shared prober's verdict on one capability: nil when
// it says the capability is there, else why not.
type proberAnswer func() error

// proberAnswers maps each capability to the kernelprobe call the sensor
// makes for it (ProbeKernel for doctor and PlanFor, chooseHook for New).
var proberAnswers = map[Capability]proberAnswer{
	BTF:          kernelprobe.BTF,
	BPFLSMActive: kernelprobe.BPFLSMActive,
	// The non-sleepable lsm/bpf program, which loads from 5.7; the
	// sleepable one (5.11) is what the sensor's lsm-bpf hook uses with
	// bpf_loop, and TestProbeKernelAgreesWithTheKernelsExpectations holds
	// that choice against the same list.
	LSMBpfDeny:      func() error { return kernelprobe.LSMBpfUsable(false) },
	LSMProgLoadDeny: kernelprobe.LSMProgLoadUsable,
	KprobeBpf: func() error {
		_, err := kernelprobe.Kprobes()
		return err
	},
	TracepointBpf:     kernelprobe.SyscallTracepoints,
	TpBTFSysEnter:     func() error { return kernelprobe.Load(kernelprobe.TpBTFSysEnter()) },
	FentrySecurityBpf: func() error { return kernelprobe.Load(kernelprobe.FentrySecurityBpf()) },
	SendSignal:        func() error { return kernelprobe.Helper(asm.FnSendSignal) },
	ProbeWriteUser:    kernelprobe.ProbeWriteUser,
}

// Probe checks one capability on the running kernel: the shared prober's
// answer and, for all but BPFLSMActive (a line of securityfs, which the
// LSM deny probes then put to use), the evidence of a program that uses
// the capability. The two must agree: a prober that says a hook works when
// it does not fire (or the reverse) is an error, as is a probe that could
// not decide (something unexpected broke); neither is ever a pass.
func Probe(c Capability) (Observation, error) {
	answer, asked := proberAnswers[c]
	if c == BPFLSMActive {
		if err := answer(); err != nil {
			return Observation{Detail: err.Error(), Prober: "absent: " + err.Error()}, nil
		}
		list, _ := kernelprobe.ActiveLSMs()
		return Observation{Present: true, Detail: "lsm=" + list, Prober: "present"}, nil
	}
	obs, err := evidence(c)
	if err != nil {
		return obs, err
	}
	if c == Ia32Exec && obs.Present && !kernelprobe.IA32Entry(nil) {
		return obs, fmt.Errorf("a 32-bit loader ran (%s), yet the prober finds no __ia32_sys_bpf in the kernel's BTF", obs.Detail)
	}
	if !asked {
		return obs, nil
	}
	perr := answer()
	obs.Prober = "present"
	if perr != nil {
		obs.Prober = "absent: " + oneLine(perr)
	}
	if (perr == nil) != obs.Present {
		return obs, fmt.Errorf("the shared prober says %s is %s, the evidence says present=%v: %s", c, obs.Prober, obs.Present, obs.Detail)
	}
	return obs, nil
}

// evidence uses the capability: a program that must fire, deny or write.
func evidence(c Capability) (Observation, error) {
	switch c {
	case BTF:
		return probeBTF()
	case LSMBpfDeny:
		return probeLSMDeny("deny_bpf", "lsm_bpf_hits")
	case LSMProgLoadDeny:
		return probeLSMDeny("deny_prog_load", "lsm_prog_load_hits")
	case KprobeBpf:
		return probeKprobe()
	case TracepointBpf:
		return probeTracepoint()
	case ProbeWriteUser:
		return probeWriteUser()
	case TpBTFSysEnter:
		return probeTracing("count_tp_btf", "tp_btf_hits", "tp_btf/sys_enter")
	case FentrySecurityBpf:
		return probeTracing("count_fentry", "fentry_hits", "fentry/security_bpf")
	case SendSignal:
		return probeSendSignal()
	case Ia32Exec:
		return probeIa32Exec()
	case Ia32BpfTracepoint:
		return probeIa32("ia32_tracepoint", ia32Tracepoint, "syscalls/sys_enter_bpf", func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("syscalls", "sys_enter_bpf", p, nil)
		})
	case Ia32BpfTpBTF:
		return probeIa32("ia32_tp_btf", ia32TpBTFBpf, "tp_btf/sys_enter (id 357)", func(p *ebpf.Program) (link.Link, error) {
			return link.AttachTracing(link.TracingOptions{Program: p})
		})
	case Ia32BpfKprobe:
		return probeIa32("ia32_kprobe", ia32Kprobe, "kprobe/"+ia32KprobeTarget, func(p *ebpf.Program) (link.Link, error) {
			return link.Kprobe(ia32KprobeTarget, p, nil)
		})
	}
	return Observation{}, fmt.Errorf("unknown capability %q", c)
}

// probeBTF parses the kernel's BTF and finds the type every bpf() command
// passes through: BTF that opens but does not parse is no BTF to CO-RE.
func probeBTF() (Observation, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		// Missing or unparsable: absent either way; Probe holds it
		// against the prober's answer.
		return absent("kernel BTF: %v", err), nil
	}
	var u *btf.Union
	if err := spec.TypeByName("bpf_attr", &u); err != nil {
		return Observation{}, fmt.Errorf("the kernel's BTF parses but has no union bpf_attr: %w", err)
	}
	return present("%s parses; union bpf_attr is %d bytes", kernelprobe.BTFPath, u.Size), nil
}

// spec returns the probes' collection spec with target_tgid set to this process.
func spec() (*ebpf.CollectionSpec, error) {
	s, err := loadProbes()
	if err != nil {
		return nil, fmt.Errorf("parse embedded probes: %w", err)
	}
	if err := s.Variables["target_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("set target_tgid: %w", err)
	}
	return s, nil
}

// probeObjects is one loaded program of the collection and its variables.
type probeObjects struct {
	coll *ebpf.Collection
	prog *ebpf.Program
}

// load loads only the named program: the others may not load on this kernel.
func load(s *ebpf.CollectionSpec, prog string) (*probeObjects, error) {
	coll, err := ebpf.NewCollection(&ebpf.CollectionSpec{
		Programs:  map[string]*ebpf.ProgramSpec{prog: s.Programs[prog]},
		Maps:      s.Maps,
		Variables: s.Variables,
		Types:     s.Types,
		ByteOrder: s.ByteOrder,
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", prog, err)
	}
	return &probeObjects{coll: coll, prog: coll.Programs[prog]}, nil
}

func (o *probeObjects) Close() { o.coll.Close() }

// count reads a u64 counter of the program's .bss.
func (o *probeObjects) count(name string) (uint64, error) {
	v := o.coll.Variables[name]
	if v == nil {
		return 0, fmt.Errorf("probes have no variable %s", name)
	}
	var n uint64
	if err := v.Get(&n); err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	return n, nil
}

// A minimal socket filter, "r0 = 0; exit", loaded with the raw syscall so the
// errno is the kernel's own and nothing retries (cilium/ebpf retries on EPERM).
var (
	trivialInsns   = [16]byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}
	trivialLicense = [4]byte{'G', 'P', 'L', 0}
)

// loadTrivial runs BPF_PROG_LOAD for the trivial filter and returns its fd or
// the errno.
func loadTrivial() (int, error) {
	attr := rawbpf.ProgLoadAttr{
		ProgType: uint32(ebpf.SocketFilter),
		InsnCnt:  2,
		Insns:    uint64(uintptr(unsafe.Pointer(&trivialInsns[0]))),
		License:  uint64(uintptr(unsafe.Pointer(&trivialLicense[0]))),
	}
	attr.SetName("vmtest_trivial")
	return rawbpf.Load(&attr)
}

// progIDs lists the ids of every program loaded in the kernel.
func progIDs() ([]ebpf.ProgramID, error) {
	var ids []ebpf.ProgramID
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list program ids after %d: %w", id, err)
		}
		ids = append(ids, next)
		id = next
	}
}

// probeLSMDeny attaches an LSM program that denies this process's
// BPF_PROG_LOAD, then checks the kernel refuses with EPERM, the program fired
// and no program id appeared.
func probeLSMDeny(prog, hits string) (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	// The same load must work before the hook is attached, or a refusal
	// later would prove nothing.
	fd, err := loadTrivial()
	if err != nil {
		return Observation{}, fmt.Errorf("trivial BPF_PROG_LOAD fails before any hook: %w", err)
	}
	unix.Close(fd)

	objs, err := load(s, prog)
	if err != nil {
		return absent("%v", err), nil
	}
	defer objs.Close()
	l, err := link.AttachLSM(link.LSMOptions{Program: objs.prog})
	if err != nil {
		return absent("attach %s: %v", prog, err), nil
	}
	defer l.Close()

	before, err := progIDs()
	if err != nil {
		return Observation{}, err
	}
	fd, loadErr := loadTrivial()
	if loadErr == nil {
		unix.Close(fd)
	}
	after, err := progIDs()
	if err != nil {
		return Observation{}, err
	}
	n, err := objs.count(hits)
	if err != nil {
		return Observation{}, err
	}
	switch {
	case loadErr == nil:
		return absent("%s attached but BPF_PROG_LOAD succeeded (%d hits): the hook is not active", prog, n), nil
	case !errors.Is(loadErr, unix.EPERM):
		return Observation{}, fmt.Errorf("%s attached and BPF_PROG_LOAD failed with %v, not EPERM", prog, loadErr)
	case n == 0:
		return Observation{}, fmt.Errorf("BPF_PROG_LOAD failed with EPERM but %s never ran", prog)
	case !slices.Equal(before, after):
		return Observation{}, fmt.Errorf("BPF_PROG_LOAD was denied by %s yet program ids changed from %v to %v", prog, before, after)
	}
	return present("%s denied BPF_PROG_LOAD with EPERM (%d hits), no new program id", prog, n), nil
}

// trigger makes bpf() calls from this process for the counting probes.
func trigger() {
	for range 3 {
		_, _ = ebpf.ProgramGetNextID(0)
	}
}

func probeKprobe() (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	objs, err := load(s, "count_kprobe")
	if err != nil {
		return absent("%v", err), nil
	}
	defer objs.Close()
	var tried []string
	for _, sym := range kernelprobe.KprobeTargets {
		l, err := link.Kprobe(sym, objs.prog, nil)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", sym, err))
			continue
		}
		before, err := objs.count("kprobe_hits")
		if err != nil {
			l.Close()
			return Observation{}, err
		}
		trigger()
		after, err := objs.count("kprobe_hits")
		l.Close()
		if err != nil {
			return Observation{}, err
		}
		if after > before {
			return present("kprobe on %s fired %d times", sym, after-before), nil
		}
		tried = append(tried, sym+": attached but never fired")
	}
	return absent("no kprobe target works: %s", strings.Join(tried, "; ")), nil
}

func probeTracepoint() (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	objs, err := load(s, "count_tracepoint")
	if err != nil {
		return absent("%v", err), nil
	}
	defer objs.Close()
	l, err := link.Tracepoint("syscalls", "sys_enter_bpf", objs.prog, nil)
	if err != nil {
		return absent("attach syscalls/sys_enter_bpf: %v", err), nil
	}
	defer l.Close()
	trigger()
	n, err := objs.count("tracepoint_hits")
	if err != nil {
		return Observation{}, err
	}
	if n == 0 {
		return absent("syscalls/sys_enter_bpf attached but never fired"), nil
	}
	return present("syscalls/sys_enter_bpf fired %d times", n), nil
}

// probeTracing attaches a BTF tracing program (tp_btf, fentry) and checks it
// counts this process's bpf() calls.
func probeTracing(prog, hits, what string) (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	objs, err := load(s, prog)
	if err != nil {
		return absent("%v", err), nil
	}
	defer objs.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: objs.prog})
	if err != nil {
		return absent("attach %s: %v", what, err), nil
	}
	defer l.Close()
	trigger()
	n, err := objs.count(hits)
	if err != nil {
		return Observation{}, err
	}
	if n == 0 {
		return absent("%s attached but never saw a bpf() call", what), nil
	}
	return present("%s saw %d bpf() calls", what, n), nil
}

func probeSendSignal() (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	objs, err := load(s, "send_signal")
	if err != nil {
		return absent("%v", err), nil
	}
	defer objs.Close()
	// Catch SIGUSR2 before the program can send it: its default action
	// would end the test binary. Stop only after the link is gone.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGUSR2)
	defer signal.Stop(sigs)
	l, err := link.Tracepoint("syscalls", "sys_enter_bpf", objs.prog, nil)
	if err != nil {
		return Observation{}, fmt.Errorf("attach send_signal to syscalls/sys_enter_bpf: %w", err)
	}
	trigger()
	var got os.Signal
	select {
	case got = <-sigs:
	case <-time.After(5 * time.Second):
	}
	l.Close()
	n, err := objs.count("send_signal_hits")
	if err != nil {
		return Observation{}, err
	}
	if got == nil {
		if n > 0 {
			return Observation{}, fmt.Errorf("bpf_send_signal succeeded %d times but no SIGUSR2 arrived", n)
		}
		return absent("bpf_send_signal never succeeded"), nil
	}
	return present("bpf_send_signal delivered %v (%d successful calls)", got, n), nil
}

// writeTarget is what bpf_probe_write_user overwrites; a package variable so
// its address is stable and outside any goroutine stack.
var writeTarget [8]byte

func probeWriteUser() (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	objs, err := load(s, "write_user")
	if err != nil {
		// Lockdown makes the helper unknown to the verifier; any other
		// failure is not the refusal this capability is about.
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) && strings.Contains(err.Error(), "probe_write_user") {
			return absent("verifier refuses the helper: %s", oneLine(err)), nil
		}
		return Observation{}, fmt.Errorf("program using bpf_probe_write_user failed to load for another reason: %w", err)
	}
	defer objs.Close()
	writeTarget = [8]byte{}
	addr := uint64(uintptr(unsafe.Pointer(&writeTarget[0])))
	if err := objs.coll.Variables["write_user_addr"].Set(addr); err != nil {
		return Observation{}, fmt.Errorf("set write_user_addr: %w", err)
	}
	l, err := link.Tracepoint("syscalls", "sys_enter_bpf", objs.prog, nil)
	if err != nil {
		return Observation{}, fmt.Errorf("attach write_user to syscalls/sys_enter_bpf: %w", err)
	}
	defer l.Close()
	trigger()
	n, err := objs.count("write_user_hits")
	if err != nil {
		return Observation{}, err
	}
	want := [8]byte{'w', 'r', 'i', 't', 't', 'e', 'n', 0}
	if n == 0 || writeTarget != want {
		return Observation{}, fmt.Errorf("bpf_probe_write_user loaded but did not write (%d successful calls, memory %q)", n, writeTarget[:])
	}
	return present("bpf_probe_write_user wrote %q into this process (%d calls)", bytes.TrimRight(writeTarget[:], "\x00"), n), nil
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Events of probes.bpf.c's ia32_hits map (enum ia32_event).
const (
	ia32Tracepoint = 1
	ia32TpBTFBpf   = 2
	ia32TpBTFX64   = 3
	ia32Kprobe     = 4
)

// ia32KprobeTarget is the compat entry of bpf (CONFIG_IA32_EMULATION's
// syscall wrapper, since 4.17).
const ia32KprobeTarget = "__ia32_sys_bpf"

// ia32Key is struct ia32_key.
type ia32Key struct{ Tgid, Event uint32 }

// cannotRunError says the 32-bit loader could not be started at all
// (not on PATH, or the kernel refuses the binary: "exec format error").
type cannotRunError struct{ err error }

func (e cannotRunError) Error() string { return e.err.Error() }
func (e cannotRunError) Unwrap() error { return e.err }

// ia32Run is what one run of the 32-bit loader printed.
type ia32Run struct {
	PID   int    `json:"pid"`
	Ret   int    `json:"ret"`
	ID    uint32 `json:"id"`
	Error string `json:"error"`
	// Aborts lists the earlier runs that died in the Go runtime's
	// start-up (internal/startabort), with the kernel's trap lines.
	Aborts []*startabort.Error `json:"-"`
}

// runIa32Loader runs the 32-bit loader until one run is not a start-up
// abort, at most startabort.Attempts times: every abort is kept in Aborts
// (and reported by the probes), and as many aborts in a row are an error.
func runIa32Loader() (ia32Run, error) {
	r, aborts, err := startabort.Retry(startabort.Attempts, runIa32LoaderOnce)
	var rep *startabort.RepeatedError
	if errors.As(err, &rep) {
		return ia32Run{}, fmt.Errorf("%s: %w", Ia32Loader, err)
	}
	r.Aborts = aborts
	return r, err
}

// runIa32LoaderOnce runs Ia32Loader to load one trivial program and returns
// its JSON line. A loader that starts but does not print a line for its own
// pid is an error: the probe cannot tell what it did.
func runIa32LoaderOnce() (ia32Run, error) {
	path, err := exec.LookPath(Ia32Loader)
	if err != nil {
		return ia32Run{}, cannotRunError{err}
	}
	// TCG VMs are slow; a hung loader must not hang the suite.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-gen", "2", "-name", "vmtest_ia32")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return ia32Run{}, cannotRunError{fmt.Errorf("start %s: %w", path, err)}
	}
	pid := cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		if abort := startabort.Check(pid, err, stdout.Len()+stderr.Len()); abort != nil {
			return ia32Run{}, abort
		}
		return ia32Run{}, fmt.Errorf("%s (pid %d): %w; stderr: %s", path, pid, err, strings.TrimSpace(stderr.String()))
	}
	var r ia32Run
	line, _, _ := bytes.Cut(stdout.Bytes(), []byte("\n"))
	if err := json.Unmarshal(line, &r); err != nil {
		return ia32Run{}, fmt.Errorf("%s (pid %d) printed %q, not its JSON line: %w", path, pid, line, err)
	}
	if r.PID != pid {
		return ia32Run{}, fmt.Errorf("%s (pid %d) reports pid %d", path, pid, r.PID)
	}
	return r, nil
}

func probeIa32Exec() (Observation, error) {
	r, err := runIa32Loader()
	var cre cannotRunError
	if errors.As(err, &cre) {
		return absent("%v", err), nil
	}
	if err != nil {
		return Observation{}, err
	}
	if r.Ret < 0 {
		// It ran; a refused compat load is a finding to look at, not a
		// capability to list as absent.
		return Observation{}, fmt.Errorf("the 32-bit loader ran (pid %d) but BPF_PROG_LOAD failed: %s", r.PID, r.Error)
	}
	return present("%s (pid %d) loaded program id %d%s", Ia32Loader, r.PID, r.ID, abortNote(r)), nil
}

// abortNote says which runs before r died at start-up, for the evidence.
func abortNote(r ia32Run) string {
	if len(r.Aborts) == 0 {
		return ""
	}
	return fmt.Sprintf(" (after %d start-up aborts: %s)", len(r.Aborts), startabort.Join(r.Aborts))
}

// probeIa32 attaches prog and checks that it counted event for the 32-bit
// loader's tgid. The loader runs even when the program does not load or
// attach, so that a loader that cannot run is the reason given (every ia32
// capability is absent then, whatever the hook).
func probeIa32(prog string, event uint32, what string, attach func(*ebpf.Program) (link.Link, error)) (Observation, error) {
	s, err := spec()
	if err != nil {
		return Observation{}, err
	}
	objs, loadErr := load(s, prog)
	var attachErr error
	if loadErr == nil {
		defer objs.Close()
		var l link.Link
		if l, attachErr = attach(objs.prog); attachErr == nil {
			defer l.Close()
		}
	}
	r, err := runIa32Loader()
	var cre cannotRunError
	switch {
	case errors.As(err, &cre):
		return absent("the 32-bit loader cannot run: %v", err), nil
	case err != nil:
		return Observation{}, err
	case loadErr != nil:
		return absent("%v", loadErr), nil
	case attachErr != nil:
		return absent("attach %s: %v", what, attachErr), nil
	}
	hits := objs.coll.Maps["ia32_hits"]
	if hits == nil {
		return Observation{}, errors.New("probes have no map ia32_hits")
	}
	count := func(ev uint32) (uint64, error) {
		var n uint64
		err := hits.Lookup(ia32Key{Tgid: uint32(r.PID), Event: ev}, &n)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read ia32_hits for pid %d event %d: %w", r.PID, ev, err)
		}
		return n, nil
	}
	n, err := count(event)
	if err != nil {
		return Observation{}, err
	}
	extra := ""
	if event == ia32TpBTFBpf {
		// A 32-bit process must not show the 64-bit number: if it did,
		// the loader was not running in compat mode.
		x64, err := count(ia32TpBTFX64)
		if err != nil {
			return Observation{}, err
		}
		if x64 > 0 {
			return Observation{}, fmt.Errorf("tp_btf/sys_enter saw %d bpf() calls with the 64-bit id 321 from the 32-bit loader (pid %d)", x64, r.PID)
		}
		extra = ", none with id 321"
	}
	if n == 0 {
		// Absent only counts if the same attached program sees a 64-bit
		// bpf(): this process's own, counted under its tgid. The compat
		// kprobe has no 64-bit counterpart to check.
		control := uint32(0)
		switch event {
		case ia32Tracepoint:
			control = ia32Tracepoint
		case ia32TpBTFBpf:
			control = ia32TpBTFX64
		}
		if control != 0 {
			trigger()
			var own uint64
			if err := hits.Lookup(ia32Key{Tgid: uint32(os.Getpid()), Event: control}, &own); err != nil {
				return Observation{}, fmt.Errorf("%s never fired for the 32-bit loader, nor for this process's 64-bit bpf(): cannot judge (%v)", what, err)
			}
			return absent("%s never fired for the 32-bit loader's bpf() (pid %d, load ret %d), yet fired %d times for this process's 64-bit bpf()%s", what, r.PID, r.Ret, own, abortNote(r)), nil
		}
		return absent("%s attached but never fired for the 32-bit loader's bpf() (pid %d, load ret %d)%s", what, r.PID, r.Ret, abortNote(r)), nil
	}
	return present("%s fired %d times for the 32-bit loader's bpf() (pid %d)%s%s", what, n, r.PID, extra, abortNote(r)), nil
}
