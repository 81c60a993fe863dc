package kernelprobe

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BTF says why the kernel's BTF (CO-RE, LSM and tracing programs need it)
// is unusable, or nil: the file must open and start with the BTF magic.
func BTF() error {
	f, err := os.Open(BTFPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.Read(magic[:]); err != nil {
		return fmt.Errorf("read %s: %w", BTFPath, err)
	}
	// 0xeB9F, little endian on x86.
	if magic != [2]byte{0x9f, 0xeb} {
		return fmt.Errorf("%s starts with %x, not the BTF magic", BTFPath, magic)
	}
	return nil
}

// MountSecurityfs mounts securityfs at /sys/kernel/security unless the
// active LSM list is already readable.
func MountSecurityfs() error {
	if _, err := os.Stat(LSMPath); err == nil {
		return nil
	}
	if err := unix.Mount("securityfs", "/sys/kernel/security", "securityfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount securityfs at /sys/kernel/security: %w", err)
	}
	return nil
}

// ActiveLSMs returns the active LSM list ("lockdown,capability,bpf"),
// mounting securityfs first when it is not.
func ActiveLSMs() (string, error) {
	mountErr := MountSecurityfs()
	b, err := os.ReadFile(LSMPath)
	if err != nil {
		return "", errors.Join(mountErr, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// BPFLSMActive says why BPF LSM programs would never run here, or nil:
// "bpf" must be in the active LSM list. Without it an LSM program may
// still load and attach (5.10 without lsm=...,bpf), and never run.
func BPFLSMActive() error {
	list, err := ActiveLSMs()
	if err != nil {
		return fmt.Errorf("active LSMs unknown: %w", err)
	}
	if !HasLSM(list, "bpf") {
		return fmt.Errorf("BPF LSM not active (lsm=%s; boot with lsm=...,bpf)", list)
	}
	return nil
}

// Lockdown returns the active lockdown mode ("none", "integrity",
// "confidentiality"), mounting securityfs first when it is not.
func Lockdown() (string, error) {
	mountErr := MountSecurityfs()
	b, err := os.ReadFile(LockdownPath)
	if err != nil {
		return "", fmt.Errorf("read lockdown mode: %w", errors.Join(mountErr, err))
	}
	return ParseLockdown(string(b))
}

// SyscallTracepoints says why the syscalls:sys_enter_bpf/sys_exit_bpf
// tracepoints are missing, or nil; it mounts tracefs at
// /sys/kernel/tracing when neither tracefs nor debugfs shows them.
func SyscallTracepoints() error {
	for _, p := range []string{"/sys/kernel/tracing/events/syscalls/sys_enter_bpf", "/sys/kernel/debug/tracing/events/syscalls/sys_enter_bpf"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount tracefs at /sys/kernel/tracing: %w", err)
	}
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_enter_bpf"); err != nil {
		return fmt.Errorf("syscall tracepoints missing (CONFIG_FTRACE_SYSCALLS?): %w", err)
	}
	return nil
}

var retZero = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}

// Load loads spec and closes it at once: nil means the kernel accepts that
// program type at that attach point. EPERM, which cilium/ebpf words as a
// MEMLOCK hint, means here that the kernel refuses the type, and is said so.
func Load(spec *ebpf.ProgramSpec) error { return LoadWith(spec, nil) }

// LoadWith is Load against the kernel's BTF already parsed (cache; nil:
// parsed here), so that a start that parses it once can share it. A single
// program load parses its own for an LSM program's attach target whatever
// its options say; a collection load takes the cache.
func LoadWith(spec *ebpf.ProgramSpec, cache *btf.Cache) error {
	var p *ebpf.Program
	var err error
	if cache == nil {
		p, err = ebpf.NewProgramWithOptions(spec, ebpf.ProgramOptions{LogDisabled: true})
	} else {
		var c *ebpf.Collection
		c, err = ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"probe": spec}},
			ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogDisabled: true}, Cache: cache})
		if err == nil {
			p = c.Programs["probe"]
			c.Programs = nil
			c.Close()
		}
	}
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("load refused: EPERM (program type not permitted on this kernel)")
		}
		return err
	}
	p.Close()
	return nil
}

// The one-instruction programs Load is asked about ("r0 = 0; exit").

// LSMBpfGate is a non-sleepable lsm/bpf program (the bounded walk's gate).
func LSMBpfGate() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "bpf", Instructions: retZero, License: "GPL"}
}

// LSMBpfSleepable is a sleepable lsm.s/bpf program (the lsm-bpf hook with bpf_loop).
func LSMBpfSleepable() *ebpf.ProgramSpec {
	s := LSMBpfGate()
	s.Flags = unix.BPF_F_SLEEPABLE
	return s
}

// LSMProgLoad is an lsm/bpf_prog_load program (the hook exists from 6.9).
func LSMProgLoad() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "bpf_prog_load", Instructions: retZero, License: "GPL"}
}

// FentrySecurityBpf is an fentry program on security_bpf.
func FentrySecurityBpf() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry, AttachTo: "security_bpf", Instructions: retZero, License: "GPL"}
}

// TpBTFSysEnter is a tp_btf/sys_enter program.
func TpBTFSysEnter() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "sys_enter", Instructions: retZero, License: "GPL"}
}

// LSMBpfUsable says why an LSM program on the bpf hook (sleepable or not)
// cannot work here, or nil: the BPF LSM must be active and the program
// must load.
func LSMBpfUsable(sleepable bool) error { return LSMBpfUsableWith(sleepable, nil) }

// LSMBpfUsableWith is LSMBpfUsable with the kernel's BTF already parsed
// (cache; nil: parsed here).
func LSMBpfUsableWith(sleepable bool, cache *btf.Cache) error {
	if err := BPFLSMActive(); err != nil {
		return err
	}
	spec := LSMBpfGate()
	if sleepable {
		spec = LSMBpfSleepable()
	}
	return LoadWith(spec, cache)
}

// LSMProgLoadUsable says why an LSM program on bpf_prog_load cannot work
// here, or nil: the BPF LSM must be active and the hook must exist (6.9).
func LSMProgLoadUsable() error { return LSMProgLoadUsableWith(nil) }

// LSMProgLoadUsableWith is LSMProgLoadUsable with the kernel's BTF already
// parsed (cache; nil: parsed here).
func LSMProgLoadUsableWith(cache *btf.Cache) error {
	if err := BPFLSMActive(); err != nil {
		return err
	}
	return LoadWith(LSMProgLoad(), cache)
}

// LSMFileIoctl is an lsm/file_ioctl program (the ioctl gate's hook).
func LSMFileIoctl() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "file_ioctl", Instructions: retZero, License: "GPL"}
}

// LSMReattach says why an LSM program, once attached and detached, cannot
// be attached again here, or nil. Before 5.13 the kernel forgets an LSM or
// tracing program's target at its first attach, and a second attach of the
// same program fails (ENOENT); an LSM program attached and detached on
// demand then needs a fresh load each time. Probed by doing it: an
// lsm/file_ioctl program that allows everything, attached twice.
func LSMReattach() error {
	if err := BPFLSMActive(); err != nil {
		return err
	}
	p, err := ebpf.NewProgramWithOptions(LSMFileIoctl(), ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return fmt.Errorf("load lsm/file_ioctl: %w", err)
	}
	defer p.Close()
	for i := 1; i <= 2; i++ {
		l, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			if i == 2 {
				return fmt.Errorf("attach an LSM program a second time: %w", err)
			}
			return fmt.Errorf("attach lsm/file_ioctl: %w", err)
		}
		l.Close()
	}
	return nil
}

// KprobeTargets are the bpf syscall's kprobe targets, best first.
// __x64_sys_bpf takes the user's pt_regs (syscall wrappers, 4.17); the
// others take the arguments directly where they exist and are not inlined
// (__sys_bpf is inlined on 5.10 and takes a bpfptr_t from 5.14, so it is
// not a target).
var KprobeTargets = []string{"__x64_sys_bpf", "__se_sys_bpf", "__do_sys_bpf"}

// kprobeFiles show that the kernel has kprobes (CONFIG_KPROBES) and an
// interface to create them; checked in this order, so the first one found
// is what doctor names.
var kprobeFiles = []string{
	"/sys/kernel/tracing/kprobe_events",
	"/sys/kernel/debug/kprobes",
	"/sys/kernel/debug/tracing/kprobe_events",
	"/sys/bus/event_source/devices/kprobe/type", // the kprobe PMU (4.17)
}

// KprobesAttachable says why no kprobe can be attached here, or nil, from
// files only (no program is loaded): cheap enough for the sensor's start.
func KprobesAttachable() error {
	if _, err := kprobeFile(); err != nil {
		return err
	}
	return nil
}

func kprobeFile() (string, error) {
	for _, p := range kprobeFiles {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no kprobe PMU and no kprobe_events in tracefs (CONFIG_KPROBES off?)")
}

// Kprobes says how the kernel shows it has kprobes, or why it has none:
// a kprobe file, else a kprobe on security_bpf that attaches.
func Kprobes() (string, error) {
	if p, err := kprobeFile(); err == nil {
		return p + " present", nil
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{Type: ebpf.Kprobe, Instructions: retZero, License: "GPL"}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return "", fmt.Errorf("kprobe program does not load: %w", err)
	}
	defer prog.Close()
	l, err := link.Kprobe("security_bpf", prog, nil)
	if err != nil {
		return "", fmt.Errorf("kprobe programs load but cannot attach (no kprobe_events; CONFIG_KPROBES off?): %w", err)
	}
	l.Close()
	return "attached a kprobe to security_bpf", nil
}

// Helper says why tracepoint programs cannot call fn here, or nil.
func Helper(fn asm.BuiltinFunc) error {
	return features.HaveProgramHelper(ebpf.TracePoint, fn)
}

// RingBuf says why BPF_MAP_TYPE_RINGBUF (5.8) is missing, or nil.
func RingBuf() error { return features.HaveMapType(ebpf.RingBuf) }

// LockdownError is a helper the kernel refuses because of its lockdown mode.
type LockdownError struct {
	Mode string // the active lockdown mode
	Err  error  // the helper probe's own error
}

func (e *LockdownError) Error() string {
	return fmt.Sprintf("refused by kernel lockdown=%s (it forbids writing user memory from BPF): %v", e.Mode, e.Err)
}

func (e *LockdownError) Unwrap() error { return e.Err }

// ProbeWriteUser says why tracepoint programs cannot call
// bpf_probe_write_user here, or nil. Under lockdown (integrity or
// confidentiality: LOCKDOWN_BPF_WRITE_USER) the error is a *LockdownError.
func ProbeWriteUser() error {
	err := Helper(asm.FnProbeWriteUser)
	if err == nil {
		return nil
	}
	if mode, lerr := Lockdown(); lerr == nil && mode != "none" {
		return &LockdownError{Mode: mode, Err: err}
	}
	return err
}

// ia32 caches IA32Entry: the answer lasts as long as the kernel, and
// parsing the kernel's BTF for it costs ~20 ms of CPU (a profile of the
// sensor's start).
var ia32 struct {
	sync.Once
	has bool
}

// IA32Entry reports whether the kernel has the 32-bit bpf() entry point
// (__ia32_sys_bpf in its BTF: 32-bit processes can call bpf() as syscall
// 357). spec is the kernel's BTF when the caller has parsed it already,
// else nil.
func IA32Entry(spec *btf.Spec) bool {
	ia32.Do(func() {
		if spec == nil {
			var err error
			if spec, err = btf.LoadKernelSpec(); err != nil {
				return
			}
		}
		types, err := spec.AnyTypesByName("__ia32_sys_bpf")
		ia32.has = err == nil && len(types) > 0
	})
	return ia32.has
}

// Pidfd says why pidfd_open (5.3) and pidfd_send_signal (5.1) cannot be
// used here, or nil: the agent follows processes by pidfd, so that a
// reused pid is never mistaken for the process it watched.
func Pidfd() error {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		return fmt.Errorf("pidfd_send_signal: %w", err)
	}
	return nil
}
