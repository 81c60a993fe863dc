package sensor

import (
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// SetRules replaces the kernel rule table in one map update: a load sees
// either the old or the new table, never a mix.
func (s *Sensor) SetRules(c *kernel.Rules) error {
	if c == nil {
		c = &kernel.Rules{}
	}
	s.mu.Lock()
	s.generation++
	gen := s.generation
	s.slots[gen] = c.Slots
	delete(s.slots, gen-2) // loads in flight may still report the previous one
	s.mu.Unlock()
	table := c.Table
	table.Generation = gen
	h, err := tableHash(&table)
	if err != nil {
		return fmt.Errorf("hash kernel rule table: %w", err)
	}
	s.integ.mu.Lock()
	err = s.coll.Maps[sentryMapRules].Put(uint32(0), &table)
	if err == nil {
		s.integ.rules = h
	}
	s.integ.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write kernel rule table: %w", err)
	}
	return s.writeConfig()
}

// SetMode switches between monitor and enforce.
func (s *Sensor) SetMode(m Mode) error {
	s.cfg.Mode = m
	return s.writeConfig()
}

func (s *Sensor) writeConfig() error {
	c := sentrySentryConfig{Mode: uint32(s.cfg.Mode), SelfTgid: s.self.TGID, SelfStart: s.self.StartTicks}
	if s.cfg.BlockUnreadable {
		c.BlockUnreadable = 1
	}
	if s.cfg.OnError == OnErrorAllow {
		c.OnError = uint32(sentrySentryOnErrorSENTRY_ON_ERROR_ALLOW)
	}
	c.Kattr = kattrConfig()
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	if err := s.coll.Maps[sentryMapConfig].Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write sensor config: %w", err)
	}
	s.integ.config, s.integ.wrote = c, true
	return nil
}

// ruleID names the rule of a kernel table slot for a table generation.
func (s *Sensor) ruleID(gen uint32, slot int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ids, ok := s.slots[gen]; ok && slot >= 0 && slot < len(ids) {
		return ids[slot]
	}
	return ""
}
