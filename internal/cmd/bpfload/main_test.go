package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// asMainEnv makes the test binary run bpfload's main instead of the tests,
// so the tests run the loader as its own process without building it.
const asMainEnv = "BPFLOAD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runLoader runs bpfload with args and returns its JSON lines, or its exit
// error and stderr.
func runLoader(t *testing.T, args ...string) ([]result, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var results []result
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var r result
		if jerr := json.Unmarshal([]byte(line), &r); jerr != nil {
			t.Fatalf("loader output %q: %v", line, jerr)
		}
		results = append(results, r)
	}
	return results, stderr.String(), err
}

// TestUffdStallHoldsTheFirstLoadInTheSyscall loads valid programs whose
// instructions the kernel can only read once the userfaultfd handler has
// slept for the stall. A load that succeeds proves the kernel read the
// real instructions (an unserved page reads as zeros, opcode 0, which the
// verifier refuses); its time in the syscall proves the wait was there (a
// lower bound, which no load can break). That only the first fault waits,
// and that a later load does not, is counted by the handler (faults held,
// faults served), not timed: on a busy machine any syscall may take long.
func TestUffdStallHoldsTheFirstLoadInTheSyscall(t *testing.T) {
	testutils.RequireRoot(t, "bpf(BPF_PROG_LOAD) and a userfaultfd that serves kernel faults")
	const stall = 300 * time.Millisecond
	tests := []struct {
		name   string
		args   []string
		loads  int
		faults int // pages of instructions the first load faults on; 0: no stall
	}{
		{"a ten-instruction program waits for the stall once, and the second load does not wait",
			[]string{"-gen", "10", "-uffd-stall", stall.String(), "-count", "2"}, 2, 1},
		{"a three-page program faults on each page but waits only on the first",
			[]string{"-gen", "1500", "-uffd-stall", stall.String()}, 1, 3},
		{"without -uffd-stall a load does not wait",
			[]string{"-gen", "10", "-count", "2"}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results, stderr, err := runLoader(t, tt.args...)
			if err != nil {
				t.Fatalf("bpfload %v: %v\n%s", tt.args, err, stderr)
			}
			if len(results) != tt.loads {
				t.Fatalf("%d results, want %d: %+v", len(results), tt.loads, results)
			}
			for i, r := range results {
				t.Logf("load %d: ret %d, %v in the syscall, first fault held %v, %d faults",
					i, r.Ret, time.Duration(r.SyscallNS), time.Duration(r.StalledNS), r.UffdFaults)
				if r.Ret < 0 {
					t.Errorf("load %d failed: %s", i, r.Error)
				}
				took := time.Duration(r.SyscallNS)
				if i == 0 && tt.faults > 0 {
					if took < stall || time.Duration(r.StalledNS) < stall {
						t.Errorf("load %d: %v in the syscall, first fault held %v; want both ≥ %v", i, took, time.Duration(r.StalledNS), stall)
					}
					if r.UffdHeld != 1 {
						t.Errorf("load %d: %d of %d faults held for the stall, want the first only", i, r.UffdHeld, r.UffdFaults)
					}
					if r.UffdFaults != tt.faults {
						t.Errorf("load %d: %d faults served, want %d (one per page)", i, r.UffdFaults, tt.faults)
					}
					continue
				}
				if r.StalledNS != 0 || r.UffdFaults != 0 || r.UffdHeld != 0 {
					t.Errorf("load %d: %v in the syscall, stalled %v, %d faults (%d held); want no fault and no stall", i, took, time.Duration(r.StalledNS), r.UffdFaults, r.UffdHeld)
				}
			}
		})
	}
}

func TestUffdStallRefusesFlip(t *testing.T) {
	_, stderr, err := runLoader(t, "-gen", "10", "-uffd-stall", "1s", "-flip", "0")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("bpfload -uffd-stall -flip: %v, want exit status 2", err)
	}
	if !strings.Contains(stderr, "-uffd-stall and -flip") {
		t.Errorf("stderr %q does not name the conflicting flags", stderr)
	}
}

// With -fd-array-uffd every load's fd_array is a fresh userfaultfd page:
// a load that succeeds proves the kernel read the real fds once the
// handler supplied the page (an fd it cannot resolve fails the load), and
// each load's own page is supplied exactly once.
func TestFdArrayUffdSuppliesEachLoadsPageAtItsFirstRead(t *testing.T) {
	testutils.RequireRoot(t, "bpf(BPF_PROG_LOAD) and a userfaultfd that serves kernel faults")
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	prog := asm.Instructions{asm.LoadMapPtr(asm.R1, 0), asm.Mov.Imm(asm.R0, 0), asm.Return()}
	buf := new(bytes.Buffer)
	if err := prog.Marshal(buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prog.bin")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	results, stderr, err := runLoader(t, "-insns", path, "-map-ids", fmt.Sprint(id), "-fd-array", "-fd-array-uffd", "-count", "2")
	if err != nil {
		t.Fatalf("bpfload: %v\n%s", err, stderr)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2: %+v", len(results), results)
	}
	for i, r := range results {
		if r.Ret < 0 || r.UffdFaults != 1 {
			t.Errorf("load %d: ret %d (%s), %d pages supplied; want loaded, one page", i, r.Ret, r.Error, r.UffdFaults)
		}
	}

	_, stderr, err = runLoader(t, "-insns", path, "-map-ids", fmt.Sprint(id), "-fd-array-uffd")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr, "-fd-array-uffd needs -fd-array") {
		t.Errorf("-fd-array-uffd without -fd-array: %v, stderr %q; want exit status 2 naming the missing flag", err, stderr)
	}
}
