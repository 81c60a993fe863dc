package sensor

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

var (
	attacherOnce sync.Once
	attacherPath string
	attacherErr  error
)

// buildAttacher builds internal/cmd/bpfattach (in a VM: bpfattach on PATH).
func buildAttacher(t testing.TB) string {
	t.Helper()
	attacherOnce.Do(func() {
		if os.Getenv(kernelEnv) != "" {
			attacherPath, attacherErr = exec.LookPath("bpfattach")
			return
		}
		dir, err := os.MkdirTemp("", "sentry-attach")
		if err != nil {
			attacherErr = err
			return
		}
		attacherPath = filepath.Join(dir, "bpfattach")
		if out, err := exec.Command("go", "build", "-o", attacherPath, "../internal/cmd/bpfattach").CombinedOutput(); err != nil {
			attacherErr = err
			t.Logf("%s", out)
		}
	})
	if attacherErr != nil {
		t.Fatal(attacherErr)
	}
	return attacherPath
}

type attachRun struct {
	PID    int    `json:"pid"`
	ProgID uint32 `json:"prog_id"`
	LinkID uint32 `json:"link_id"`
	Errno  int    `json:"errno"`
	Error  string `json:"error"`
	killed bool
}

func runAttacher(t testing.TB, args ...string) attachRun {
	t.Helper()
	cmd := exec.Command(buildAttacher(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var r attachRun
	if ee, ok := err.(*exec.ExitError); ok && ee.ProcessState.String() == "signal: killed" {
		r.killed = true
		r.PID = ee.Pid()
		return r
	}
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("bpfattach %v: %v (%v)\nstdout: %s\nstderr: %s", args, jerr, err, out.String(), stderr.String())
	}
	return r
}

// collectAttaches gathers attach events of pid until n arrived or timeout.
func collectAttaches(t testing.TB, s *Sensor, pid int, n int, timeout time.Duration) []*AttachEvent {
	t.Helper()
	var out []*AttachEvent
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case ev, ok := <-s.Attaches():
			if !ok {
				return out
			}
			if int(ev.Caller.PID) == pid {
				out = append(out, ev)
			}
		case <-s.Events():
		case <-deadline:
			return out
		}
	}
	return out
}

func TestAttachSmoke(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, RingBufferSize: 1 << 20})
	t.Logf("coverage %s", s.AttachCoverage())
	obj := testutils.Testdata("attach_targets.bpf.o")
	for _, args := range [][]string{
		{"-obj", obj, "-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_getdents64"},
		{"-obj", obj, "-prog", "count_dirents", "-tracepoint", "syscalls/sys_enter_getdents64", "-ioctl"},
		{"-obj", obj, "-prog", "count_raw", "-raw-tp", "sys_enter"},
		{"-obj", obj, "-prog", "count_pam", "-uprobe", "/lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok"},
	} {
		r := runAttacher(t, args...)
		evs := collectAttaches(t, s, r.PID, 3, 3*time.Second)
		b, _ := json.Marshal(evs)
		t.Logf("%v: %+v\n%s", args, r, b)
	}
}
