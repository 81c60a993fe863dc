package sensor

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// prefaultPage is the record size sentry_prefault reserves (header included).
const prefaultPage = 4096

// prefault writes once through every page of the ring buffer, so that the
// first pass of real loads does not pay the first-write cost of each page
// (~9 µs per 4 KiB page on VMs whose balloon driver hands free guest pages
// back to the host; see docs/PERFORMANCE.md). It runs after the reader has
// started, which frees the discarded records. Best-effort: any failure is
// logged at debug level and the sensor carries on.
func (s *Sensor) prefault(p *ebpf.Program, loadErr error) {
	if loadErr != nil {
		s.log.Debug("ring buffer not pre-faulted", "err", loadErr)
		return
	}
	defer p.Close()
	start := time.Now()
	pages, err := s.runPrefault(p)
	s.prefaulted = pages
	if err != nil {
		s.log.Debug("ring buffer not pre-faulted", "err", err, "pages", pages)
		return
	}
	s.log.Debug("ring buffer pre-faulted", "pages", pages, "took", time.Since(start))
}

// PrefaultedPages is how many ring-buffer pages the start wrote through before
// returning: the whole ring (RingBufferSize/4096) unless the kernel refused
// the pre-fault program (then fewer, possibly 0; the sensor works the same,
// only its first pass through the ring is slower). It waits for the start
// (Ready), which pre-faults.
func (s *Sensor) PrefaultedPages() int {
	<-s.started
	return s.prefaulted
}

// loadPrefault loads sentry_prefault against the sensor's ring buffer.
func loadPrefault(prog *ebpf.ProgramSpec, eventsSpec *ebpf.MapSpec, events *ebpf.Map) (*ebpf.Program, error) {
	if prog == nil {
		return nil, fmt.Errorf("no %s program in the object", sentryProgSentryPrefault)
	}
	spec := &ebpf.CollectionSpec{
		Maps:     map[string]*ebpf.MapSpec{sentryMapEvents: eventsSpec},
		Programs: map[string]*ebpf.ProgramSpec{sentryProgSentryPrefault: prog},
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{sentryMapEvents: events},
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", sentryProgSentryPrefault, err)
	}
	p := coll.DetachProgram(sentryProgSentryPrefault)
	coll.Close()
	return p, nil
}

func (s *Sensor) runPrefault(p *ebpf.Program) (int, error) {
	total := s.cfg.RingBufferSize / prefaultPage
	// Half a ring per run: with the reader drained in between, a run never
	// finds the ring full, so its last record always wakes the reader.
	batch := max(total/2, 1)
	done := 0
	for done < total {
		ctx := sentrySentryPrefaultCtx{Pages: uint32(min(batch, total-done))}
		if _, err := p.Run(&ebpf.RunOptions{Context: ctx, ContextOut: &ctx}); err != nil {
			return done, fmt.Errorf("run %s: %w", sentryProgSentryPrefault, err)
		}
		if ctx.Done == 0 {
			return done, fmt.Errorf("run %s: ring buffer full", sentryProgSentryPrefault)
		}
		done += int(ctx.Done)
		if err := s.waitConsumed(2 * time.Second); err != nil {
			return done, err
		}
	}
	return done, nil
}

// waitConsumed waits until the reader has caught up with the producer.
func (s *Sensor) waitConsumed(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for s.reader.AvailableBytes() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("reader still %d bytes behind after %v", s.reader.AvailableBytes(), limit)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
