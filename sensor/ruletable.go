package sensor

import (
	"errors"
	"fmt"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// ErrTableInUse is returned by SetRules when a judge still holds the rule
// table a reload must write (the kernel's rules_readers count stayed above
// zero for the whole wait): the reload is refused and the table in use
// stays as it was, rather than being rewritten under a reader.
var ErrTableInUse = errors.New("the inactive kernel rule table is still being read")

// defaultTableWait bounds how long a reload waits for judges to leave the
// table it rewrites: an evaluation takes microseconds, so only a judge
// preempted mid-evaluation makes it wait at all.
const defaultTableWait = 2 * time.Second

// SetRules replaces the kernel rule table without a load ever seeing a
// half-written one. A map update copies the value without a lock, so the
// kernel keeps two tables and judges with config.rules_active: this writes
// the inactive one, once no judge is left in it (rules_readers), then
// switches the index with the config write. A judge that took the old table
// finishes with it whole.
func (s *Sensor) SetRules(c *kernel.Rules) error {
	if c == nil {
		c = &kernel.Rules{}
	}
	s.mu.Lock()
	s.generation++
	gen := s.generation
	s.mu.Unlock()
	table := c.Table
	table.Generation = gen
	h := tableHash(&table)
	// Held throughout: an integrity check sees the switch whole.
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	next := 1 - s.rulesActive
	if s.integ.wrote {
		if err := s.waitTableIdle(next); err != nil {
			return err
		}
	}
	if err := s.coll.Maps[sentryMapRulesStaged].Put(next, tableBytes(&table)); err != nil {
		return fmt.Errorf("write kernel rule table %d: %w", next, err)
	}
	if s.integ.scratch == nil {
		s.integ.scratch = new(sentryRulesTable)
	}
	got := s.integ.scratch
	if err := s.coll.Maps[sentryMapRules].Lookup(next, tableBytes(got)); err != nil {
		return fmt.Errorf("read kernel rule table %d back: %w", next, err)
	}
	if tableHash(got) != h {
		return fmt.Errorf("write kernel rule table %d: the kernel side did not take it", next)
	}
	s.mu.Lock()
	s.slots[gen] = c.Slots
	delete(s.slots, gen-2) // loads in flight may still report the previous one
	s.mu.Unlock()
	prev := s.rulesActive
	s.rulesActive = next
	if err := s.writeConfigLocked(); err != nil {
		s.rulesActive = prev
		return err
	}
	s.integ.rules = h
	return nil
}

// waitTableIdle waits until no judge holds rule table idx: the switch away
// from it happened at the previous reload, so a judge that comes in now
// sees the other index and leaves at once.
func (s *Sensor) waitTableIdle(idx uint32) error {
	wait := s.tableWait
	if wait == 0 {
		wait = defaultTableWait
	}
	deadline := time.Now().Add(wait)
	for {
		n, err := s.tableReaders(idx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %d judges in table %d after %v", ErrTableInUse, n, idx, wait)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *Sensor) tableReaders(idx uint32) (uint64, error) {
	var n uint64
	if err := s.coll.Maps[sentryMapRulesReaders].Lookup(idx, &n); err != nil {
		return 0, fmt.Errorf("read judges of rule table %d: %w", idx, err)
	}
	return n, nil
}

// learnSelf has the attached kernel side learn this agent's start time
// (learnIdentity) and keeps it: every later config write carries it, and
// the integrity check expects it.
func (s *Sensor) learnSelf() error {
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	c, err := learnIdentity(s.coll.Maps[sentryMapConfigStaged], s.integ.config, s.self.TGID)
	if err != nil {
		return fmt.Errorf("learn the agent's identity: %w", err)
	}
	if c.SelfStartNs == 0 {
		return fmt.Errorf("learn the agent's identity: the sensor's exit hook did not see this agent's bpf() calls")
	}
	var live sentrySentryConfig
	if err := s.coll.Maps[sentryMapConfig].Lookup(uint32(0), &live); err != nil {
		return fmt.Errorf("learn the agent's identity: %w", err)
	}
	if live != c {
		return fmt.Errorf("learn the agent's identity: the kernel side did not take it (%s)", configDiff(c, live))
	}
	s.self.StartNs = c.SelfStartNs
	s.integ.config = c
	checkLearnt(s.self, s.log)
	return nil
}
