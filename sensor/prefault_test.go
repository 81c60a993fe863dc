package sensor

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The whole ring is written through before New returns, and the discarded
// pre-fault records never reach the record parser or the loss counters.
//
// The sensor's ring and loss counters also take every other loader's loads
// on the host, so what the pre-fault itself does is shown on a source of
// its own: the sensor's pre-fault program, run the same way against a
// private ring of the same size, writes through every page and a reader of
// that ring receives no record at all; and the program refers to no map but
// the ring, so it cannot move a loss counter.
func TestNewPrefaultsTheWholeRing(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	walks := []Walk{WalkLoop, WalkBounded}
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		walks = []Walk{WalkBounded}
	}
	// The pre-fault is a BPF_PROG_TYPE_SYSCALL program (5.14+): before
	// that nothing is pre-faulted and the sensor starts all the same.
	canRun := features.HaveProgramType(ebpf.Syscall) == nil
	for _, walk := range walks {
		for _, size := range []int{1 << 20, DefaultRingBufferSize} {
			s, err := New(Config{Hook: HookTracepoint, Walk: walk, Mode: ModeMonitor, RingBufferSize: size})
			if err != nil {
				t.Fatal(err)
			}
			got := s.PrefaultedPages()
			s.Close()
			want := size / prefaultPage
			if !canRun {
				want = 0
			}
			if got != want {
				t.Errorf("walk %s, ring of %d bytes: pre-faulted %d pages, want %d", walk, size, got, want)
			}
			// every loader on the host: shown, not asserted
			if l, err := s.Losses(); err == nil {
				t.Logf("walk %s, ring of %d bytes: malformed records %d, losses %d (all loaders on the host)", walk, size, s.badRecs, l.Total())
			}
			if canRun {
				prefaultAlone(t, walk, size)
			}
		}
	}
}

// prefaultAlone runs the sensor's pre-fault (walk's object) against a
// private ring of size bytes with a reader of its own.
func prefaultAlone(t *testing.T, walk Walk, size int) {
	t.Helper()
	load := loadSentry
	if walk == WalkBounded {
		load = loadSentryLegacy
	}
	spec, err := load()
	if err != nil {
		t.Fatal(err)
	}
	prog, ringSpec := spec.Programs[sentryProgSentryPrefault], spec.Maps[sentryMapEvents].Copy()
	if prog == nil {
		t.Fatalf("walk %s: no %s program", walk, sentryProgSentryPrefault)
	}
	for _, ins := range prog.Instructions {
		if ins.IsLoadFromMap() && ins.Reference() != sentryMapEvents {
			t.Errorf("walk %s: the pre-fault refers to map %q: only the ring may be touched", walk, ins.Reference())
		}
	}
	ringSpec.MaxEntries = uint32(size)
	ring, err := ebpf.NewMap(ringSpec)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	p, err := loadPrefault(prog, ringSpec, ring)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(ring)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	// The reader frees the discarded records' space; any record it
	// returns reached the parser.
	received := make(chan int)
	go func() {
		n := 0
		var rec ringbuf.Record
		for {
			if err := rd.ReadInto(&rec); errors.Is(err, ringbuf.ErrClosed) {
				received <- n
				return
			} else if err == nil {
				n++
			}
		}
	}()
	alone := &Sensor{cfg: Config{RingBufferSize: size}, reader: rd}
	pages, err := alone.runPrefault(p)
	p.Close()
	left := rd.AvailableBytes()
	rd.Close()
	n := <-received
	if err != nil || pages != size/prefaultPage {
		t.Errorf("walk %s, private ring of %d bytes: pre-faulted %d pages (%v), want %d", walk, size, pages, err, size/prefaultPage)
	}
	if n != 0 || left != 0 {
		t.Errorf("walk %s, private ring of %d bytes: the reader received %d records and %d bytes were left unread, want none", walk, size, n, left)
	}
}
