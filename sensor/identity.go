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
// tgid and the start time of its thread group leader, in clock ticks since
// boot (/proc/PID/stat field 22; the kernel divides start_boottime by
// SENTRY_NSEC_PER_TICK). A pid can be had again by another process after
// the agent died (clone3 set_tid chooses it); a start time cannot.
type Identity struct {
	TGID       uint32
	StartTicks uint64
}

// ProcessIdentity reads the identity of process pid from /proc.
func ProcessIdentity(pid int) (Identity, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Identity{}, fmt.Errorf("identity of pid %d: %w", pid, err)
	}
	// The comm (field 2) is in parentheses and may hold anything, ')'
	// included: the fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Identity{}, fmt.Errorf("identity of pid %d: /proc/%d/stat has no comm field", pid, pid)
	}
	f := bytes.Fields(b[i+1:])
	const startField = 22 - 3 // fields after the comm start at field 3 (state)
	if len(f) <= startField {
		return Identity{}, fmt.Errorf("identity of pid %d: /proc/%d/stat has %d fields after the comm, want more than %d", pid, pid, len(f), startField)
	}
	start, err := strconv.ParseUint(string(f[startField]), 10, 64)
	if err != nil {
		return Identity{}, fmt.Errorf("identity of pid %d: start time %q: %w", pid, f[startField], err)
	}
	return Identity{TGID: uint32(pid), StartTicks: start}, nil
}

// takeOver writes id into the config map a previous agent left pinned at
// pinPath, before this agent loads anything: the pinned programs then spare
// this agent's loads (probes, its own sensor) instead of judging them as a
// stranger's, and stop sparing whatever owns the previous agent's pid. No
// pinned config is not an error; one of another layout cannot be taken over.
func takeOver(pinPath string, id Identity, log *slog.Logger) error {
	p := filepath.Join(pinPath, sentryMapConfig)
	m, err := ebpf.LoadPinnedMap(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("take over the pinned sensor at %s: %w", pinPath, err)
	}
	defer m.Close()
	var c sentrySentryConfig
	if m.ValueSize() != uint32(binary.Size(c)) {
		log.Warn("pinned sensor of another version: its config cannot be taken over; it stays until this agent replaces its pins",
			"path", p, "value_size", m.ValueSize())
		return nil
	}
	if err := m.Lookup(uint32(0), &c); err != nil {
		return fmt.Errorf("take over the pinned sensor at %s: read config: %w", pinPath, err)
	}
	c.SelfTgid, c.SelfStart = id.TGID, id.StartTicks
	if err := m.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("take over the pinned sensor at %s: write config: %w", pinPath, err)
	}
	return nil
}
