package sensor

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func (s *Sensor) read(ctx context.Context) {
	defer close(s.done)
	defer close(s.events)
	defer close(s.attempts)
	defer func() { s.undoWG.Wait(); close(s.attaches) }()
	defer close(s.writes)
	defer close(s.tokenEvents)
	defer close(s.mapCreates)
	defer s.delivered.end()
	var rec ringbuf.Record
	lastSweep := time.Now()
	// With the netpoller's wait, ReadInto never blocks (a deadline in the
	// past: it reads what the ring holds, then says ErrDeadlineExceeded)
	// and the reader parks in wait, until the next sweep at the latest.
	wait := s.wait
	nextSweep := func(now time.Time) {
		if wait != nil {
			wait.setDeadline(now.Add(s.cfg.sweepEvery))
		} else {
			s.reader.SetDeadline(now.Add(s.cfg.sweepEvery))
		}
	}
	if wait != nil {
		s.reader.SetDeadline(time.Unix(0, 1))
	}
	nextSweep(lastSweep)
	for {
		// Delivered's waiters from before this read: released if it finds
		// the ring empty (every earlier record was handled above).
		waiters := s.delivered.take()
		err := s.reader.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			release(waiters)
		} else {
			s.delivered.putBack(waiters)
		}
		if wait != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			werr := wait.wait(s.reader.AvailableBytes)
			if waitTimedOut(werr) {
				nextSweep(lastSweep) // Delivered may have set the deadline to now
			} else if werr != nil {
				// Closed (or unpollable after all): wait in the
				// reader, which says ErrClosed once it is closed.
				wait = nil
				nextSweep(time.Now())
			}
		}
		now := time.Now()
		if err == nil && len(rec.RawSample) >= 4 && binary.LittleEndian.Uint32(rec.RawSample) == kindProgArray {
			pr, perr := parseProgArrayRec(rec.RawSample)
			if perr != nil {
				s.mu.Lock()
				s.badRecs++
				s.mu.Unlock()
				s.log.Warn("sensor record", "err", perr)
			} else {
				s.deliverWrite(progArrayWrite(pr, s.asm.monoToWall))
			}
		} else if err == nil {
			r, perr := parseRecord(rec.RawSample)
			s.mu.Lock()
			var ev *Event
			var at *AttachEvent
			if perr != nil {
				s.badRecs++
				s.log.Warn("sensor record", "err", perr)
			} else if r.token != nil {
				s.tokenCreated(r.token)
			} else if r.mapCreate != nil {
				s.mapCreated(r.mapCreate)
			} else if r.attach != nil || r.attachExit != nil {
				at = s.addAttach(r, now)
			} else if r.tamper == nil {
				ev = s.asm.add(r, now)
			}
			s.mu.Unlock()
			if r.tamper != nil {
				s.deliverAttempt(accessAttempt(r.tamper))
			}
			if ev != nil {
				s.deliver(ctx, ev)
			}
			if at != nil {
				s.deliverAttach(at)
			}
		} else if errors.Is(err, ringbuf.ErrClosed) {
			break
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Warn("read ring buffer", "err", err)
		}
		if now.Sub(lastSweep) >= s.cfg.sweepEvery {
			lastSweep = now
			nextSweep(now)
			s.mu.Lock()
			expired := s.asm.expire(now.Add(-s.cfg.ExpireAfter))
			lost := s.expireAttaches(now.Add(-s.cfg.ExpireAfter))
			s.mu.Unlock()
			for _, at := range lost {
				s.deliverAttach(at)
			}
			if now.Sub(s.lastGroupSweep) > groupSweepEvery {
				s.lastGroupSweep = now
				if _, err := s.SweepGroups(); err != nil {
					s.log.Warn("sweep loader groups", "err", err)
				}
			}
			for _, ev := range expired {
				s.deliver(ctx, ev)
			}
		}
	}
	s.mu.Lock()
	rest := s.asm.expire(time.Now().Add(time.Hour))
	lost := s.expireAttaches(time.Now().Add(time.Hour))
	s.mu.Unlock()
	for _, at := range lost {
		s.deliverAttach(at)
	}
	for _, ev := range rest {
		s.deliver(ctx, ev)
	}
}

// deliver blocks while the consumer is slow (the ring buffer absorbs the
// burst and counts what it cannot), but gives up on shutdown.
func (s *Sensor) deliver(ctx context.Context, ev *Event) {
	if ev.RuleIndex >= 0 {
		ev.RuleID = s.ruleID(ev.generation, ev.RuleIndex)
	} else if ev.Unjudged != "" {
		ev.RuleID = RuleUnjudged
	} else if ev.Verdict == VerdictBlock && ev.ReadErrors > 0 && s.cfg.BlockUnreadable {
		ev.RuleID = RuleUnreadable
		if ev.GroupRefsOver == ev.ReadErrors {
			ev.RuleID = RuleGroupRefsOver
		}
	} else if ev.Verdict == VerdictBlock && ev.Lock.Blocks() {
		ev.RuleID = RuleLock
	}
	s.retries.mark(ev)
	select {
	case s.events <- ev:
		s.queueSizes = append(s.queueSizes, int64(len(ev.Program.Insns)))
		s.queuedBytes += int64(len(ev.Program.Insns))
	case <-ctx.Done():
		s.mu.Lock()
		s.userLost["undelivered_at_close"]++
		s.mu.Unlock()
	}
}

// queued is the bytes of instructions in events handed to Events but not
// yet received: the channel is FIFO, so the consumer took the oldest ones.
// Reader goroutine only.
func (s *Sensor) queued() int64 {
	for taken := len(s.queueSizes) - len(s.events); taken > 0; taken-- {
		s.queuedBytes -= s.queueSizes[0]
		s.queueSizes = s.queueSizes[1:]
	}
	return s.queuedBytes
}

// drain waits until the reader has consumed everything already submitted.
func (s *Sensor) drain() {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && s.reader.AvailableBytes() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

func monoToWall() func(uint64) time.Time {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	offset := time.Now().UnixNano() - ts.Nano()
	return func(ns uint64) time.Time { return time.Unix(0, int64(ns)+offset) }
}

// newEnricher names the attach target from the kernel's BTF, hashes the
// loader's executable (exe identity), and reads /proc/PID/exe only when the
// kernel could not walk the exe path.
func newEnricher() func(*program.Program, *sentrySentryHeader) {
	var exes exeHasher
	kernel := &kernelNames{load: btf.LoadKernelSpec, keep: keepKernelBTF}
	return func(p *program.Program, h *sentrySentryHeader) {
		p.Loader.ExeSHA256 = exes.hash(h.Pid, h.ExeIno, h.ExeDev)
		if h.ExeTruncated != 0 {
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(int(h.Pid)) + "/exe"); err == nil {
				p.Loader.Exe = exe
			}
		}
		if h.AttachBtfId != 0 && h.AttachBtfObjFd == 0 {
			if name, ok := kernel.name(btf.TypeID(h.AttachBtfId)); ok {
				p.AttachTo = name
			}
		}
	}
}

// keepKernelBTF: how long the enricher keeps the kernel's BTF after the
// last load that needed it.
const keepKernelBTF = time.Minute

// maxKernelNames bounds the attach-target names remembered by type id.
const maxKernelNames = 4096

// kernelNames names kernel BTF types by id for attach targets. The parsed
// kernel BTF is 2-3 MB of heap (a heap profile of an idle agent on a host
// where tracing programs load), kept before for the agent's lifetime once
// one such load came: now it is dropped keep after the last lookup that
// needed it, and the names found are remembered (up to maxKernelNames), so
// a target seen before costs no parse.
type kernelNames struct {
	load func() (*btf.Spec, error)
	keep time.Duration

	mu     sync.Mutex
	spec   *btf.Spec
	failed bool // the kernel has no readable BTF: not tried again
	names  map[btf.TypeID]string
	timer  *time.Timer
	loads  int // parses, for the test
}

func (k *kernelNames) name(id btf.TypeID) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n, ok := k.names[id]; ok {
		return n, true
	}
	if k.failed {
		return "", false
	}
	if k.spec == nil {
		spec, err := k.load()
		k.loads++
		if err != nil {
			k.failed = true
			return "", false
		}
		k.spec = spec
	}
	if k.timer == nil {
		k.timer = time.AfterFunc(k.keep, k.drop)
	} else {
		k.timer.Reset(k.keep)
	}
	t, err := k.spec.TypeByID(id)
	if err != nil {
		return "", false
	}
	if k.names == nil || len(k.names) >= maxKernelNames {
		k.names = map[btf.TypeID]string{}
	}
	k.names[id] = t.TypeName()
	return k.names[id], true
}

// drop lets the parsed BTF go (the timer's doing, keep after the last use).
func (k *kernelNames) drop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spec = nil
}
