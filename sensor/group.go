package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The kernel side of loader groups is bpf/group.h; docs/GROUPS.md has the
// model. This file attaches its programs, teaches the kernel which fds are
// maps and programs, and turns its prog_array records into
// ProgArrayWrite values.

const kindProgArray = uint32(sentrySentryRecordKindSENTRY_REC_PROG_ARRAY)

var progArrayRecSize = binary.Size(sentrySentryProgArrayRec{})

// GroupID names a loader group: the tgid of the process that started it and
// that process's start time (boot-time nanoseconds), which a later process
// with the same tgid cannot have.
type GroupID struct {
	TGID  uint32 `json:"tgid"`
	Start uint64 `json:"start_ns"`
}

func (g GroupID) String() string { return fmt.Sprintf("%d@%d", g.TGID, g.Start) }

// ProgArrayWrite is one bpf(BPF_MAP_UPDATE_ELEM or BPF_MAP_DELETE_ELEM) on a
// prog_array map (a tail-call table), seen at its exit.
type ProgArrayWrite struct {
	Time time.Time `json:"time"`
	PID  uint32    `json:"pid"`
	TID  uint32    `json:"tid"`
	UID  uint32    `json:"uid"`
	Comm string    `json:"comm"` // untrusted: chosen by the process
	// Op is "update" or "delete".
	Op    string `json:"op"`
	MapID uint32 `json:"map_id"`
	// Key is the slot; KeyUnreadable when the key pointer could not be read.
	Key           uint32 `json:"key"`
	KeyUnreadable bool   `json:"key_unreadable,omitempty"`
	// ValueFD is the program fd passed (update); ProgID the program it
	// named, 0 when the fd was no program.
	ValueFD uint32 `json:"value_fd,omitempty"`
	ProgID  uint32 `json:"prog_id,omitempty"`
	// OldProgID is the program the slot held when the call started: a
	// successful update of an occupied slot is a tail-call table swap.
	OldProgID uint32 `json:"old_prog_id,omitempty"`
	Errno     int    `json:"errno,omitempty"` // positive errno when the call failed
	// Group is the writer's group after the write (joined with the
	// array's and the written program's when it succeeded).
	Group GroupID `json:"group"`
}

// Swap reports whether the write replaced one program by another.
func (w *ProgArrayWrite) Swap() bool {
	return w.Errno == 0 && w.Op == "update" && w.OldProgID != 0 && w.ProgID != 0 && w.OldProgID != w.ProgID
}

func parseProgArrayRec(b []byte) (*sentrySentryProgArrayRec, error) {
	if len(b) < progArrayRecSize {
		return nil, fmt.Errorf("%w: prog_array record is %d bytes, want %d", ErrRecord, len(b), progArrayRecSize)
	}
	var r sentrySentryProgArrayRec
	if _, err := binary.Decode(b[:progArrayRecSize], binary.LittleEndian, &r); err != nil {
		return nil, fmt.Errorf("%w: prog_array record: %v", ErrRecord, err)
	}
	return &r, nil
}

const (
	bpfMapUpdateElem = 2
	bpfMapDeleteElem = 3
)

func progArrayWrite(r *sentrySentryProgArrayRec, wall func(uint64) time.Time) *ProgArrayWrite {
	w := &ProgArrayWrite{
		Time: wall(r.KtimeNs), PID: r.H.Pid, TID: r.Tid, UID: r.Uid, Comm: cString(r.Comm[:]),
		MapID: r.MapId, Key: r.Key, KeyUnreadable: r.KeyRead == 0, ValueFD: r.ValueFd, ProgID: r.ProgId,
		OldProgID: r.OldProgId, Group: GroupID{TGID: r.Group.Tgid, Start: r.Group.Start},
	}
	switch r.Cmd {
	case bpfMapUpdateElem:
		w.Op = "update"
	case bpfMapDeleteElem:
		w.Op = "delete"
	default:
		w.Op = fmt.Sprintf("cmd(%d)", r.Cmd)
	}
	if r.Ret < 0 {
		w.Errno = int(-r.Ret)
	}
	return w
}

// groupProgram is the prog_array write hook for a sensor whose bpf() exit
// is seen on exitHook: the same kind of hook as the exit.
func groupProgram(exitHook Hook) string {
	if exitHook == HookBTF {
		return sentryProgSentryGroupEnterBtf
	}
	return sentryProgSentryGroupEnterTp
}

// attachGroup attaches the group programs; calibrateGroupsOrSay, once the
// agent is known, calibrates the kernel side: the sensor writes a program of its own into a prog_array of its own,
// which the kernel hook takes as the f_op of a map fd and of a program fd.
// Without that, prog_array writes are not recognised (the sensor says so
// and carries on: groups then stay per process).
func (s *Sensor) attachGroup(exitHook Hook) error {
	enter := groupProgram(exitHook)
	le, err := attachGroupProg(exitHook, s.coll.Programs[enter], "syscalls", "sys_enter_bpf")
	if err != nil {
		return fmt.Errorf("attach %s: %w", enter, err)
	}
	s.links = append(s.links, le)
	return nil
}

// calibrateGroupsOrSay runs calibrateGroups once the kernel side knows the
// agent (its identity learnt, the config committed): the hook takes only
// the agent's own write as the calibration. A failure leaves groups per
// process, and says so.
func (s *Sensor) calibrateGroupsOrSay() {
	if err := s.calibrateGroups(); err != nil {
		s.groupNote = fmt.Sprintf("prog_array writes not recognised: %v", err)
		s.log.Warn("loader groups: prog_array writes will not join groups", "err", err)
	}
}

func attachGroupProg(h Hook, p *ebpf.Program, group, name string) (link.Link, error) {
	if p == nil {
		return nil, errors.New("program not loaded")
	}
	if h == HookBTF {
		return link.AttachTracing(link.TracingOptions{Program: p})
	}
	return link.Tracepoint(group, name, p, nil)
}

func (s *Sensor) calibrateGroups() error {
	arr, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return fmt.Errorf("create calibration prog_array: %w", err)
	}
	defer arr.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load calibration program: %w", err)
	}
	defer prog.Close()
	if err := arr.Put(uint32(0), prog); err != nil {
		return fmt.Errorf("write calibration program: %w", err)
	}
	var c sentryGroupCalib
	if err := s.coll.Maps[sentryMapGroupCalibration].Lookup(uint32(0), &c); err != nil {
		return fmt.Errorf("read calibration: %w", err)
	}
	if c.MapFops == 0 || c.ProgFops == 0 {
		return fmt.Errorf("the kernel hook did not see the sensor's own prog_array write (map %#x, prog %#x)", c.MapFops, c.ProgFops)
	}
	return nil
}

// GroupNote says what the group machinery cannot do on this kernel ("" when
// it works fully). It waits for the start (Ready), which calibrates.
func (s *Sensor) GroupNote() string {
	<-s.started
	return s.groupNote
}

// ProgArrayWrites delivers the prog_array writes the kernel reported. The
// channel is buffered; when nobody reads it, writes past its capacity are
// counted as lost (prog_array_undelivered) rather than stalling the sensor.
func (s *Sensor) ProgArrayWrites() <-chan *ProgArrayWrite { return s.writes }

func (s *Sensor) deliverWrite(w *ProgArrayWrite) {
	select {
	case s.writes <- w:
	default:
		s.mu.Lock()
		s.userLost["prog_array_undelivered"]++
		s.mu.Unlock()
	}
}

// GroupStats are the kernel's group counters.
type GroupStats struct {
	Judged    uint64 `json:"judged"`    // loads judged with a group view
	Committed uint64 `json:"committed"` // loads added to a group
	Joins     uint64 `json:"joins"`     // groups joined into others
	Writes    uint64 `json:"writes"`    // prog_array writes reported
	NoScratch uint64 `json:"no_scratch"`
	WriteLost uint64 `json:"write_lost"` // prog_array writes not reported
	// RefsOver counts loads with map references (or groups) past the
	// kernel's cap (64, the kernel's MAX_USED_MAPS): those past it joined
	// nothing at the judge. RefsUnread counts loads with fd_array entries
	// the judge could not read. Either makes the load's read_errors
	// nonzero (blocked with BlockUnreadable).
	RefsOver   uint64 `json:"refs_over"`
	RefsUnread uint64 `json:"refs_unread"`
	Groups     int    `json:"groups"` // groups with a sum now
}

// GroupStats reads the kernel's group counters and counts the live groups.
func (s *Sensor) GroupStats() (GroupStats, error) {
	st, err := s.groupCounters()
	if err != nil {
		return st, err
	}
	var k sentryGroupKey
	var a sentryGroupAcc
	it := s.coll.Maps[sentryMapGroupAccs].Iterate()
	for it.Next(&k, &a) {
		st.Groups++
	}
	return st, it.Err()
}

// groupCounters reads the kernel's group counters only.
func (s *Sensor) groupCounters() (GroupStats, error) {
	var st GroupStats
	m := s.coll.Maps[sentryMapGroupStats]
	dst := []*uint64{&st.Judged, &st.Committed, &st.Joins, &st.Writes, &st.NoScratch, &st.WriteLost, &st.RefsOver, &st.RefsUnread}
	for i, p := range dst {
		var per []uint64
		if err := m.Lookup(uint32(i), &per); err != nil {
			return st, fmt.Errorf("read group counter %d: %w", i, err)
		}
		for _, v := range per {
			*p += v
		}
	}
	return st, nil
}

// GroupSum is what the kernel holds for one group.
type GroupSum struct {
	Progs       uint32            `json:"progs"`
	Helpers     map[uint32]uint32 `json:"helpers"`
	HelperOther uint32            `json:"helper_other,omitempty"`
}

// Group returns the group the process pid (started at start, boot-time
// ns) belongs to now and that group's sum; ok is false when the kernel
// holds none.
func (s *Sensor) Group(id GroupID) (GroupID, GroupSum, bool, error) {
	k := sentryGroupKey{Tgid: id.TGID, Start: id.Start}
	for range 4 {
		var p sentryGroupKey
		if err := s.coll.Maps[sentryMapGroupParent].Lookup(&k, &p); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				break
			}
			return id, GroupSum{}, false, err
		}
		if p == k {
			break
		}
		k = p
	}
	root := GroupID{TGID: k.Tgid, Start: k.Start}
	var a sentryGroupAcc
	if err := s.coll.Maps[sentryMapGroupAccs].Lookup(&k, &a); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return root, GroupSum{}, false, nil
		}
		return root, GroupSum{}, false, err
	}
	sum := GroupSum{Progs: a.Progs, HelperOther: a.HelperOther, Helpers: map[uint32]uint32{}}
	for i, n := range a.HelperCnt {
		if n > 0 {
			sum.Helpers[uint32(i)] = uint32(n)
		}
	}
	return root, sum, true, nil
}

// groupSweepEvery is how often the reader drops finished groups.
const groupSweepEvery = 30 * time.Second

// processAlive reports whether the process g names still runs: its tgid
// exists and started at g's start (a reused tgid started later).
func processAlive(g GroupID) bool {
	ticks, err := procStartTicks(int(g.TGID))
	return err == nil && ticks == g.Start/nsecPerTick
}

// progLoaded reports whether the program with this id is still loaded.
func progLoaded(id uint32) bool {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	p.Close()
	return true
}

// SweepGroups drops the kernel state of every group whose process has
// exited and none of whose programs is still loaded: its sum, its joins,
// the prog_arrays and programs pointing at it. It returns how many groups
// it dropped. Only the programs of groups whose process has exited are
// looked up, so a sweep of live loaders costs a few syscalls however many
// programs they hold. The reader calls it periodically; tests call it
// directly.
func (s *Sensor) SweepGroups() (int, error) {
	accs := s.coll.Maps[sentryMapGroupAccs]
	ended := map[sentryGroupKey]bool{}
	withSum := map[sentryGroupKey]bool{}
	var k sentryGroupKey
	var a sentryGroupAcc
	it := accs.Iterate()
	for it.Next(&k, &a) {
		withSum[k] = true
		if !processAlive(GroupID{TGID: k.Tgid, Start: k.Start}) {
			ended[k] = true
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("walk group sums: %w", err)
	}
	// Processes that opened another group's pin and have exited: their
	// next load will not come.
	adopt := s.coll.Maps[sentryMapGroupAdopt]
	var ak, av sentryGroupKey
	var staleAdopt []sentryGroupKey
	it = adopt.Iterate()
	for it.Next(&ak, &av) {
		if !processAlive(GroupID{TGID: ak.Tgid, Start: ak.Start}) {
			staleAdopt = append(staleAdopt, ak)
		}
	}
	for _, k := range staleAdopt {
		adopt.Delete(&k)
	}
	if len(ended) == 0 {
		return 0, nil
	}
	roots := map[sentryGroupKey]sentryGroupKey{}
	resolve := func(k sentryGroupKey) sentryGroupKey {
		if r, ok := roots[k]; ok {
			return r
		}
		r := k
		for range 4 {
			var p sentryGroupKey
			if s.coll.Maps[sentryMapGroupParent].Lookup(&r, &p) != nil || p == r {
				break
			}
			r = p
		}
		roots[k] = r
		return r
	}
	progs := s.coll.Maps[sentryMapGroupProgs]
	known, err := dumpGroupProgs(progs)
	if err != nil {
		return 0, err
	}
	var gone []uint32 // programs of ended groups that are no longer loaded
	for id, pk := range known {
		r := resolve(pk)
		if !ended[r] {
			continue
		}
		if progLoaded(id) {
			delete(ended, r) // a program of the group lives on: keep it
		} else {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		progs.Delete(&id)
	}
	for k := range ended {
		accs.Delete(&k)
	}
	// Joins from or into a dropped group, of processes that are gone.
	parent := s.coll.Maps[sentryMapGroupParent]
	var from, to sentryGroupKey
	var stale []sentryGroupKey
	it = parent.Iterate()
	for it.Next(&from, &to) {
		if (ended[to] || ended[from]) && !processAlive(GroupID{TGID: from.Tgid, Start: from.Start}) {
			stale = append(stale, from)
		}
	}
	for _, k := range stale {
		parent.Delete(&k)
	}
	maps := s.coll.Maps[sentryMapGroupMaps]
	var mid uint32
	var mk sentryGroupKey
	var staleMaps []uint32
	it = maps.Iterate()
	for it.Next(&mid, &mk) {
		r := resolve(mk)
		// A map of a dropped group, or of a group that never had a
		// program (its creator loaded none) and whose process is gone.
		if ended[r] || ended[mk] || (!withSum[r] && !processAlive(GroupID{TGID: r.Tgid, Start: r.Start})) {
			staleMaps = append(staleMaps, mid)
		}
	}
	for _, id := range staleMaps {
		maps.Delete(&id)
	}
	return len(ended), nil
}

// dumpGroupProgs reads group_progs in batches (one syscall per 4096
// entries; Iterate costs two per entry), or entry by entry where the kernel
// has no batch operations.
func dumpGroupProgs(m *ebpf.Map) (map[uint32]sentryGroupKey, error) {
	known := map[uint32]sentryGroupKey{}
	const batch = 4096
	keys := make([]uint32, batch)
	vals := make([]sentryGroupKey, batch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			known[keys[i]] = vals[i]
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return known, nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read group programs: %w", err)
		}
	}
	var id uint32
	var k sentryGroupKey
	it := m.Iterate()
	for it.Next(&id, &k) {
		known[id] = k
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("walk group programs: %w", err)
	}
	return known, nil
}
