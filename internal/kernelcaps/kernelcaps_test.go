package kernelcaps

import (
	"slices"
	"strings"
	"testing"
)

func TestExpectations(t *testing.T) {
	t.Run("every expected capability is one the suite probes", func(t *testing.T) {
		for label, e := range Expectations {
			for _, c := range e.Has {
				if !slices.Contains(All, c) {
					t.Errorf("kernel %s expects unknown capability %q", label, c)
				}
			}
		}
	})
	t.Run("every kernel names a lockdown mode", func(t *testing.T) {
		for label, e := range Expectations {
			if e.Lockdown == "" {
				t.Errorf("kernel %s has no lockdown mode", label)
			}
		}
	})
	t.Run("an unknown label is an error naming the known ones", func(t *testing.T) {
		_, err := Lookup("4.19")
		if err == nil || !strings.Contains(err.Error(), `"4.19"`) || !strings.Contains(err.Error(), "6.12") {
			t.Errorf("Lookup(4.19) error = %v, want one naming the label and the known labels", err)
		}
	})
	t.Run("the lockdown kernel loses only bpf_probe_write_user", func(t *testing.T) {
		plain, locked := Expectations["6.12"], Expectations["6.12-lockdown"]
		for _, c := range All {
			if c == ProbeWriteUser {
				if !plain.Expects(c) || locked.Expects(c) {
					t.Errorf("probe-write-user: 6.12 %v, 6.12-lockdown %v; want true, false", plain.Expects(c), locked.Expects(c))
				}
				continue
			}
			if plain.Expects(c) != locked.Expects(c) {
				t.Errorf("%s differs between 6.12 and 6.12-lockdown", c)
			}
		}
	})
	t.Run("no kernel sees a 32-bit loader's bpf() without running 32-bit binaries", func(t *testing.T) {
		lists := map[string]Expectation{}
		for l, e := range Expectations {
			lists[l] = e
		}
		for label, e := range lists {
			for _, c := range []Capability{Ia32BpfTracepoint, Ia32BpfTpBTF, Ia32BpfKprobe} {
				if e.Expects(c) && !e.Expects(Ia32Exec) {
					t.Errorf("kernel %s expects %s but not %s: the probe needs the 32-bit loader to run", label, c, Ia32Exec)
				}
			}
		}
	})
}
