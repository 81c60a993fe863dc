package sensor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Attach record kinds (bpf/include/attach.h).
const (
	kindAttach     = uint32(sentrySentryAttachRecordKindSENTRY_REC_ATTACH)
	kindAttachExit = uint32(sentrySentryAttachRecordKindSENTRY_REC_ATTACH_EXIT)
)

var (
	attachSize     = binary.Size(sentrySentryAttach{})
	attachExitSize = binary.Size(sentrySentryAttachExit{})
)

// AttachOp is how a program was attached, replaced or detached.
type AttachOp string

const (
	OpLinkCreate AttachOp = "link_create"
	OpRawTPOpen  AttachOp = "raw_tracepoint_open"
	OpProgAttach AttachOp = "prog_attach"
	OpProgDetach AttachOp = "prog_detach"
	OpLinkUpdate AttachOp = "link_update"
	OpLinkDetach AttachOp = "link_detach"
	OpPerfSetBPF AttachOp = "perf_event_set_bpf"
	// OpNetlinkDump is not a call: an XDP program or tc bpf filter that
	// a netlink dump found attached (set through netlink, no bpf() attach),
	// reported after the fact.
	OpNetlinkDump AttachOp = "netlink_dump"
	// OpLinkReleased and OpPerfReleased are not calls either: a link, or
	// a perf event running a program, that the agent reported attached
	// and later found gone without a detach call (its last fd closed, as
	// when the attacher exits).
	OpLinkReleased AttachOp = "link_released"
	OpPerfReleased AttachOp = "perf_event_released"
	// OpProgAttachReleased is not a call: a BPF_PROG_ATTACH attachment
	// the agent reported and later found gone without a BPF_PROG_DETACH
	// it saw (its target removed, or detached or replaced unseen).
	OpProgAttachReleased AttachOp = "prog_attach_released"
)

const opUnknownLabel = "op"

var attachOps = map[uint32]AttachOp{
	uint32(sentrySentryAttachOpSENTRY_ATTACH_LINK_CREATE):  OpLinkCreate,
	uint32(sentrySentryAttachOpSENTRY_ATTACH_RAW_TP_OPEN):  OpRawTPOpen,
	uint32(sentrySentryAttachOpSENTRY_ATTACH_PROG_ATTACH):  OpProgAttach,
	uint32(sentrySentryAttachOpSENTRY_ATTACH_PROG_DETACH):  OpProgDetach,
	uint32(sentrySentryAttachOpSENTRY_ATTACH_LINK_UPDATE):  OpLinkUpdate,
	uint32(sentrySentryAttachOpSENTRY_ATTACH_LINK_DETACH):  OpLinkDetach,
	uint32(sentrySentryAttachOpSENTRY_ATTACH_PERF_SET_BPF): OpPerfSetBPF,
}

// Detaches reports whether the operation removes a program rather than
// attaching one.
func (o AttachOp) Detaches() bool {
	return o == OpProgDetach || o == OpLinkDetach || o == OpLinkReleased || o == OpPerfReleased || o == OpProgAttachReleased
}

// RawTarget is what the kernel side could say about an attach target;
// package target turns it into names.
type RawTarget struct {
	AttachType   uint32   `json:"attach_type"`
	FD           uint32   `json:"fd,omitempty"` // or ifindex
	Flags        uint32   `json:"flags,omitempty"`
	BTFID        uint32   `json:"btf_id,omitempty"`
	ProgID       uint32   `json:"prog_id,omitempty"` // freplace / fentry on a program
	MapID        uint32   `json:"map_id,omitempty"`  // sockmap / sockhash (sk_msg, sk_skb)
	NetNS        uint32   `json:"netns,omitempty"`   // the caller's network namespace inode (ifindex targets are in it)
	CgroupIno    uint64   `json:"cgroup_ino,omitempty"`
	PerfType     uint32   `json:"perf_type,omitempty"`
	PerfConfig   uint64   `json:"perf_config,omitempty"`
	PerfOffset   uint64   `json:"perf_offset,omitempty"`
	Cookie       uint64   `json:"cookie,omitempty"`
	Count        uint32   `json:"count,omitempty"`
	Name         string   `json:"name,omitempty"` // as the caller passed it (untrusted)
	NameFromPerf bool     `json:"name_from_perf,omitempty"`
	PerfFound    bool     `json:"perf_found,omitempty"` // the target fd was a perf event
	Addrs        []uint64 `json:"addrs,omitempty"`      // kprobe_multi addresses or uprobe_multi offsets (first ones)
	Syms         []string `json:"syms,omitempty"`       // kprobe_multi symbols (first ones)
}

// AttachResult is how the attaching call ended.
type AttachResult string

const (
	AttachDone    AttachResult = "attached" // (detached, replaced for those ops)
	AttachFailed  AttachResult = "failed"
	AttachKilled  AttachResult = "killed" // SIGKILL pending when the call returned
	AttachUnknown AttachResult = "unknown"
)

// AttachEvent is one attach, replace or detach of a loaded program.
type AttachEvent struct {
	ID     uint64          `json:"id"`
	Time   time.Time       `json:"time"`
	Op     AttachOp        `json:"op"`
	Caller *program.Loader `json:"caller"`
	ProgID uint32          `json:"prog_id,omitempty"` // 0: the fd was not a program
	ProgFD uint32          `json:"prog_fd"`
	// ProgType is the attached program's type (the kernel's, from the fd).
	ProgType      uint32    `json:"prog_type,omitempty"`
	Target        RawTarget `json:"target"`
	ReplaceProgID uint32    `json:"replace_prog_id,omitempty"` // BPF_F_REPLACE: the program replaced
	ReplaceFD     uint32    `json:"replace_fd,omitempty"`
	LinkID        uint32    `json:"link_id,omitempty"` // the link updated, detached or created

	Verdict   Verdict `json:"verdict"`
	Action    Action  `json:"action"`
	RuleIndex int     `json:"rule_index"`
	RuleID    string  `json:"rule_id,omitempty"`

	// JudgeTime is what the sensor's entry program spent on this call
	// (reading the attr, resolving fds, the attach table, the report).
	JudgeTime time.Duration `json:"judge_ns"`

	Result AttachResult `json:"result"`
	Errno  int          `json:"errno,omitempty"`
	FD     int          `json:"fd,omitempty"`

	// ViaToken: the attached program was loaded through a BPF token (the
	// kernel's prog->aux->token, 6.9+); Token is that token's origin as
	// the sensor saw it created, else its user namespace alone.
	ViaToken bool           `json:"via_token,omitempty"`
	Token    *program.Token `json:"token,omitempty"`

	// AfterTheFact: a PERF_EVENT_IOC_SET_BPF made while the on-demand
	// ioctl hook was not attached yet (between the caller's
	// perf_event_open and the hook), found by BPF_TASK_FD_QUERY once it
	// was: no entry record, no kernel verdict, result attached.
	AfterTheFact bool `json:"after_the_fact,omitempty"`

	// Undo: a blocked BPF_PROG_ATTACH the kernel completed (the syscall
	// hooks kill at entry, the call still runs) and what the agent did to
	// take it off again.
	Undo *AttachUndo `json:"undo,omitempty"`

	seen      time.Time
	exitKtime uint64
}

func (s *Sensor) attachEvent(a *sentrySentryAttach) *AttachEvent {
	op, ok := attachOps[a.Op]
	if !ok {
		op = AttachOp(opUnknownLabel + strconv.Itoa(int(a.Op)))
	}
	ev := &AttachEvent{
		ID: a.H.LoadId, Op: op, ProgID: a.ProgId, ProgFD: a.ProgFd, ProgType: a.ProgType,
		Caller: &program.Loader{PID: a.Pid, TID: a.Tid, UID: a.Uid, GID: a.Gid, Comm: cString(a.Comm[:]),
			CgroupID: a.CgroupId, ExeInode: a.ExeIno, ExeDev: a.ExeDev},
		Target: RawTarget{
			AttachType: a.AttachType, FD: a.TargetFd, Flags: a.Flags, BTFID: a.TargetBtfId, ProgID: a.TargetProgId,
			MapID: a.TargetMapId, NetNS: a.NetnsIno,
			CgroupIno: a.TargetCgroup, PerfType: a.PerfType, PerfConfig: a.PerfConfig, PerfOffset: a.PerfOffset,
			Cookie: a.Cookie, Count: a.Count, Name: cString(a.Name[:]),
			NameFromPerf: a.NameFrom&uint32(sentrySentryAttachFromSENTRY_FROM_PERF_OPEN) != 0,
			PerfFound:    a.NameFrom&uint32(sentrySentryAttachFromSENTRY_FROM_PERF_EVENT) != 0,
		},
		ReplaceProgID: a.ReplaceProgId, ReplaceFD: a.ReplaceFd, LinkID: a.LinkId,
		Verdict: Verdict(a.Verdict), Action: Action(a.Action), RuleIndex: int(a.Rule), Result: AttachUnknown,
		JudgeTime: time.Duration(a.JudgeNs),
	}
	if s.asm != nil && s.asm.monoToWall != nil {
		ev.Time = s.asm.monoToWall(a.KtimeNs)
	}
	for i := range a.Syms {
		if n := cString(a.Syms[i][:]); n != "" {
			ev.Target.Syms = append(ev.Target.Syms, n)
		}
	}
	for i, v := range a.Addrs {
		if uint32(i) < a.Count && v != 0 {
			ev.Target.Addrs = append(ev.Target.Addrs, v)
		}
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", a.Pid)); err == nil {
		ev.Caller.Exe = exe
	}
	if ev.RuleIndex >= 0 {
		ev.RuleID = s.attachRuleID(ev.RuleIndex)
	}
	if a.ViaToken != 0 {
		ev.ViaToken = true
		if s.asm != nil && s.asm.tokens != nil {
			ev.Token = s.asm.tokens.byAddress(a.TokenAddr, a.TokenUserns)
		} else {
			ev.Token = &program.Token{UserNS: a.TokenUserns}
		}
	}
	return ev
}

func applyAttachExit(ev *AttachEvent, x *sentrySentryAttachExit) {
	switch {
	case x.Killed != 0:
		ev.Result = AttachKilled
	case x.Ret >= 0:
		ev.Result = AttachDone
	default:
		ev.Result = AttachFailed
	}
	if x.Ret < 0 {
		ev.Errno = int(-x.Ret)
	} else {
		ev.FD = int(x.Ret)
	}
	if x.LinkId != 0 {
		ev.LinkID = x.LinkId
	}
	ev.exitKtime = x.KtimeNs
}

// addAttach pairs attach records with their exits; it returns the event
// the record completed. Reader goroutine, s.mu held.
func (s *Sensor) addAttach(r record, now time.Time) *AttachEvent {
	if r.attach != nil {
		ev := s.attachEvent(r.attach)
		ev.seen = now
		s.attachPending[ev.ID] = ev
		return nil
	}
	ev := s.attachPending[r.loadID]
	if ev == nil {
		s.attachOrphans++
		return nil
	}
	delete(s.attachPending, r.loadID)
	applyAttachExit(ev, r.attachExit)
	return ev
}

// expireAttaches finishes attaches whose exit never came (result unknown).
func (s *Sensor) expireAttaches(cutoff time.Time) []*AttachEvent {
	var out []*AttachEvent
	for id, ev := range s.attachPending {
		if ev.seen.Before(cutoff) {
			delete(s.attachPending, id)
			out = append(out, ev)
		}
	}
	return out
}

func (s *Sensor) deliverAttach(ev *AttachEvent) {
	if needsUndo(ev) {
		// off the reader goroutine: the detach reopens targets and may
		// scan /proc; the event waits for its outcome.
		s.undoWG.Add(1)
		go func() {
			defer s.undoWG.Done()
			s.undoAttach(ev, ev.exitKtime)
			s.sendAttach(ev)
		}()
		return
	}
	s.sendAttach(ev)
}

func (s *Sensor) sendAttach(ev *AttachEvent) {
	select {
	case s.attaches <- ev:
	default:
		// The consumer is behind: attaches are never worth stalling loads.
		s.mu.Lock()
		s.userLost["attach_undelivered"]++
		s.mu.Unlock()
	}
}

// Attaches delivers attach, replace and detach events (closed after Close).
func (s *Sensor) Attaches() <-chan *AttachEvent { return s.attaches }

// AttachBlock is one entry of the kernel attach table: a target key and the
// attach rule (index into the ids given to SetAttachBlocks) that blocks it.
type AttachBlock struct {
	Kind  AttachKeyKind
	Value uint64
	Rule  int32
}

// AttachKeyKind is what an AttachBlock's value is.
type AttachKeyKind uint32

const (
	KeyTracepointID AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_TP_ID)
	KeyName         AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_NAME)
	KeyBTFID        AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_BTF_ID)
	// KeyIfindex's value is IfindexKey(netns, ifindex): an index means an
	// interface only within a network namespace.
	KeyIfindex AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_IFINDEX)
	KeyCgroup  AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_CGROUP)
	// KeyNetns: a flow dissector attach in this network namespace (inode).
	KeyNetns AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_NETNS)
	// KeyMapID: a program attached to this sockmap or sockhash.
	KeyMapID AttachKeyKind = AttachKeyKind(sentrySentryAttachKeyKindSENTRY_KEY_MAP_ID)
)

// IfindexKey is the attach-table value of interface ifindex in network
// namespace netns (the inode of the attaching caller's namespace, which
// is where the kernel looks the index up).
func IfindexKey(netns, ifindex uint32) uint64 { return uint64(netns)<<32 | uint64(ifindex) }

// NameHash is the kernel's hash of a name in the attach table (FNV-1a 64,
// as sentry_name_hash in bpf/attach.h).
func NameHash(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s) && i < 256; i++ {
		if s[i] == 0 {
			break
		}
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// SetAttachBlocks replaces the kernel attach table: attaches to these
// targets get a block verdict at entry. ids names the rules by index.
func (s *Sensor) SetAttachBlocks(entries []AttachBlock, ids []string) error {
	m := s.coll.Maps[sentryMapAttachBlock]
	if len(entries) > int(m.MaxEntries()) {
		return fmt.Errorf("attach table: %d targets, at most %d", len(entries), m.MaxEntries())
	}
	want := make(map[sentrySentryAttachKey]int32, len(entries))
	for _, e := range entries {
		k := sentrySentryAttachKey{Kind: uint32(e.Kind), Value: e.Value}
		if _, dup := want[k]; !dup {
			want[k] = e.Rule
		}
	}
	for k, v := range want {
		if err := m.Put(k, v); err != nil {
			return fmt.Errorf("attach table: put %d/%#x: %w", k.Kind, k.Value, err)
		}
	}
	var k sentrySentryAttachKey
	var stale []sentrySentryAttachKey
	it := m.Iterate()
	var v int32
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		m.Delete(k)
	}
	s.mu.Lock()
	s.attachRuleIDs = append([]string(nil), ids...)
	s.mu.Unlock()
	return it.Err()
}

func (s *Sensor) attachRuleID(i int) string {
	if i >= 0 && i < len(s.attachRuleIDs) {
		return s.attachRuleIDs[i]
	}
	return ""
}

// writeAttachConfig gives the kernel side the file_operations addresses
// that tell a program, link or perf event fd from any other file.
func (s *Sensor) writeAttachConfig(c sentrySentryAttachCfg) error {
	return s.coll.Maps[sentryMapAttachCfg].Put(uint32(0), &c)
}

// attachCfgScan is readAttachConfig running on its own goroutine from the
// start of New: reading the whole of /proc/kallsyms costs ~50 ms of CPU,
// most of it in the kernel, which overlaps the rest of the start instead
// of delaying judging.
type attachCfgScan struct {
	done chan struct{}
	cfg  sentrySentryAttachCfg
	err  error
}

func startAttachCfgScan() *attachCfgScan {
	a := &attachCfgScan{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.cfg, a.err = readAttachConfig("/proc/kallsyms")
	}()
	return a
}

func (a *attachCfgScan) wait() (sentrySentryAttachCfg, error) {
	<-a.done
	return a.cfg, a.err
}

// readAttachConfig finds the file_operations addresses the attach programs
// compare against in path (/proc/kallsyms format).
func readAttachConfig(path string) (sentrySentryAttachCfg, error) {
	want := map[string]*uint64{}
	var c sentrySentryAttachCfg
	want["bpf_prog_fops"] = &c.ProgFops
	want["bpf_link_fops"] = &c.LinkFops
	want["bpf_link_fops_poll"] = &c.LinkFopsPoll
	want["perf_fops"] = &c.PerfFops
	want["bpf_map_fops"] = &c.MapFops
	found := 0
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		// Only lines naming a wanted symbol are split: all of them hold
		// "_fops" and no module suffix ("\t[module]").
		if !bytes.Contains(line, []byte("_fops")) {
			continue
		}
		fields := strings.Fields(string(line))
		if len(fields) != 3 { // module symbols have a 4th field
			continue
		}
		if p, ok := want[fields[2]]; ok && *p == 0 {
			if v, err := strconv.ParseUint(fields[0], 16, 64); err == nil {
				*p = v
				if found++; found == len(want) {
					// the kernel formats every line it is asked for:
					// the rest (bss, modules) is not read
					break
				}
			}
		}
	}
	return c, sc.Err()
}

// attachProgram is one best-effort attach-monitoring program: where it goes.
type attachProgram struct {
	name     string
	group    string // tracepoint group, "" for an LSM hook
	event    string
	required bool // the sensor's view of attaches depends on it (reported in the note)
	arm      armMode
	onDemand bool // on ioctl with the on-demand hook: attached only while the gate is open (ioctlgate.go)
}

// armMode says when an attach program is attached.
type armMode int

const (
	armAlways  armMode = iota
	armEnforce         // only while the sensor enforces: an entry program only a block needs
	armNever           // loaded, never attached by the sensor (a benchmark's baseline)
)

// attachPlan lists the attach programs for a hook and config. On the
// syscall hooks the bpf() enter and exit programs already report attaches.
//
// ioctl runs for every ioctl on the host, so it gets as few programs as the
// mode allows: the exit program alone reads the command from the caller's
// registers and reports a PERF_EVENT_IOC_SET_BPF whole (one program per
// ioctl); the entry program, which can still stop the call, and the
// lsm/file_ioctl gate, which refuses what it marked, are attached only
// while the sensor enforces. The 5.10 build (bounded walk) has no
// bpf_task_pt_regs: there the entry program runs always and its exit
// returns on one array word (the old pair).
func attachPlan(hook Hook, cfg Config) []attachProgram {
	ioctl := sentryProgSentryIoctlEnter
	if cfg.Enforcer == EnforcerDeny {
		ioctl = sentryProgSentryIoctlEnterDeny
	}
	plan := []attachProgram{
		{name: sentryProgSentryPerfOpenEnter, group: "syscalls", event: "sys_enter_perf_event_open"},
		{name: sentryProgSentryPerfOpenExit, group: "syscalls", event: "sys_exit_perf_event_open"},
	}
	if cfg.Walk == WalkBounded {
		plan = append(plan,
			attachProgram{name: sentryProgSentryIoctlExitPaired, group: "syscalls", event: "sys_exit_ioctl", required: true},
			attachProgram{name: ioctl, group: "syscalls", event: "sys_enter_ioctl", required: true})
	} else {
		plan = append(plan,
			attachProgram{name: sentryProgSentryIoctlExit, group: "syscalls", event: "sys_exit_ioctl", required: true},
			attachProgram{name: ioctl, group: "syscalls", event: "sys_enter_ioctl", required: true, arm: armEnforce})
		if cfg.ioctlPairToo {
			plan = append(plan, attachProgram{name: sentryProgSentryIoctlExitPaired, group: "syscalls", event: "sys_exit_ioctl", arm: armNever})
		}
	}
	if hook.IsLSM() {
		plan = append(plan, attachProgram{name: sentryProgSentryAttachTp, group: "syscalls", event: "sys_enter_bpf", required: true})
	}
	if cfg.Enforcer == EnforcerDeny {
		plan = append(plan,
			attachProgram{name: sentryProgSentryLsmAttachGate, required: true},
			attachProgram{name: sentryProgSentryLsmIoctlGate, required: true, arm: armEnforce}) // every ioctl: only while a block can be due
	}
	if cfg.IoctlHook == IoctlHookOnDemand {
		// an LSM program that cannot be attached again once detached
		// (before 5.13: kernelprobe.LSMReattach) stays attached while the
		// sensor enforces, as with the hook always on
		for i, p := range plan {
			if p.event == "sys_enter_ioctl" || p.event == "sys_exit_ioctl" || p.name == sentryProgSentryLsmIoctlGate && cfg.lsmReattach {
				plan[i].onDemand = true
			}
		}
	}
	return plan
}

// attachSpecOf copies the attach programs' specs before the collection's
// spec is trimmed to the load hook's programs.
func attachSpecOf(spec *ebpf.CollectionSpec, plan []attachProgram) *ebpf.CollectionSpec {
	var names []string
	for _, p := range plan {
		names = append(names, p.name)
	}
	return specWith(spec, names...)
}

// startAttachPrograms attaches the attach-monitoring programs, gates last
// (so that no entry is refused before its judge runs). They were loaded
// with the sensor's programs (loadConcurrently); each is best-effort: the
// sensor runs without it and the note says what is not seen. Called before
// the load hooks attach, so the sensor's own loads and attaches here are
// not reported.
func (s *Sensor) startAttachPrograms(loaded *optionalPrograms, scan *attachCfgScan) string {
	defer loaded.close()
	c, err := scan.wait()
	if err == nil {
		err = s.writeAttachConfig(c)
	}
	if err != nil {
		s.log.Warn("attach monitoring: no file_operations addresses (fds are trusted as the caller names them)", "err", err)
	}
	s.armMu.Lock()
	s.armMode = s.cfg.Mode
	s.armMu.Unlock()
	var missing []string
	perfOpenExit := false
	for _, p := range attachPlan(s.hook, s.cfg) {
		coll, err := loaded.take(p.name)
		if coll == nil && errors.Is(err, errNotInObject) {
			continue
		}
		if coll != nil {
			if p.arm == armAlways && !p.onDemand {
				err = s.startAttachProgram(coll, p)
				perfOpenExit = perfOpenExit || err == nil && p.name == sentryProgSentryPerfOpenExit
			} else {
				err = s.addArmable(coll, p)
			}
		}
		if err != nil {
			s.log.Debug("attach monitoring program", "prog", p.name, "err", err)
			if p.required {
				missing = append(missing, fmt.Sprintf("%s: %v", p.name, err))
			}
		}
	}
	if s.cfg.IoctlHook == IoctlHookOnDemand {
		err := errors.New("sys_exit_perf_event_open program not attached")
		if perfOpenExit {
			err = s.startIoctlGate()
		}
		if err != nil {
			// without the perf_event_open reports, only always is sound
			s.log.Warn("ioctl hook: on-demand unavailable, attached always", "err", err)
			s.cfg.IoctlHook = IoctlHookAlways
			s.armMu.Lock()
			s.ioctlOpen = true
			s.armMu.Unlock()
		}
	}
	if err := s.armFor(s.cfg.Mode); err != nil {
		s.log.Debug("attach monitoring: arming for enforce mode", "err", err)
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return "partial: " + strings.Join(missing, "; ")
	}
	return "all"
}

func (s *Sensor) startAttachProgram(coll *ebpf.Collection, p attachProgram) error {
	l, err := attachOne(coll.Programs[p.name], p)
	if err != nil {
		coll.Close()
		return err
	}
	s.attachLinks = append(s.attachLinks, l) // not pinned: attach monitoring lives with the agent
	s.attachProgs = append(s.attachProgs, p)
	s.attachColls = append(s.attachColls, coll)
	return nil
}

func attachOne(prog *ebpf.Program, p attachProgram) (link.Link, error) {
	if p.group != "" {
		return link.Tracepoint(p.group, p.event, prog, nil)
	}
	return link.AttachLSM(link.LSMOptions{Program: prog})
}

// armable is an attach program the sensor attaches only while needed.
type armable struct {
	p    attachProgram
	prog *ebpf.Program
	l    hookLink // nil while not attached
}

// addArmable keeps a loaded program for arming (startAttachPrograms arms
// them all once they are loaded).
func (s *Sensor) addArmable(coll *ebpf.Collection, p attachProgram) error {
	s.attachColls = append(s.attachColls, coll) // closed with the sensor; Health knows its program
	s.armMu.Lock()
	defer s.armMu.Unlock()
	if s.armable == nil {
		s.armable = map[string]*armable{}
	}
	s.armable[p.name] = &armable{p: p, prog: coll.Programs[p.name]}
	return nil
}

// armFor attaches the armEnforce programs in enforce mode and detaches
// them otherwise. Gates (LSM programs) go first: a gate refuses only what
// the entry program marked, so it is harmless alone, while an entry
// program that marks a denial with no gate yet would report a refusal that
// does not happen.
func (s *Sensor) armFor(m Mode) error {
	s.armMu.Lock()
	defer s.armMu.Unlock()
	s.armMode = m
	return s.armLocked()
}

// enforcing says whether the armable programs are attached for enforce
// mode (SetMode arms them before the kernel sees enforce mode).
func (s *Sensor) enforcing() bool {
	s.armMu.Lock()
	defer s.armMu.Unlock()
	return s.armMode == ModeEnforce
}

// setIoctlOpen opens or closes the on-demand ioctl gate: its programs (as
// the mode wants them) are attached while it is open.
func (s *Sensor) setIoctlOpen(open bool) error {
	s.armMu.Lock()
	defer s.armMu.Unlock()
	s.ioctlOpen = open
	return s.armLocked()
}

func (s *Sensor) armLocked() error {
	m := s.armMode
	var errs []error
	order := make([]*armable, 0, len(s.armable))
	for _, a := range s.armable {
		if a.p.group == "" {
			order = append([]*armable{a}, order...)
		} else {
			order = append(order, a)
		}
	}
	for _, a := range order {
		want := armWanted(a.p, m, s.ioctlOpen)
		switch {
		case want && a.l == nil:
			var l hookLink
			var err error
			if s.perfViaChild && a.p.group != "" {
				// the gate is on: perf events are opened by a child
				// (sensor/perfopen.go)
				l, err = s.attachTracepointFromChild(a.prog, a.p.group, a.p.event)
			} else {
				l, err = attachOne(a.prog, a.p)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("attach %s: %w", a.p.name, err))
				continue
			}
			a.l = l
		case !want && a.l != nil:
			a.l.Close()
			a.l = nil
		}
	}
	return errors.Join(errs...)
}

// armWanted says whether armable program p is attached in mode m with the
// on-demand ioctl gate open or not.
func armWanted(p attachProgram, m Mode, open bool) bool {
	return p.arm != armNever && (p.arm != armEnforce || m == ModeEnforce) && (!p.onDemand || open)
}

// armedLinks are the armable programs' links now attached.
func (s *Sensor) armedLinks() []hookLink {
	s.armMu.Lock()
	defer s.armMu.Unlock()
	var out []hookLink
	for _, a := range s.armable {
		if a.l != nil {
			out = append(out, a.l)
		}
	}
	return out
}

func (s *Sensor) disarmAll() {
	s.armMu.Lock()
	defer s.armMu.Unlock()
	for _, a := range s.armable {
		if a.l != nil {
			a.l.Close()
			a.l = nil
		}
	}
}

// AttachCoverage says which attach-monitoring programs run: "all", or
// "partial: …" naming those that could not be loaded or attached.
func (s *Sensor) AttachCoverage() string { return s.attachNote }
