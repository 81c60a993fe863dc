//go:build linux

package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// callLine is a call in a translated listing: "call bpf_ktime_get_ns#279024".
var callLine = regexp.MustCompile(`call [^\s]+`)

// eachXlatedDump loads the programs of getdents_hide.bpf.o (but the one
// lockdown refuses) and runs f on each with bpftool's translated dump of it
// in a file and bpftool's text listing of it.
func eachXlatedDump(t *testing.T, f func(t *testing.T, name, dump string, listing []byte)) {
	t.Helper()
	testutils.RequireRoot(t, "loading programs and dumping their translated instructions")
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		if bpftool, err = exec.LookPath("/usr/sbin/bpftool"); err != nil {
			testutils.SkipOrFail(t, "bpftool not installed")
		}
	}
	spec, err := ebpf.LoadCollectionSpec(filepath.Join("..", "..", "testdata", "getdents_hide.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	// bpf_probe_write_user is refused under lockdown; the rest loads.
	delete(spec.Programs, "handle_dirent_patch")
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	for name, prog := range coll.Programs {
		t.Run(name, func(t *testing.T) {
			info, err := prog.Info()
			if err != nil {
				t.Fatal(err)
			}
			id, _ := info.ID()
			dump := filepath.Join(t.TempDir(), "xlated.bin")
			if out, err := exec.Command(bpftool, "prog", "dump", "xlated", "id", strconv.Itoa(int(id)), "file", dump).CombinedOutput(); err != nil {
				t.Fatalf("bpftool dump to file: %v\n%s", err, out)
			}
			listing, err := exec.Command(bpftool, "prog", "dump", "xlated", "id", strconv.Itoa(int(id))).Output()
			if err != nil {
				t.Fatalf("bpftool dump: %v", err)
			}
			f(t, name, dump, listing)
		})
	}
}

// The listing of a translated dump names every call exactly as bpftool
// does for the loaded program: helpers whose translated immediate is an
// address offset (e.g. bpf_ktime_get_ns#279024) are named from kallsyms,
// never printed as "helper#N#N".
func TestInspectXlatedListingCallsMatchBpftool(t *testing.T) {
	eachXlatedDump(t, func(t *testing.T, name, dump string, want []byte) {
		out, msg, code := runInspectCLI(t, nil, "--raw", dump, "--xlated", "--format", "kernel")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		got, exp := callLine.FindAllString(out, -1), callLine.FindAllString(string(want), -1)
		if len(exp) == 0 {
			t.Fatalf("bpftool shows no call in %s", name)
		}
		if len(got) != len(exp) {
			t.Fatalf("%d calls listed, bpftool lists %d:\n%s\nbpftool:\n%s", len(got), len(exp), out, want)
		}
		for i := range exp {
			if got[i] != exp[i] {
				t.Errorf("call %d: %q, bpftool %q", i, got[i], exp[i])
			}
		}
	})
}

func TestInspectXlatedDumpNamesHelpersLikeBpftool(t *testing.T) {
	eachXlatedDump(t, func(t *testing.T, _, dump string, text []byte) {
		out, msg, code := runInspectCLI(t, nil, "--raw", dump, "--xlated", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, msg)
		}
		var doc struct {
			Programs []struct {
				Analysis analysis.Report `json:"analysis"`
			} `json:"programs"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Programs) != 1 {
			t.Fatalf("json: %v", err)
		}
		r := doc.Programs[0].Analysis
		if len(r.Helpers) == 0 {
			t.Fatal("no helpers found")
		}
		for _, h := range r.Helpers {
			if n := strings.Count(string(text), "call "+h.Name+"#"); n != h.Count {
				t.Errorf("%s (id %d): %d calls, bpftool shows %d", h.Name, h.ID, h.Count, n)
			}
			if strings.HasPrefix(h.Name, "helper#") {
				t.Errorf("helper at %v left unnamed", h.At)
			}
		}
		var pid bool
		for _, h := range r.Helpers {
			pid = pid || h.ID == 14 && h.Name == "bpf_get_current_pid_tgid"
		}
		if !pid {
			t.Errorf("bpf_get_current_pid_tgid not mapped back to id 14: %+v", r.Helpers)
		}
	})
}
