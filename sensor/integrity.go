package sensor

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
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
}

func tableHash(t any) ([sha256.Size]byte, error) {
	b, err := binary.Append(nil, binary.LittleEndian, t)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
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
	var t sentryRulesTable
	if err := s.coll.Maps[sentryMapRules].Lookup(uint32(0), &t); err != nil {
		return nil, fmt.Errorf("read kernel rule table: %w", err)
	}
	h, err := tableHash(&t)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(h[:], s.integ.rules[:]) {
		out = append(out, Tampering{What: "rules", Detail: fmt.Sprintf("rule table differs from the one written (generation %d, %d rules in the kernel)", t.Generation, t.Count)})
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
	field("self_start", want.SelfStart, got.SelfStart)
	field("block_unreadable", uint64(want.BlockUnreadable), uint64(got.BlockUnreadable))
	field("on_error", uint64(want.OnError), uint64(got.OnError))
	return b.String()
}
