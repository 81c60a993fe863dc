package sensor

import (
	"testing"
)

// The f_op the kernel gave the sensor's own link and perf event fds is
// what /proc/kallsyms calls bpf_link_fops and perf_fops, where it lists
// them (CONFIG_KALLSYMS_ALL); where it does not, the calibration is what
// tells those fds from others, and must be there.
func TestAttachFdCalibrationIsTheKernelsFileOperations(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor})
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	var c sentryGroupCalib
	if err := s.coll.Maps[sentryMapGroupCalibration].Lookup(uint32(0), &c); err != nil {
		t.Fatal(err)
	}
	if c.LinkFops == 0 || c.PerfFops == 0 || c.LinkFops == c.PerfFops {
		t.Fatalf("calibration link %#x perf %#x, want two distinct addresses", c.LinkFops, c.PerfFops)
	}
	listed, err := readAttachConfig("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	if listed.LinkFops != 0 && c.LinkFops != listed.LinkFops {
		t.Errorf("calibrated link f_op %#x, kallsyms bpf_link_fops %#x", c.LinkFops, listed.LinkFops)
	}
	if listed.PerfFops != 0 && c.PerfFops != listed.PerfFops {
		t.Errorf("calibrated perf f_op %#x, kallsyms perf_fops %#x", c.PerfFops, listed.PerfFops)
	}
	t.Logf("link %#x perf %#x (kallsyms: link %#x perf %#x)", c.LinkFops, c.PerfFops, listed.LinkFops, listed.PerfFops)
}

// An fd of another kind where a call names a link or a perf event is not
// read as one (its private data is something else): BPF_LINK_DETACH of a
// perf event fd reports no link id, a perf event link on an eventfd
// reports no perf event. The kernel refuses both calls.
func TestAttachDoesNotReadAnotherKindOfFdAsALinkOrPerfEvent(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor})
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	t.Run("a perf event fd detached as a link", func(t *testing.T) {
		r := runAttacher(t, "-wrong-fd", "link")
		if r.killed || r.Errno == 0 {
			t.Fatalf("bpfattach: %+v, want the kernel to refuse", r)
		}
		ev := opDone(waitOps(t, s, r.PID, OpLinkDetach), OpLinkDetach)
		if ev.LinkID != 0 {
			t.Errorf("link_detach of a perf event fd reports link id %d, want none", ev.LinkID)
		}
	})
	t.Run("an eventfd attached to as a perf event", func(t *testing.T) {
		r := runAttacher(t, "-wrong-fd", "perf")
		if r.killed || r.Errno == 0 {
			t.Fatalf("bpfattach: %+v, want the kernel to refuse", r)
		}
		ev := opDone(waitOps(t, s, r.PID, OpLinkCreate), OpLinkCreate)
		if ev.Target.PerfFound || ev.Target.PerfType != 0 || ev.Target.PerfConfig != 0 {
			t.Errorf("link_create on an eventfd reports a perf event (%+v), want none", ev.Target)
		}
	})
}
