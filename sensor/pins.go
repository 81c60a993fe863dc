package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// pin keeps links and maps in bpffs so enforcement outlives the agent.
func (s *Sensor) pin() error {
	if err := ensureBPFFS(); err != nil {
		return err
	}
	// Leftovers of a previous pinned agent: ours replace them.
	os.RemoveAll(s.cfg.PinPath)
	if err := os.MkdirAll(s.cfg.PinPath, 0o700); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	for i, l := range s.links {
		if err := l.Pin(filepath.Join(s.cfg.PinPath, "link"+strconv.Itoa(i))); err != nil {
			return fmt.Errorf("pin link: %w", err)
		}
	}
	for _, name := range []string{sentryMapRules, sentryMapConfig, sentryMapLosses} { // rules stay editable
		if err := s.coll.Maps[name].Pin(filepath.Join(s.cfg.PinPath, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	return nil
}
