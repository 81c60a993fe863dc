package sensor

import (
	"fmt"
)

// SetMode switches between monitor and enforce. The attach programs that
// only enforcement needs (the ioctl entry) are attached before the kernel
// sees enforce mode and detached after it sees monitor mode, so no
// enforced attach goes without its entry program; failing to attach one
// refuses the switch (enforcement would not be whole).
func (s *Sensor) SetMode(m Mode) error {
	if m == ModeEnforce {
		if err := s.armFor(m); err != nil {
			return fmt.Errorf("enforce mode: %w", err)
		}
	}
	s.cfg.Mode = m
	if err := s.writeConfig(); err != nil {
		return err
	}
	return s.armFor(m)
}

func (s *Sensor) writeConfig() error {
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	return s.writeConfigLocked()
}

// writeConfigLocked writes the staged config, which the exit hook copies
// into the frozen one the judges read (selfprotect.h), and checks it did.
func (s *Sensor) writeConfigLocked() error {
	c := sentrySentryConfig{Mode: uint32(s.cfg.Mode), SelfTgid: s.self.TGID, SelfStartNs: s.self.StartNs, RulesActive: s.rulesActive,
		LoaderInsns: uint32(s.cfg.LoaderRate), LoaderWindowNs: uint64(s.cfg.LoaderWindow)}
	if s.cfg.BlockUnreadable {
		c.BlockUnreadable = 1
	}
	if s.cfg.OnError == OnErrorAllow {
		c.OnError = uint32(sentrySentryOnErrorSENTRY_ON_ERROR_ALLOW)
	}
	c.Kattr = s.kattr
	if s.cfg.Lock {
		c.Lock, c.LockCgroup = 1, s.cfg.LockCgroup
	}
	if s.cfg.GuardSignals {
		c.GuardSignals = 1
	}
	if err := s.coll.Maps[sentryMapConfigStaged].Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write sensor config: %w", err)
	}
	var got sentrySentryConfig
	if err := s.coll.Maps[sentryMapConfig].Lookup(uint32(0), &got); err != nil {
		return fmt.Errorf("read sensor config back: %w", err)
	}
	if got != c {
		return fmt.Errorf("write sensor config: the kernel side did not take it (%s)", configDiff(c, got))
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
