//go:build linux && amd64

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

const residentBlockRule = `
- id: sres-block
  description: the resident test's programs, by name
  severity: high
  action: block
  match:
    prog_name: {prefix: [sresblk]}
`

// holdProgram starts bpfload holding one program named name (until the
// test ends) and returns the process and the program id.
func holdProgram(t *testing.T, loader, name string) (*exec.Cmd, uint32) {
	t.Helper()
	cmd := exec.Command(loader, "-gen", "4", "-name", name, "-keep")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("bpfload %s: %v", name, err)
	}
	var r struct {
		ID    uint32 `json:"id"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.ID == 0 {
		t.Fatalf("bpfload %s: %q %v", name, line, err)
	}
	return cmd, r.ID
}

func lineWith(out, substr string) string {
	i := strings.Index(out, substr)
	if i < 0 {
		return ""
	}
	line := out[i:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return line
}

// TestRunReportsResidentProgramsAndWhatTheLoadHookMissed: programs loaded
// before run are prog_present (a blocked one has its holder killed with
// --resident-block kill-holders), a program loaded through bpf_sys_bpf
// (invisible to the syscall hook) is prog_unseen, and one the hook reported
// is not.
func TestRunReportsResidentProgramsAndWhatTheLoadHookMissed(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	dir := t.TempDir()
	bin := goBuild(t, ".", "ebpf-sentry")
	loader := goBuild(t, "../../internal/cmd/bpfload", "bpfload")
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, []byte(residentBlockRule), 0o600)

	holder, blockedID := holdProgram(t, loader, "sresblk_pre")
	_, okID := holdProgram(t, loader, "sres_pre_ok")

	run := exec.Command(bin, "run", "--rules", rulesPath, "--lock-file", filepath.Join(dir, "lock"), "--ring-size", "8",
		"--rules-poll", "0", "--resident-block", "kill-holders", "--reconcile", "1s",
		// Off, so that an in-kernel load stands for what no hook sees:
		// the safety net's case (the bracket's own test is loaderrun_test.go).
		"--bracket-loaders=false")
	var stdout, stderr syncBuffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	waitFor(t, "start", &stderr, "sensor running")

	waitFor(t, "the blocked resident program", &stdout, `prog_present prog="sresblk_pre"`)
	line := lineWith(stdout.String(), `prog_present prog="sresblk_pre"`)
	want := fmt.Sprintf(`id=%d`, blockedID)
	if !strings.Contains(line, want) || !strings.Contains(line, "response=kill-holders") ||
		!strings.Contains(line, fmt.Sprintf("killed pid %d", holder.Process.Pid)) || !strings.Contains(line, "rules=sres-block:block") {
		t.Errorf("prog_present line: %s", line)
	}
	err := holder.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the holder of the blocked program ended with %v, want SIGKILL", err)
	}
	waitFor(t, "the benign resident program", &stdout, `prog_present prog="sres_pre_ok"`)
	if line := lineWith(stdout.String(), `prog_present prog="sres_pre_ok"`); !strings.Contains(line, fmt.Sprintf("id=%d", okID)) || strings.Contains(line, "response=") {
		t.Errorf("benign prog_present line: %s", line)
	}

	// Loaded through the syscall, while run watches: a prog_load, never unseen.
	seen, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "sres_seen", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer seen.Close()
	waitFor(t, "the hooked load", &stdout, `prog="sres_seen"`)

	unseenID := loadFromKernel(t, "sres_unseen")
	waitFor(t, "the in-kernel load", &stdout, `prog_unseen prog="sres_unseen"`)
	if line := lineWith(stdout.String(), `prog_unseen prog="sres_unseen"`); !strings.Contains(line, fmt.Sprintf("id=%d", unseenID)) {
		t.Errorf("prog_unseen line: %s", line)
	}
	if strings.Contains(stdout.String(), `prog_unseen prog="sres_seen"`) {
		t.Errorf("a load the hook reported was called unseen:\n%s", stdout.String())
	}
}

// fakeKernelView drives the keeper's reconciliation without a kernel.
type fakeKernelView struct {
	ids     []uint32
	scanned []map[uint32]bool
}

func (f *fakeKernelView) keeper(t *testing.T) (*residentKeeper, *[]*output.Event) {
	var events []*output.Event
	k := &residentKeeper{opts: residentOptions{block: "alert"}, self: 1, root: "/",
		seen: map[uint32]bool{}, pending: map[uint32]time.Time{},
		set:     func() *rules.Set { return nil },
		listIDs: func() ([]uint32, error) { return f.ids, nil },
		scan: func(o *inventory.Options) (*inventory.Inventory, error) {
			f.scanned = append(f.scanned, o.Programs)
			inv := &inventory.Inventory{}
			for _, id := range f.ids {
				if o.Programs == nil || o.Programs[id] {
					inv.Programs = append(inv.Programs, inventory.Program{ID: id, Name: fmt.Sprintf("p%d", id),
						Prog: &program.Program{Source: program.SourceKernel, Name: fmt.Sprintf("p%d", id), Kernel: &program.Kernel{ID: id}}})
				}
			}
			return inv, nil
		},
		emit: func(ev *output.Event) { events = append(events, ev) },
	}
	return k, &events
}

func TestReconcileReportsOnlyWhatTheHookNeverReported(t *testing.T) {
	f := &fakeKernelView{ids: []uint32{1, 2}}
	k, events := f.keeper(t)
	k.start()
	if len(*events) != 2 || (*events)[0].Event != output.KindProgPresent {
		t.Fatalf("start: %d events, want 2 prog_present", len(*events))
	}
	*events = nil

	// 3 is loaded and reported by the hook, but only after the first pass
	// saw it: in flight, not missed. 4 is never reported.
	f.ids = []uint32{1, 2, 3, 4}
	k.reconcile()
	if len(*events) != 0 {
		t.Fatalf("first pass reported %d events; candidates must wait one pass", len(*events))
	}
	k.observe(sensorEventWithID(3))
	k.reconcile()
	if len(*events) != 1 || (*events)[0].Event != output.KindProgUnseen || (*events)[0].Prog.Kernel.ID != 4 {
		t.Fatalf("second pass: %+v, want one prog_unseen for id 4", *events)
	}
	if last := f.scanned[len(f.scanned)-1]; len(last) != 1 || !last[4] {
		t.Errorf("the pass read programs %v, want only 4", last)
	}
	*events = nil
	k.reconcile()
	if len(*events) != 0 {
		t.Errorf("id 4 reported twice")
	}

	// An unloaded candidate is forgotten; ids leave the seen set with the
	// programs.
	f.ids = []uint32{1, 5}
	k.reconcile()
	f.ids = []uint32{1}
	k.reconcile()
	if len(*events) != 0 || len(k.pending) != 0 || len(k.seen) != 1 {
		t.Errorf("after unloads: %d events, pending %v, seen %v", len(*events), k.pending, k.seen)
	}
}

func sensorEventWithID(id uint32) *sensor.Event {
	return &sensor.Event{Program: &program.Program{Kernel: &program.Kernel{ID: id}}}
}

// TestRunDetachesTheLinksOfABlockedResidentProgram: --resident-block detach
// detaches a cgroup link that attaches a blocked program loaded before run.
func TestRunDetachesTheLinksOfABlockedResidentProgram(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	cg, err := os.MkdirTemp(cgroup2Mount(t), "ebpf-sentry-resident-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "sresblk_cg", Type: ebpf.CGroupSKB, License: "GPL",
		AttachType: ebpf.AttachCGroupInetEgress, Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: ebpf.AttachCGroupInetEgress, Program: prog})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	li, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}

	if n := attachedTo(t, cg); n != 1 {
		t.Fatalf("bpftool sees %d programs attached to %s, want 1", n, cg)
	}

	dir := t.TempDir()
	bin := goBuild(t, ".", "ebpf-sentry")
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, []byte(residentBlockRule), 0o600)
	run := exec.Command(bin, "run", "--rules", rulesPath, "--lock-file", filepath.Join(dir, "lock"), "--ring-size", "8",
		"--rules-poll", "0", "--resident-block", "detach", "--reconcile", "0")
	var stdout, stderr syncBuffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	waitFor(t, "the blocked resident program", &stdout, `prog_present prog="sresblk_cg"`)
	line := lineWith(stdout.String(), `prog_present prog="sresblk_cg"`)
	if !strings.Contains(line, fmt.Sprintf("detached link %d", li.ID)) {
		t.Errorf("prog_present line: %s", line)
	}
	// A detached link stays an object (holding its program) but is no
	// longer in the cgroup: bpftool lists nothing attached there.
	if n := attachedTo(t, cg); n != 0 {
		t.Errorf("%d programs still attached to %s after detach", n, cg)
	}
	inv, err := inventory.Scan(&inventory.Options{NoOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range inv.Links {
		if x.ID == uint32(li.ID) && !strings.HasPrefix(x.Target, "cgroup id 0 ") {
			t.Errorf("link %d still targets %q after detach", x.ID, x.Target)
		}
	}
}

// cgroup2Mount is where the unified cgroup hierarchy is mounted.
func cgroup2Mount(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if f := strings.Fields(pre); ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4]
		}
	}
	testutils.SkipOrFail(t, "no cgroup2 mount (cgroup links need one)")
	return ""
}

// attachedTo counts the programs bpftool shows attached to cgroup cg
// (bpftool prints nothing at all when there are none).
func attachedTo(t *testing.T, cg string) int {
	t.Helper()
	out, err := exec.Command("bpftool", "cgroup", "show", cg, "--json").Output()
	if err != nil {
		t.Fatalf("bpftool cgroup show %s: %v", cg, err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return 0
	}
	var attached []struct {
		ID uint32 `json:"id"`
	}
	if err := json.Unmarshal(out, &attached); err != nil {
		t.Fatalf("bpftool cgroup show: %v: %s", err, out)
	}
	return len(attached)
}

func TestReconcileReportsEachHiddenProgramOnce(t *testing.T) {
	f := &fakeKernelView{ids: []uint32{1}}
	k, events := f.keeper(t)
	k.hidden = map[string]bool{}
	finding := inventory.Hidden{ID: 9, SeenBy: []string{inventory.ViewIter}, MissingFrom: []string{inventory.ViewGetNextID}}
	k.crossView = func() (*inventory.Views, []inventory.Hidden, error) {
		return &inventory.Views{}, []inventory.Hidden{finding}, nil
	}
	f.ids = []uint32{1, 9} // readable by id, though GET_NEXT_ID hides it
	k.checkHidden()
	k.checkHidden()
	var hidden []*output.Event
	for _, ev := range *events {
		if ev.Event == output.KindProgHidden {
			hidden = append(hidden, ev)
		}
	}
	if len(hidden) != 1 {
		t.Fatalf("%d prog_hidden events, want 1", len(hidden))
	}
	ev := hidden[0]
	if ev.Hidden.ID != 9 || ev.Prog == nil || ev.Prog.Kernel.ID != 9 || ev.Verdict == nil {
		t.Errorf("prog_hidden %+v: want id 9 read by id and judged", ev)
	}
}
