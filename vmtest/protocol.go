package vmtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Paths and names shared by the host and the init inside the VM.
const (
	// ConfigPath is where the initramfs carries the Config.
	ConfigPath = "/vmtest.json"
	// ResultDevice is the second serial port; qemu writes it to a host file.
	ResultDevice = "/dev/ttyS1"
	// CmdlineKernel is the kernel parameter carrying the boot's label.
	CmdlineKernel = "vmtest.kernel"
	// KernelEnv tells the tests which kernel of the matrix they run on.
	KernelEnv = "EBPF_SENTRY_KERNEL"
)

// Config is what the init runs, in order.
type Config struct {
	Suites []Suite `json:"suites"`
}

// Suite is one test binary inside the VM.
type Suite struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// Dir is the working directory: the package's source directory on the
	// host, recreated in the VM with its committed testdata, so relative
	// "testdata/..." paths and paths compiled in by runtime.Caller both work.
	Dir string `json:"dir"`
}

// The result channel is line based: one "vmtest-result NAME CODE PASSED FAILED
// SKIPPED" per suite in run order, then "vmtest-done". Only the init writes
// that port, so anything else on it means the channel is broken.
const (
	resultPrefix = "vmtest-result"
	doneLine     = "vmtest-done"
)

// ResultLine is the line the init writes when a suite exits with code after
// the tests counted in t.
func ResultLine(suite string, code int, t Tally) string {
	return fmt.Sprintf("%s %s %d %d %d %d\n", resultPrefix, suite, code, t.Passed, t.Failed, t.Skipped)
}

// DoneLine is the line the init writes after the last suite.
func DoneLine() string { return doneLine + "\n" }

// Results is what a VM reported on its result port.
type Results struct {
	// Suites holds the suites that reported, in order.
	Suites []SuiteResult
	// Done is set when the init reached the end of its config.
	Done bool
}

// SuiteResult is one suite's exit code and test counts as the init saw them.
type SuiteResult struct {
	Name string
	Code int
	Tally
}

// Suite returns the result of the named suite and whether it reported one.
func (r Results) Suite(name string) (SuiteResult, bool) {
	for _, s := range r.Suites {
		if s.Name == name {
			return s, true
		}
	}
	return SuiteResult{}, false
}

// ErrMalformedResults marks a result file that is not the protocol.
var ErrMalformedResults = errors.New("malformed result file")

// ParseResults reads a result file. A missing "done" is not an error (the VM
// died or timed out; the caller judges); a line outside the protocol is.
// Serial ports turn "\n" into "\r\n", so carriage returns are dropped.
func ParseResults(data []byte) (Results, error) {
	var r Results
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		if r.Done {
			return r, fmt.Errorf("%w: line %d: %q after %s", ErrMalformedResults, n, line, doneLine)
		}
		if line == doneLine {
			r.Done = true
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != resultPrefix {
			return r, fmt.Errorf("%w: line %d: %q is not %q", ErrMalformedResults, n, line, resultPrefix+" NAME CODE PASSED FAILED SKIPPED")
		}
		code, err := strconv.Atoi(f[2])
		if err != nil || code < 0 || code > 255 {
			return r, fmt.Errorf("%w: line %d: exit code %q is not 0..255", ErrMalformedResults, n, f[2])
		}
		var counts [3]int
		for i, c := range f[3:] {
			v, err := strconv.Atoi(c)
			if err != nil || v < 0 {
				return r, fmt.Errorf("%w: line %d: test count %q is not a non-negative number", ErrMalformedResults, n, c)
			}
			counts[i] = v
		}
		if slices.ContainsFunc(r.Suites, func(s SuiteResult) bool { return s.Name == f[1] }) {
			return r, fmt.Errorf("%w: line %d: suite %q reported twice", ErrMalformedResults, n, f[1])
		}
		r.Suites = append(r.Suites, SuiteResult{Name: f[1], Code: code,
			Tally: Tally{Passed: counts[0], Failed: counts[1], Skipped: counts[2]}})
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("%w: %v", ErrMalformedResults, err)
	}
	return r, nil
}

// KernelLabel returns the value of vmtest.kernel= in a kernel command line.
func KernelLabel(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineKernel+"="); ok {
			return v
		}
	}
	return ""
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
