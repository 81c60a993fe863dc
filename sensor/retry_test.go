package sensor

import (
	"syscall"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func retryEvent(id uint64, tid uint32, name string, hash uint64, r Result, errno syscall.Errno) *Event {
	return &Event{LoadID: id, InsnHash: hash, Outcome: Outcome{Result: r, Errno: int(errno)},
		Program: &program.Program{Name: name, Loader: &program.Loader{PID: 1, TID: tid}}}
}

func TestRetriesAfterEAGAINAreMarked(t *testing.T) {
	type want struct{ retry, of uint64 }
	cases := []struct {
		name string
		evs  []*Event
		want []want
	}{
		{"two interrupted attempts then a load: the second and third are retries of the one before",
			[]*Event{
				retryEvent(1, 7, "p", 0xaa, ResultFailed, syscall.EAGAIN),
				retryEvent(2, 7, "p", 0xaa, ResultFailed, syscall.EAGAIN),
				retryEvent(3, 7, "p", 0xaa, ResultLoaded, 0),
			},
			[]want{{0, 0}, {1, 1}, {2, 2}}},
		{"a load after a success is a new load",
			[]*Event{
				retryEvent(1, 7, "p", 0xaa, ResultLoaded, 0),
				retryEvent(2, 7, "p", 0xaa, ResultLoaded, 0),
			},
			[]want{{0, 0}, {0, 0}}},
		{"another program after EAGAIN is no retry",
			[]*Event{
				retryEvent(1, 7, "p", 0xaa, ResultFailed, syscall.EAGAIN),
				retryEvent(2, 7, "p", 0xbb, ResultLoaded, 0),
			},
			[]want{{0, 0}, {0, 0}}},
		{"another thread's load of the same program is no retry",
			[]*Event{
				retryEvent(1, 7, "p", 0xaa, ResultFailed, syscall.EAGAIN),
				retryEvent(2, 8, "p", 0xaa, ResultLoaded, 0),
				retryEvent(3, 7, "p", 0xaa, ResultLoaded, 0),
			},
			[]want{{0, 0}, {0, 0}, {1, 1}}},
		{"another error is not retried by loaders and starts nothing",
			[]*Event{
				retryEvent(1, 7, "p", 0xaa, ResultFailed, syscall.EINVAL),
				retryEvent(2, 7, "p", 0xaa, ResultFailed, syscall.EINVAL),
			},
			[]want{{0, 0}, {0, 0}}},
		{"an unknown hash (verdict lost) is never matched",
			[]*Event{
				retryEvent(1, 7, "p", 0, ResultFailed, syscall.EAGAIN),
				retryEvent(2, 7, "p", 0, ResultLoaded, 0),
			},
			[]want{{0, 0}, {0, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r retries
			for i, ev := range tc.evs {
				r.mark(ev)
				if uint64(ev.Retry) != tc.want[i].retry || ev.RetryOf != tc.want[i].of {
					t.Errorf("event %d: retry %d of %d, want %d of %d", i, ev.Retry, ev.RetryOf, tc.want[i].retry, tc.want[i].of)
				}
			}
		})
	}
}

// The table of threads waiting for a retry stays bounded.
func TestRetryTableIsBounded(t *testing.T) {
	var r retries
	for tid := uint32(1); tid <= 3*maxTracked; tid++ {
		r.mark(retryEvent(uint64(tid), tid, "p", 0xaa, ResultFailed, syscall.EAGAIN))
		if len(r.last) > maxTracked {
			t.Fatalf("%d threads tracked, at most %d", len(r.last), maxTracked)
		}
	}
}
