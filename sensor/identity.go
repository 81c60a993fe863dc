package sensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cilium/ebpf"
)

// Identity is how the kernel side recognises the agent's own loads: the
// tgid and the start time of its thread group leader in nanoseconds since
// boot (task->start_boottime). A pid can be had again by another process
// after the agent died (clone3 set_tid chooses it); a start time cannot, and
// at nanosecond resolution no later process shares it. User space cannot
// read the nanoseconds (/proc rounds them to 10 ms ticks, which a process
// created in the same tick would share), so the kernel side learns them: the
// agent writes its tgid with start 0, and the exit hook fills in the start
// of the first bpf() call it sees from that tgid (learn_self).
type Identity struct {
	TGID    uint32
	StartNs uint64 // 0: not yet learnt; the kernel then trusts nobody
}

// nsecPerTick is USER_HZ's tick, the unit of /proc/PID/stat's start time.
const nsecPerTick = 10_000_000

// procStartTicks reads the start time of process pid from /proc (field 22
// of /proc/PID/stat, in ticks since boot): a cross-check of what the
// kernel side learnt.
func procStartTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	// The comm (field 2) is in parentheses and may hold anything, ')'
	// included: the fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("start time of pid %d: /proc/%d/stat has no comm field", pid, pid)
	}
	f := bytes.Fields(b[i+1:])
	const startField = 22 - 3 // fields after the comm start at field 3 (state)
	if len(f) <= startField {
		return 0, fmt.Errorf("start time of pid %d: /proc/%d/stat has %d fields after the comm, want more than %d", pid, pid, len(f), startField)
	}
	start, err := strconv.ParseUint(string(f[startField]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %q: %w", pid, f[startField], err)
	}
	return start, nil
}

// learnIdentity writes tgid with an unknown start into the staged config map m
// (keeping the rest of c), then reads back what the exit hook learnt from
// the bpf() calls of that write and of the read itself. The kernel side must
// be attached; start 0 means it did not see the calls.
func learnIdentity(m *ebpf.Map, c sentrySentryConfig, tgid uint32) (sentrySentryConfig, error) {
	c.SelfTgid, c.SelfStartNs = tgid, 0
	if err := m.Put(uint32(0), &c); err != nil {
		return c, fmt.Errorf("write identity: %w", err)
	}
	// The Put's own exit learnt it; two reads in case the exit hook was
	// attached between the write and the first read.
	for i := 0; i < 2 && c.SelfStartNs == 0; i++ {
		if err := m.Lookup(uint32(0), &c); err != nil {
			return c, fmt.Errorf("read identity back: %w", err)
		}
	}
	if c.SelfTgid != tgid {
		return c, fmt.Errorf("identity overwritten while learning it: tgid %d, want %d", c.SelfTgid, tgid)
	}
	return c, nil
}

// checkLearnt compares a learnt start with /proc's tick (which differs only
// inside a time namespace with a boottime offset).
func checkLearnt(id Identity, log *slog.Logger) {
	ticks, err := procStartTicks(int(id.TGID))
	if err == nil && id.StartNs/nsecPerTick != ticks {
		log.Warn("the kernel's start time of the agent differs from /proc's (time namespace?)",
			"start_ns", id.StartNs, "proc_ticks", ticks)
	}
}

// takeOver writes this agent's tgid into the config map a previous agent
// left pinned at pinPath, before this agent loads anything; the pinned exit
// hook learns the start time from that very write. The pinned programs then
// spare this agent's loads (probes, its own sensor) instead of judging them
// as a stranger's, and stop sparing whatever owns the previous agent's pid.
// It returns the identity learnt (start 0 when the pinned hooks are not
// attached). No pinned config is not an error; one of another layout
// cannot be taken over.
func takeOver(pinPath string, tgid uint32, log *slog.Logger) (Identity, error) {
	id := Identity{TGID: tgid}
	p := filepath.Join(pinPath, sentryMapConfigStaged)
	m, err := ebpf.LoadPinnedMap(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(pinPath, sentryMapConfig)); err == nil {
			log.Warn("pinned sensor of another version (no staged config): it cannot be taken over; it judges this agent's loads as a stranger's until this agent replaces its pins",
				"path", pinPath)
		}
		return id, nil
	}
	if err != nil {
		return id, fmt.Errorf("take over the pinned sensor at %s: %w", pinPath, err)
	}
	defer m.Close()
	var c sentrySentryConfig
	if m.ValueSize() != uint32(binary.Size(c)) {
		log.Warn("pinned sensor of another version: its config cannot be taken over; it stays until this agent replaces its pins",
			"path", p, "value_size", m.ValueSize())
		return id, nil
	}
	if err := m.Lookup(uint32(0), &c); err != nil {
		return id, fmt.Errorf("take over the pinned sensor at %s: read config: %w", pinPath, err)
	}
	c, err = learnIdentity(m, c, tgid)
	if err != nil {
		return id, fmt.Errorf("take over the pinned sensor at %s: %w", pinPath, err)
	}
	id.StartNs = c.SelfStartNs
	return id, nil
}
