//go:build linux && amd64

package main

import (
	"testing"
	"time"
)

func TestProcStartTicksCountsFieldsAfterTheCommandName(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       uint64
		bad        bool
	}{
		{"a plain command", "42 (ebpf-sentry) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 5 0 123456 1000 10", 123456, false},
		{"a command with spaces and a parenthesis", "42 (a) b (c) R 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 5 0 777 1000 10", 777, false},
		{"no parenthesis", "42 ebpf-sentry S 1", 0, true},
		{"too few fields", "42 (x) S 1 2 3", 0, true},
		{"starttime not a number", "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 5 0 x 1000 10", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := procStartTicks(tc.stat)
			if tc.bad {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSinceExecIsThisProcessesAge(t *testing.T) {
	d, err := sinceExec(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The test binary started before this test ran and, with the 10 ms
	// resolution of starttime, no later than 10 ms after its exec.
	if d < -10*time.Millisecond || d > 10*time.Minute {
		t.Fatalf("this process is %v old", d)
	}
}
