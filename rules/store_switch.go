package rules

import "fmt"

// Switch makes path (a rule file or directory) the store's source and loads
// it, exactly as a reload does: on error the store keeps its old source and
// the rules in force. Fleet policy uses it to move to a newly received
// bundle's directory.
func (s *Store) Switch(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, oldStamp := s.path, s.stamp
	s.path = path
	stamp, err := s.sourceStamp()
	if err != nil {
		s.path = old
		s.lastErr = fmt.Errorf("switch rules to %s (keeping the %d rules in force): %w", path, len(s.Set().Rules), err)
		return s.lastErr
	}
	if err := s.reloadLocked(stamp); err != nil {
		s.path, s.stamp = old, oldStamp
		return err
	}
	return nil
}
