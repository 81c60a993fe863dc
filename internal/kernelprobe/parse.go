package kernelprobe

import (
	"fmt"
	"strings"
)

// The kernel files the probes read.
const (
	BTFPath      = "/sys/kernel/btf/vmlinux"
	LSMPath      = "/sys/kernel/security/lsm"
	LockdownPath = "/sys/kernel/security/lockdown"
)

// ParseLockdown returns the active mode of /sys/kernel/security/lockdown's
// text, e.g. "integrity" from "none [integrity] confidentiality". A text
// without one bracketed, non-empty mode is an error quoting it.
func ParseLockdown(s string) (string, error) {
	for _, f := range strings.Fields(s) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return f[1 : len(f)-1], nil
		}
	}
	return "", fmt.Errorf("lockdown file %q has no [active] mode", truncate(strings.TrimSpace(s), 80))
}

// ParseLSMs splits /sys/kernel/security/lsm's comma-separated list of
// active LSMs; empty names are dropped.
func ParseLSMs(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// HasLSM reports whether name is in the active LSM list text s.
func HasLSM(s, name string) bool {
	for _, l := range ParseLSMs(s) {
		if l == name {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
