package sensor

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// A loader without CAP_BPF/CAP_SYS_ADMIN loading a tracepoint program (the
// kernel refuses it with EPERM) is reported as an attempt — who, how big,
// refused — without the sensor reading or judging its instructions, even
// when its name matches a block rule: a flood of such loads costs a header.
func TestUnprivilegedLoadIsReportedWithoutCapture(t *testing.T) {
	if os.Getenv(kernelEnv) != "" {
		t.Skip("copies the loader to run it as nobody; the VMs run the one on PATH")
	}
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	// nobody must be able to run the loader: copy it out of the 0700 dir.
	dir, err := os.MkdirTemp("", "sentry-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bpfload")
	src, err := os.Open(buildLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(dst, src)
	src.Close()
	dst.Close()

	const insns = 100000
	cmd := exec.Command(bin, "-gen", "100000", "-name", "se2eexact")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("unprivileged loader: %v (killed for a load the kernel refuses?)", err)
	}
	evs := collect(t, s, map[uint32]bool{uint32(cmd.Process.Pid): true}, 1, eventWait)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	if !ev.Unprivileged || ev.ChunksExpected != 0 || len(ev.Program.Insns) != 0 || ev.Program.InsnCnt != insns ||
		ev.Program.Loader.UID != 65534 || ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != int(syscall.EPERM) ||
		ev.Verdict != VerdictAllow || ev.Action != ActionNone {
		t.Fatalf("unprivileged=%v chunks=%d insns=%d insn_cnt=%d uid=%d outcome=%+v verdict=%s action=%s",
			ev.Unprivileged, ev.ChunksExpected, len(ev.Program.Insns), ev.Program.InsnCnt, ev.Program.Loader.UID, ev.Outcome, ev.Verdict, ev.Action)
	}

	// The same load as root is captured and judged as usual.
	run := runLoader(t, "-gen", "3", "-name", "se2eexact")
	if !run.killed {
		t.Fatalf("a privileged load of a blocked name was not killed: %+v", run.results)
	}
}
