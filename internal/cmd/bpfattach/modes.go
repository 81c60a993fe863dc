package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// netAttach is the -mode attaches: cgroups, sockmaps, network hooks and
// multi-probes, each with a built-in two-instruction program.
type netAttach struct {
	mode, netns, cgroup, iface, mapName, syms string
	mapPin                                    string
	link, detach, replace, update, hold       bool
	progAttach                                bool
	ifindex, targetFD                         int

	closers []func()
}

func init() {
	// every bpf() and setns of -mode runs on the main thread (the
	// namespace is the thread's)
	runtime.LockOSThread()
}

func (n *netAttach) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
}

// builtin is a two-instruction program of typ that returns ret.
func builtin(name string, typ ebpf.ProgramType, at ebpf.AttachType, ret int32) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: typ, AttachType: at, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()}})
}

func progID(p *ebpf.Program) uint32 {
	if info, err := p.Info(); err == nil {
		id, _ := info.ID()
		return uint32(id)
	}
	return 0
}

func linkID(l link.Link) uint32 {
	if info, err := l.Info(); err == nil {
		return uint32(info.ID)
	}
	return 0
}

func (n *netAttach) run(res *result) error {
	if n.netns != "" {
		f, err := os.Open(n.netns)
		if err != nil {
			return err
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			return fmt.Errorf("setns %s: %w", n.netns, err)
		}
	}
	var (
		typ  ebpf.ProgramType
		at   ebpf.AttachType
		ret  int32
		name = "attach_" + n.mode
	)
	switch n.mode {
	case "cgroup":
		typ, at, ret = ebpf.CGroupSKB, ebpf.AttachCGroupInetIngress, 1
	case "flow_dissector":
		typ, at, ret = ebpf.FlowDissector, ebpf.AttachFlowDissector, 0
	case "sockmap":
		typ, at, ret = ebpf.SkMsg, ebpf.AttachSkMsgVerdict, 1
	case "tcx":
		typ, at, ret = ebpf.SchedCLS, ebpf.AttachTCXIngress, -1 // TCX_NEXT
	case "xdp":
		typ, at, ret = ebpf.XDP, ebpf.AttachXDP, 2 // XDP_PASS
	case "netkit":
		typ, at, ret = ebpf.SchedCLS, ebpf.AttachNetkitPrimary, -1 // NETKIT_NEXT
	case "netfilter":
		typ, at, ret = ebpf.Netfilter, ebpf.AttachNetfilter, 1 // NF_ACCEPT
	case "uprobe_multi":
		typ, at, ret = ebpf.Kprobe, ebpf.AttachTraceUprobeMulti, 0
	case "kprobe_multi":
		typ, at, ret = ebpf.Kprobe, ebpf.AttachTraceKprobeMulti, 0
	default:
		return fmt.Errorf("-mode %q: unknown", n.mode)
	}
	if len(name) > 15 {
		name = name[:15]
	}
	prog, err := builtin(name, typ, at, ret)
	if err != nil {
		return err
	}
	n.closers = append(n.closers, func() { prog.Close() })
	res.ProgID = progID(prog)
	second := func() (*ebpf.Program, error) {
		p, err := builtin(name, typ, at, ret)
		if err == nil {
			n.closers = append(n.closers, func() { p.Close() })
			res.NewProgID = progID(p)
		}
		return p, err
	}

	// BPF_PROG_ATTACH modes: a target fd, attach, then replace or detach.
	progAttach := func(target int) error {
		if n.targetFD >= 0 {
			target = n.targetFD
		}
		flags := uint32(0)
		if n.mode == "cgroup" {
			flags = unix.BPF_F_ALLOW_MULTI
		}
		err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: target, Program: prog, Attach: at, Flags: flags})
		if err != nil {
			return err
		}
		detach := func(p *ebpf.Program) error {
			return link.RawDetachProgram(link.RawDetachProgramOptions{Target: target, Program: p, Attach: at})
		}
		cur := prog
		if n.replace {
			p2, err := second()
			if err != nil {
				return err
			}
			if err := link.RawAttachProgram(link.RawAttachProgramOptions{Target: target, Program: p2, Attach: at,
				Flags: flags, Anchor: link.ReplaceProgram(prog)}); err != nil {
				detach(prog)
				return fmt.Errorf("replace: %w", err)
			}
			cur = p2
		}
		if n.detach {
			return detach(cur)
		}
		n.closers = append(n.closers, func() { detach(cur) })
		return nil
	}
	// link modes: update or detach afterwards.
	withLink := func(l link.Link, err error) error {
		if err != nil {
			return err
		}
		n.closers = append(n.closers, func() { l.Close() })
		res.LinkID = linkID(l)
		if n.update {
			p2, err := second()
			if err != nil {
				return err
			}
			if err := l.Update(p2); err != nil {
				return fmt.Errorf("update: %w", err)
			}
		}
		if n.detach {
			return l.Detach()
		}
		return nil
	}
	ifindex := func() (int, error) {
		if n.ifindex != 0 {
			return n.ifindex, nil
		}
		ifc, err := net.InterfaceByName(n.iface)
		if err != nil {
			return 0, err
		}
		return ifc.Index, nil
	}

	switch n.mode {
	case "cgroup":
		f, err := os.Open(n.cgroup)
		if err != nil {
			return err
		}
		n.closers = append(n.closers, func() { f.Close() })
		if n.link {
			target := int(f.Fd())
			if n.targetFD >= 0 {
				target = n.targetFD
			}
			return withLink(link.AttachRawLink(link.RawLinkOptions{Target: target, Program: prog, Attach: at}))
		}
		return progAttach(int(f.Fd()))
	case "flow_dissector":
		return progAttach(0) // the caller's network namespace
	case "sockmap":
		var m *ebpf.Map
		var err error
		if n.mapPin != "" {
			// a pinned map outlives this process, and so do its attachments
			if m, err = ebpf.LoadPinnedMap(n.mapPin, nil); errors.Is(err, os.ErrNotExist) {
				m, err = nil, nil
			}
			if err != nil {
				return err
			}
		}
		if m == nil {
			if m, err = ebpf.NewMap(&ebpf.MapSpec{Name: n.mapName, Type: ebpf.SockMap, KeySize: 4, ValueSize: 4, MaxEntries: 1}); err != nil {
				return err
			}
			if n.mapPin != "" {
				if err := m.Pin(n.mapPin); err != nil {
					m.Close()
					return err
				}
			}
		}
		n.closers = append(n.closers, func() { m.Close() })
		if info, err := m.Info(); err == nil {
			id, _ := info.ID()
			res.MapID = uint32(id)
		}
		return progAttach(m.FD())
	case "xdp":
		idx, err := ifindex()
		if err != nil {
			return err
		}
		res.Ifindex = idx
		return withLink(link.AttachXDP(link.XDPOptions{Program: prog, Interface: idx}))
	case "tcx", "netkit":
		if n.mode == "netkit" && n.ifindex == 0 {
			if _, err := net.InterfaceByName(n.iface); err != nil {
				if err := createNetkit(n.iface); err != nil {
					return err
				}
			}
		}
		idx, err := ifindex()
		if err != nil {
			return err
		}
		res.Ifindex = idx
		if n.mode == "tcx" && n.progAttach {
			return progAttach(idx) // the target is the ifindex (6.6+)
		}
		if n.mode == "tcx" {
			return withLink(link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: at}))
		}
		return withLink(link.AttachNetkit(link.NetkitOptions{Interface: idx, Program: prog, Attach: at}))
	case "netfilter":
		return withLink(link.AttachNetfilter(link.NetfilterOptions{Program: prog, ProtocolFamily: link.NetfilterProtoIPv4,
			Hook: link.NetfilterInetLocalOut, Priority: -128}))
	case "uprobe_multi":
		bin, syms, ok := strings.Cut(n.syms, ":")
		if !ok {
			return errors.New("-syms BINARY:SYM,SYM")
		}
		ex, err := link.OpenExecutable(bin)
		if err != nil {
			return err
		}
		return withLink(ex.UprobeMulti(strings.Split(syms, ","), prog, nil))
	case "kprobe_multi":
		return withLink(link.KprobeMulti(prog, link.KprobeMultiOptions{Symbols: strings.Split(n.syms, ",")}))
	}
	return nil
}
