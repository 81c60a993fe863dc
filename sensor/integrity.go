package sensor

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// Tampering is a difference between the kernel's config or rule table and
// what this agent last wrote there: someone else wrote the sensor's maps
// (bpftool map update, or any process with CAP_BPF that got an fd on them).
type Tampering struct {
	What   string // "config" or "rules"
	Detail string
}

// integrity is the agent's copy of what it wrote into the kernel tables.
type integrity struct {
	mu     sync.Mutex // held across a write and the update of the copy
	config sentrySentryConfig
	rules  [sha256.Size]byte
	wrote  bool
	// scratch receives the rule table each check reads back.
	scratch *sentryRulesTable
	// allowlist is the id of the allowlist map the agent installed (0: none).
	allowlist uint32
}

func tableHash[T ruleTable](t *T) [sha256.Size]byte {
	return sha256.Sum256(tableBytes(t))
}

// ruleTable: the rule table as the sensor's object and rules/kernel
// generate it from the same C struct.
type ruleTable interface {
	sentryRulesTable | kernel.Table
}

// tableBytes is t's memory, which is its little-endian encoding: the
// generated types spell out every padding byte (binary.Size equals their
// size, TestRuleTableMemoryIsItsEncoding) and the sensor builds for
// little-endian amd64 only. Hashing and writing it in place spares the
// 688 KB copies and the reflection of binary.Append (~10 ms of CPU each)
// at start, at each reload and at every integrity check.
func tableBytes[T ruleTable](t *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(t)), unsafe.Sizeof(*t))
}

// CheckIntegrity reads the kernel config and rule table back and compares
// them with what this agent wrote (the config field by field, the table by
// its sha256). Run it periodically: a write by another process is seen at
// the next check.
func (s *Sensor) CheckIntegrity() ([]Tampering, error) {
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	if !s.integ.wrote || s.closed {
		return nil, nil
	}
	var out []Tampering
	var c sentrySentryConfig
	if err := s.coll.Maps[sentryMapConfig].Lookup(uint32(0), &c); err != nil {
		return nil, fmt.Errorf("read kernel config: %w", err)
	}
	if c != s.integ.config {
		out = append(out, Tampering{What: "config", Detail: configDiff(s.integ.config, c)})
	}
	// One table read back per check, into the same memory each time: a
	// new 688 KB value every interval was most of an idle agent's garbage.
	if s.integ.scratch == nil {
		s.integ.scratch = new(sentryRulesTable)
	}
	t := s.integ.scratch
	if err := s.coll.Maps[sentryMapRules].Lookup(s.integ.config.RulesActive, tableBytes(t)); err != nil {
		return nil, fmt.Errorf("read kernel rule table: %w", err)
	}
	h := tableHash(t)
	if !bytes.Equal(h[:], s.integ.rules[:]) {
		out = append(out, Tampering{What: "rules", Detail: fmt.Sprintf("rule table differs from the one written (generation %d, %d rules in the kernel)", t.Generation, t.Count)})
	}
	a, err := s.checkAllowlist()
	if err != nil {
		return nil, err
	}
	if a != nil {
		out = append(out, *a)
	}
	return out, nil
}

func configDiff(want, got sentrySentryConfig) string {
	var b bytes.Buffer
	field := func(name string, w, g uint64) {
		if w != g {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d, written %d", name, g, w)
		}
	}
	field("mode", uint64(want.Mode), uint64(got.Mode))
	field("self_tgid", uint64(want.SelfTgid), uint64(got.SelfTgid))
	field("self_start_ns", want.SelfStartNs, got.SelfStartNs)
	field("rules_active", uint64(want.RulesActive), uint64(got.RulesActive))
	field("block_unreadable", uint64(want.BlockUnreadable), uint64(got.BlockUnreadable))
	field("on_error", uint64(want.OnError), uint64(got.OnError))
	field("loader_insns", uint64(want.LoaderInsns), uint64(got.LoaderInsns))
	field("loader_window_ns", want.LoaderWindowNs, got.LoaderWindowNs)
	field("lock", uint64(want.Lock), uint64(got.Lock))
	field("lock_cgroup", want.LockCgroup, got.LockCgroup)
	field("kattr", uint64(want.Kattr), uint64(got.Kattr))
	field("guard_signals", uint64(want.GuardSignals), uint64(got.GuardSignals))
	return b.String()
}

// Health is what a heartbeat reports: whether every hook the sensor
// attached is still attached, whether its kernel tables are still what the
// agent wrote, and how many loads the kernel side has judged.
type Health struct {
	Hooks         int      // links the sensor attached
	HooksAttached int      // of those, still attached to one of its programs
	Detached      []string // what is not (link kind and error)
	TablesIntact  bool
	LoadsJudged   uint64 // the kernel's load sequence (all CPUs)
}

// Health checks every link (the kernel still knows it and it still runs
// one of the sensor's programs) and the tables (CheckIntegrity).
func (s *Sensor) Health() (Health, error) {
	var h Health
	if s.closed {
		return h, fmt.Errorf("sensor closed")
	}
	ours := map[uint32]bool{}
	colls := append([]*ebpf.Collection{s.coll}, s.attachColls...)
	for _, c := range colls {
		for _, p := range c.Programs {
			if info, err := p.Info(); err == nil {
				if id, ok := info.ID(); ok {
					ours[uint32(id)] = true
				}
			}
		}
	}
	var hooks []hookLink
	for _, l := range append(slices.Clip(s.links), s.attachLinks...) {
		hooks = append(hooks, l)
	}
	for _, l := range append(hooks, s.armedLinks()...) {
		h.Hooks++
		info, err := l.Info()
		switch {
		case err != nil:
			h.Detached = append(h.Detached, fmt.Sprintf("%T: %v", l, err))
		case !ours[uint32(info.Program)]:
			h.Detached = append(h.Detached, fmt.Sprintf("link %d runs program %d, not the sensor's", info.ID, info.Program))
		default:
			h.HooksAttached++
		}
	}
	t, err := s.CheckIntegrity()
	if err != nil {
		return h, err
	}
	h.TablesIntact = len(t) == 0
	var seq []uint64
	m := s.coll.Maps[sentryMapLoadSeq]
	if m.Type() == ebpf.PerCPUArray {
		if err := m.Lookup(uint32(0), &seq); err != nil {
			return h, fmt.Errorf("read load sequence: %w", err)
		}
	} else {
		var n uint64
		if err := m.Lookup(uint32(0), &n); err != nil {
			return h, fmt.Errorf("read load sequence: %w", err)
		}
		seq = []uint64{n}
	}
	for _, n := range seq {
		h.LoadsJudged += n
	}
	return h, nil
}
