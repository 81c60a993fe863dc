package sensor

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// assembler joins the records of each load (header, instruction chunks,
// verdict, exit) into one Event. Records of different loads interleave
// freely; the records of one load arrive in order because one thread
// writes them, so the exit record completes a load. Loads whose exit never
// comes are expired (and reported with what is missing), never dropped.
type assembler struct {
	pending map[uint64]*partial
	// monoToWall converts the kernel's CLOCK_MONOTONIC ns to wall time.
	monoToWall func(ns uint64) time.Time
	// enrich fills what user space adds (exe path, attach target name)
	// as soon as the header is seen, while the loader most likely lives.
	enrich func(p *program.Program, h *sentrySentryHeader)
	// tokens names the origin of loads made through a BPF token.
	tokens *tokenBook
	// orphanChunks counts chunks whose load had no header: cannot happen
	// unless the kernel side is broken, so it is tracked, not hidden.
	orphanChunks uint64
	// budget bounds the bytes of instructions held in reassembly plus
	// queued() (events handed on but not yet taken by the consumer); 0:
	// no bound. A load that would exceed it keeps its metadata and
	// verdict but not its instructions (overBudget counts them).
	budget     int64
	inUse      int64
	queued     func() int64
	overBudget uint64
	// readMem reads a loader's memory for the chunks the kernel did not
	// write (recover.go); nil: no second path.
	readMem         memReader
	recoverFailed   uint64 // the loader's memory could not be read
	recoverMismatch uint64 // what was read is not what the kernel judged
	log             *slog.Logger
}

type partial struct {
	ev       *Event
	held     int64 // bytes of insns counted against the budget
	dropped  bool  // over budget: chunks are not kept
	insns    []byte
	got      []bool
	seen     time.Time
	header   bool
	verdict  bool
	readErrs uint32
	// insnsPtr is the loader's instruction address (header), for recovery.
	insnsPtr  uint64
	recovered bool
}

func newAssembler() *assembler {
	return &assembler{pending: make(map[uint64]*partial)}
}

func (a *assembler) get(r record, now time.Time) *partial {
	p := a.pending[r.loadID]
	if p == nil {
		// Until (unless) the header arrives, the loader is known by pid only.
		prog := &program.Program{Source: program.SourceSensor, Loader: &program.Loader{PID: r.pid, Unknown: program.HeaderFields}}
		p = &partial{ev: &Event{LoadID: r.loadID, RuleIndex: -1, Program: prog}}
		a.pending[r.loadID] = p
	}
	p.seen = now
	return p
}

// add consumes one record and returns the event it completed, if any.
func (a *assembler) add(r record, now time.Time) *Event {
	switch {
	case r.header != nil:
		p := a.get(r, now)
		a.applyHeader(p, r.header)
	case r.chunk != nil:
		p := a.pending[r.loadID]
		if p == nil || !p.header {
			a.orphanChunks++
			return nil
		}
		p.seen = now
		if p.dropped {
			return nil
		}
		c := r.chunk
		if int(c.index) >= len(p.got) || p.got[c.index] {
			a.orphanChunks++
			return nil
		}
		p.got[c.index] = true
		p.ev.ChunksReceived++
		if c.readErr {
			p.readErrs++
			return nil
		}
		off := int(c.index) * chunkInsns * 8
		if off+len(c.data) <= len(p.insns) {
			copy(p.insns[off:], c.data)
		}
	case r.verdict != nil:
		p := a.get(r, now)
		p.verdict = true
		applyVerdict(p.ev, r.verdict)
		a.recoverInsns(p, r.verdict)
	case r.exit != nil:
		p := a.get(r, now)
		applyExit(p.ev, r.exit)
		delete(a.pending, r.loadID)
		return a.finish(p, true)
	}
	return nil
}

func (a *assembler) applyHeader(p *partial, h *sentrySentryHeader) {
	p.header = true
	ev := p.ev
	if a.monoToWall != nil {
		ev.Time = a.monoToWall(h.KtimeNs)
	}
	prog := ev.Program
	prog.Name = cString(h.Name[:])
	prog.Type = h.ProgType
	prog.ExpectedAttachType = h.ExpectedAttachType
	prog.AttachBTFID = h.AttachBtfId
	prog.Flags = h.ProgFlags
	prog.License = cString(h.License[:])
	prog.InsnCnt = h.InsnCnt
	prog.Loader = &program.Loader{
		PID: h.Pid, TID: h.Tid, PPID: h.Ppid, UID: h.Uid, GID: h.Gid,
		Comm: cString(h.Comm[:]), Exe: exePath(cString(h.Exe[:]), h.ExeTruncated != 0), CgroupID: h.CgroupId,
		ExeInode: h.ExeIno, ExeDev: h.ExeDev,
	}
	total := min(h.InsnCnt, maxCaptureInsn)
	need := int64(total) * 8
	queued := int64(0)
	if a.queued != nil {
		queued = a.queued()
	}
	if a.budget > 0 && a.inUse+queued+need > a.budget {
		// Over budget: the chunks of this load are dropped as they come
		// (the event says "chunks" missing); the heap does not grow.
		a.overBudget++
		p.dropped = true
	} else {
		p.insns = make([]byte, need)
		p.held = need
		a.inUse += need
	}
	p.got = make([]bool, h.Chunks)
	p.insnsPtr = h.InsnsPtr
	ev.ChunksExpected = h.Chunks
	ev.Unprivileged = h.Unprivileged != 0
	ev.RefusedBeforeHook = h.BeforeHook != 0
	ev.RateLimited = h.RateLimited != 0
	prog.Provenance = provenanceFromHeader(h)
	if pv := prog.Provenance; pv != nil && pv.ViaToken && a.tokens != nil {
		a.tokens.resolve(pv, h.Pid, h.TokenIno, h.TokenDev)
	}
	if a.enrich != nil {
		a.enrich(prog, h)
	}
}

func applyVerdict(ev *Event, v *sentrySentryVerdictRec) {
	ev.Verdict = Verdict(v.Verdict)
	ev.Action = Action(v.Action)
	ev.RuleIndex = int(v.RuleIndex)
	ev.generation = v.Generation
	ev.HelperOther = v.HelperOther
	ev.Matched = nil
	if words := append([]uint64{v.Matched}, v.MatchedMore[:]...); slices.ContainsFunc(words, func(w uint64) bool { return w != 0 }) {
		ev.Matched = words
	}
	if v.Error != 0 {
		if int(v.Error-1) < len(lossNames) {
			ev.Unjudged = lossNames[v.Error-1]
		} else {
			ev.Unjudged = fmt.Sprintf("error %d", v.Error-1)
		}
	}
	ev.InsnHash = v.InsnHash
	ev.Lock = Lock(v.Lock)
	ev.ReadErrors = v.ReadErrors
	ev.GroupRefsOver = v.RefsOver
	ev.CallsHelper, ev.CallsSub, ev.CallsKfunc = v.CallsHelper, v.CallsSub, v.CallsKfunc
	ev.WalkTime = time.Duration(v.WalkNs)
	ev.Helpers = make(map[uint32]uint32)
	for id, n := range v.HelperCount {
		if n != 0 {
			ev.Helpers[uint32(id)] = n
		}
	}
}

// Flags of sentry_exit.inner (bpf/include/sentry.h).
const (
	innerLoad   = 1
	innerFailed = 2
)

func applyExit(ev *Event, x *sentrySentryExit) {
	if x.Inner&innerLoad != 0 {
		ev.Inner = &InnerLoad{LoaderProgID: x.LoaderProgId}
		if x.LoaderProgId != 0 {
			ev.Inner.LoaderTag = hex.EncodeToString(x.LoaderTag[:])
		}
	}
	switch {
	case ev.Inner != nil && x.Inner&innerFailed != 0:
		// Refused after the judgement; the kernel's errno went to the
		// loader program, not to a hook.
		ev.Outcome = Outcome{Result: ResultFailed}
	case ev.Inner != nil && x.Ret >= 0:
		ev.Outcome = Outcome{Result: ResultLoaded} // the fd is the loader program's
	case x.Killed != 0, x.Sigkill != 0:
		ev.Outcome.Result = ResultKilled
		ev.Outcome.KilledByOther = x.Killed == 0
		if x.Ret < 0 {
			ev.Outcome.Errno = int(-x.Ret)
		} else {
			ev.Outcome.FD = int(x.Ret)
		}
	case x.Ret >= 0:
		ev.Outcome = Outcome{Result: ResultLoaded, FD: int(x.Ret)}
	default:
		ev.Outcome = Outcome{Result: ResultFailed, Errno: int(-x.Ret)}
	}
	if x.ProgId != 0 {
		ev.Program.Kernel = &program.Kernel{ID: x.ProgId, Tag: hex.EncodeToString(x.Tag[:])}
	}
	SignatureVerdict(ev.Program.Provenance, ev.Outcome)
}

// finish turns a partial load into an event, listing what never arrived.
func (a *assembler) finish(p *partial, exited bool) *Event {
	a.inUse -= p.held
	p.held = 0
	ev := p.ev
	if !p.header {
		ev.Missing = append(ev.Missing, "header")
	}
	if !p.verdict {
		ev.Missing = append(ev.Missing, "verdict")
	}
	if !exited {
		ev.Missing = append(ev.Missing, "exit")
		ev.Outcome.Result = ResultUnknown
	}
	// The program keeps the longest prefix of instructions that arrived.
	n := 0
	for n < len(p.got) && p.got[n] {
		n++
	}
	if p.header && n < len(p.got) {
		ev.Missing = append(ev.Missing, "chunks")
	}
	end := min(n*chunkInsns*8, len(p.insns))
	ev.Program.Insns = p.insns[:end]
	if p.readErrs > ev.ReadErrors {
		ev.ReadErrors = p.readErrs
	}
	complete := p.header && n == len(p.got) && p.readErrs == 0 && ev.ReadErrors == 0
	ev.Program.Truncated = !complete || uint32(len(ev.Program.Insns)/8) < ev.Program.InsnCnt
	if complete && p.verdict && ev.Program.InsnCnt <= maxCaptureInsn {
		ev.HashMismatch = kernel.Hash(ev.Program.Insns) != ev.InsnHash
	}
	// Only a whole capture can be compared with what the kernel loaded.
	if complete && !ev.Program.Truncated && ev.Program.Kernel != nil && ev.Program.Kernel.Tag != "" {
		ev.JudgedCopyDiffers = judgedCopyDiffers(ev.Program.Insns, ev.Program.Kernel.Tag)
		if p.recovered && ev.JudgedCopyDiffers {
			// A copy read after the fact that is not what the kernel loaded
			// proves nothing about either: drop it (recover.go).
			a.recoverMismatch++
			p.recovered, ev.Recovered, ev.JudgedCopyDiffers = false, false, false
			ev.Program.Insns, ev.Program.Truncated = nil, true
			ev.Missing = append(ev.Missing, "chunks")
		}
	}
	return ev
}

// expire finishes loads that have seen no record since before the cutoff.
func (a *assembler) expire(cutoff time.Time) []*Event {
	var out []*Event
	for id, p := range a.pending {
		if p.seen.Before(cutoff) {
			delete(a.pending, id)
			out = append(out, a.finish(p, false))
		}
	}
	return out
}

// exePath turns the kernel's leaf-first components ("bpfload/tmp/") into
// a path ("/tmp/bpfload"); a walk that stopped early gets a "…" root.
func exePath(rev string, truncated bool) string {
	parts := strings.Split(strings.TrimSuffix(rev, "/"), "/")
	if rev == "" {
		return ""
	}
	slices.Reverse(parts)
	p := "/" + strings.Join(parts, "/")
	if truncated {
		p = "…" + p
	}
	return p
}

func cString[T ~int8 | ~uint8](b []T) string {
	buf := make([]byte, len(b))
	for i, c := range b {
		buf[i] = byte(c)
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return string(buf)
}
