package sensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Lock is what the allowlist (lock mode) made of one load.
type Lock uint32

const (
	LockOff       Lock = Lock(sentrySentryLockSENTRY_LOCK_OFF)
	LockListed    Lock = Lock(sentrySentryLockSENTRY_LOCK_LISTED)
	LockSelf      Lock = Lock(sentrySentryLockSENTRY_LOCK_SELF)
	LockRefused   Lock = Lock(sentrySentryLockSENTRY_LOCK_REFUSED)
	LockNotListed Lock = Lock(sentrySentryLockSENTRY_LOCK_NOT_LISTED)
	LockNoList    Lock = Lock(sentrySentryLockSENTRY_LOCK_NO_LIST)
	LockPartial   Lock = Lock(sentrySentryLockSENTRY_LOCK_PARTIAL)
)

var lockNames = map[Lock]string{
	LockOff:       "",
	LockListed:    "listed",
	LockSelf:      "own-load",
	LockRefused:   "refused-by-kernel",
	LockNotListed: "not-listed",
	LockNoList:    "no-allowlist",
	LockPartial:   "instructions-unread",
}

func (l Lock) String() string {
	if s, ok := lockNames[l]; ok {
		return s
	}
	return fmt.Sprintf("lock(%d)", uint32(l))
}

// MarshalText makes lock results readable in JSON.
func (l Lock) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Blocks reports whether the lock blocks the load (in enforce mode).
func (l Lock) Blocks() bool { return l >= LockNotListed }

// Why says, for an event, why the lock blocked a load.
func (l Lock) Why(hash uint64) string {
	switch l {
	case LockNotListed:
		return fmt.Sprintf("fingerprint %#016x is not on the allowlist (--mode lock)", hash)
	case LockNoList:
		return "no allowlist is installed in the kernel: lock mode blocks every load (fail closed)"
	case LockPartial:
		return "not every instruction could be read, so there is no whole fingerprint to look up (--mode lock)"
	}
	return ""
}

// RuleLock is the RuleID of a load blocked only because lock mode did not
// find its fingerprint on the allowlist (Event.Lock says which way).
const RuleLock = "allowlist-lock"

// MaxAllowlist is how many fingerprints one allowlist holds in the kernel.
const MaxAllowlist = 65536

// ErrAllowlistFull is returned for a list longer than MaxAllowlist.
var ErrAllowlistFull = errors.New("allowlist longer than the kernel map")

// SetLock turns lock mode on or off. cgroup, when non-zero, limits it to
// loaders in that cgroup v2 (by id, not its descendants). With lock on and
// no allowlist installed (SetAllowlist), every load but the agent's own is
// blocked.
func (s *Sensor) SetLock(on bool, cgroup uint64) error {
	s.cfg.Lock, s.cfg.LockCgroup = on, cgroup
	return s.writeConfig()
}

// SetAllowlist installs the fingerprints (Event.InsnHash) that lock mode
// lets load. The list is built in a new kernel map, frozen, and swapped in
// with one update of the slot the kernel reads: a load is judged against
// the whole old list or the whole new one.
func (s *Sensor) SetAllowlist(fingerprints []uint64) error {
	if len(fingerprints) > MaxAllowlist {
		return fmt.Errorf("%w: %d fingerprints, at most %d", ErrAllowlistFull, len(fingerprints), MaxAllowlist)
	}
	outer := s.coll.Maps[sentryMapAllowlist]
	set, err := ebpf.NewMap(s.allowSpec)
	if err != nil {
		return fmt.Errorf("create allowlist map: %w", err)
	}
	defer set.Close() // the outer map holds its own reference
	if n := len(fingerprints); n > 0 {
		vals := make([]uint32, n)
		if _, err := set.BatchUpdate(fingerprints, vals, nil); err != nil {
			// Kernels without batch ops on hash maps: one by one.
			for _, fp := range fingerprints {
				if err := set.Put(fp, uint32(0)); err != nil {
					return fmt.Errorf("fill allowlist map: %w", err)
				}
			}
		}
	}
	if err := set.Freeze(); err != nil {
		return fmt.Errorf("freeze allowlist map: %w", err)
	}
	info, err := set.Info()
	if err != nil {
		return fmt.Errorf("allowlist map info: %w", err)
	}
	id, _ := info.ID()
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	if err := outer.Put(uint32(0), set); err != nil {
		return fmt.Errorf("install allowlist: %w", err)
	}
	s.integ.allowlist = uint32(id)
	s.allowN = len(fingerprints)
	return nil
}

// Allowlisted is the number of fingerprints installed by SetAllowlist.
func (s *Sensor) Allowlisted() int { return s.allowN }

// checkAllowlist compares the installed list's map id with the one this
// agent installed (integ.mu held).
func (s *Sensor) checkAllowlist() (*Tampering, error) {
	if s.integ.allowlist == 0 {
		return nil, nil
	}
	var id uint32
	if err := s.coll.Maps[sentryMapAllowlist].Lookup(uint32(0), &id); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return &Tampering{What: "allowlist", Detail: fmt.Sprintf("allowlist removed (map %d was installed)", s.integ.allowlist)}, nil
		}
		return nil, fmt.Errorf("read allowlist slot: %w", err)
	}
	if id != s.integ.allowlist {
		return &Tampering{What: "allowlist", Detail: fmt.Sprintf("allowlist map %d installed, not the agent's %d", id, s.integ.allowlist)}, nil
	}
	return nil, nil
}
