//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's starttime: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// sinceExec is how long after this process's exec t is (10 ms resolution):
// start-up as a user sees it, the runtime's own start included.
func sinceExec(t time.Time) (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	start, err := procStartTicks(string(b))
	if err != nil {
		return 0, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("CLOCK_BOOTTIME: %w", err)
	}
	now := time.Duration(ts.Nano())
	execAt := time.Duration(start) * time.Second / clockTicks
	return now - execAt - time.Since(t), nil
}

// procStartTicks is field 22 (starttime) of a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may hold spaces and ')', so
// the fields are counted from its last ')'.
func procStartTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/self/stat: no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/self/stat: %d fields after the command name, want ≥ 20", len(f))
	}
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/stat starttime %q: %w", f[19], err)
	}
	return n, nil
}
