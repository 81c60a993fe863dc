package sensor

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// The second path for big programs. The kernel writes a load's
// instructions into the ring buffer as chunk records while it walks them,
// but a big program (chunks over an eighth of the ring) writes them only
// while the ring is at most half full, keeping the rest for other loads
// (bpf/sensor.bpf.c, walk_chunk): a program whose chunks do not fit (a
// 1,000,000-instruction program is 8 MiB of chunks, the default ring 4 MiB)
// is still walked and judged whole in the kernel, and its
// verdict record carries the hash of every instruction walked (insn_hash)
// and how many chunks were not written (chunks_lost).
//
// User space then reads the program from the loader's memory with
// process_vm_readv as soon as that verdict arrives, while the loader most
// likely still waits for the verifier in bpf(), and keeps the copy only if
// it hashes to insn_hash: the copy is then the program the kernel judged.
// The loader may change its memory after the kernel read it (the TOCTOU
// the judged/loaded tag check exists for); a changed copy fails the hash
// and the event stays incomplete, counted as recover_mismatch. insn_hash
// is a 64-bit multiplicative hash, not a cryptographic one, so a loaded
// program's recovered copy must also match the tag the kernel computed
// over what it loaded (SHA-1); a failed load has no tag and only the hash
// vouches for its copy (Event.Recovered says which events were read this
// way).

// memReader reads n bytes at addr in process pid (process_vm_readv).
type memReader func(pid uint32, addr uint64, n int) ([]byte, error)

func readProcessMemory(pid uint32, addr uint64, n int) ([]byte, error) {
	buf := make([]byte, n)
	got := 0
	for got < n {
		local := []unix.Iovec{{Base: &buf[got]}}
		local[0].SetLen(n - got)
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(got), Len: n - got}}
		k, err := unix.ProcessVMReadv(int(pid), local, remote, 0)
		if err != nil {
			return nil, fmt.Errorf("process_vm_readv pid %d at %#x: %w", pid, addr+uint64(got), err)
		}
		if k == 0 {
			return nil, fmt.Errorf("process_vm_readv pid %d at %#x: short read (%d of %d bytes)", pid, addr, got, n)
		}
		got += k
	}
	return buf, nil
}

// recoverInsns fills a load whose chunks the kernel did not write from the
// loader's memory, if the copy hashes to the kernel's insn_hash. Called
// when the verdict arrives: every chunk the kernel wrote came before it.
func (a *assembler) recoverInsns(p *partial, v *sentrySentryVerdictRec) {
	if v.ChunksLost == 0 || a.readMem == nil || !p.header || p.dropped || v.Error != 0 || v.ReadErrors != 0 ||
		p.insnsPtr == 0 || len(p.insns) == 0 || p.ev.Program.InsnCnt > maxCaptureInsn {
		return
	}
	buf, err := a.readMem(p.ev.Program.Loader.PID, p.insnsPtr, len(p.insns))
	if err != nil {
		a.recoverFailed++
		if a.log != nil {
			a.log.Debug("big program not recovered from the loader", "pid", p.ev.Program.Loader.PID, "err", err)
		}
		return
	}
	if kernel.Hash(buf) != v.InsnHash {
		a.recoverMismatch++
		return
	}
	copy(p.insns, buf)
	for i := range p.got {
		p.got[i] = true
	}
	p.recovered = true
	p.ev.Recovered = true
}
