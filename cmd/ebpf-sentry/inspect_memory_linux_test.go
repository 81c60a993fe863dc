package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// inspectMemoryGoal is the bound for any of these inputs in any
// format on the reference host.
const inspectMemoryGoal = 256 << 20

// TestInspectMemoryIsBoundedOnEveryFormat runs the built binary on each
// input in each format and asserts its peak resident memory (the kernel's
// ru_maxrss), not its time, so that load on the machine cannot fail it.
func TestInspectMemoryIsBoundedOnEveryFormat(t *testing.T) {
	bin := goBuild(t, ".", "ebpf-sentry")
	dir := t.TempDir()
	for _, in := range inspectInputs() {
		path := filepath.Join(dir, in.file)
		if err := os.WriteFile(path, in.gen(), 0o644); err != nil {
			t.Fatal(err)
		}
		// Every format shares the streaming writer; all five run on one
		// input, the text baseline and the heaviest (json with every
		// instruction) on the others, to keep the test's time down.
		formats := [][]string{{"text"}, {"json", "--insns"}}
		if in.file == "movs.raw" {
			formats = inspectFormats
		}
		if testing.Short() {
			formats = [][]string{{"json", "--insns"}}
		}
		for _, f := range formats {
			t.Run(in.name+"/"+strings.Join(f, " "), func(t *testing.T) {
				args := append([]string{"inspect"}, append(in.args, path, "--format")...)
				cmd := exec.Command(bin, append(args, f...)...)
				var out countingWriter
				cmd.Stdout = &out
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				// A dump of garbage is analysed and then reported (exit 2).
				if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2 && in.file == "ff.raw") {
					t.Fatalf("%v: %s", err, stderr.String())
				}
				if out.n == 0 {
					t.Fatal("no output")
				}
				ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				peak := ru.Maxrss << 10 // KiB
				t.Logf("peak RSS %d MiB, %d MiB of output", peak>>20, out.n>>20)
				if peak > inspectMemoryGoal {
					t.Errorf("peak RSS %d MiB, want ≤ %d MiB", peak>>20, inspectMemoryGoal>>20)
				}
			})
		}
	}
}
