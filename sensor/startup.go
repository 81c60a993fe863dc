package sensor

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Start-up (docs/PERFORMANCE.md "Start-up"): almost all of a start is the
// verifier checking the enter program (~380,000 verified instructions for
// sentry_enter_tp on 6.18), and before this file a second program of the
// same size, the 32-bit kprobe judge, was verified one after the other, even
// on kernels where it could never attach. Now the maps are created first,
// the programs are verified concurrently (privileged loads do not serialise
// in the verifier), the 32-bit judge only where kprobes can attach, and
// what does not concern judging loads (group calibration, the ring
// pre-fault) runs after New has returned from NewStaged.

// programGroups are loaded concurrently, each as its own collection over
// the same maps.
type programGroups [][]string

// loadConcurrently creates spec's maps once, then loads each group of
// programs on its own goroutine against those maps, and returns them as one
// collection. Every program in spec must be in a group. sequential loads the
// groups one after the other (the path before concurrent loading, kept as
// the benchmark's baseline).
//
// optional programs (from optSpec, over the same maps) are loaded each on
// its own, on one more goroutine, and returned apart with their errors: a
// kernel that refuses one must not stop the sensor.
func loadConcurrently(spec *ebpf.CollectionSpec, groups programGroups, optSpec *ebpf.CollectionSpec, cache *btf.Cache, sequential bool) (*ebpf.Collection, *optionalPrograms, error) {
	mapsOnly := spec.Copy()
	mapsOnly.Programs = map[string]*ebpf.ProgramSpec{}
	maps, err := ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, nil, fmt.Errorf("create sensor maps: %w", err)
	}
	specs := make([]*ebpf.CollectionSpec, 0, len(groups))
	placed := map[string]bool{}
	for _, g := range groups {
		one := spec.Copy()
		one.Programs = map[string]*ebpf.ProgramSpec{}
		for _, name := range g {
			if p := spec.Programs[name]; p != nil && !placed[name] {
				one.Programs[name] = p.Copy()
				placed[name] = true
			}
		}
		if len(one.Programs) > 0 {
			specs = append(specs, one)
		}
	}
	for name := range spec.Programs {
		if !placed[name] {
			maps.Close()
			return nil, nil, fmt.Errorf("program %s is in no load group", name)
		}
	}
	colls := make([]*ebpf.Collection, len(specs))
	errs := make([]error, len(specs))
	load := func(i int) {
		colls[i], errs[i] = ebpf.NewCollectionWithOptions(specs[i], ebpf.CollectionOptions{Cache: cache, MapReplacements: maps.Maps})
	}
	opt := &optionalPrograms{colls: map[string]*ebpf.Collection{}, errs: map[string]error{}}
	loadOptional := func() {
		if optSpec == nil {
			return
		}
		for name := range optSpec.Programs {
			one := optSpec.Copy()
			for other := range one.Programs {
				if other != name {
					delete(one.Programs, other)
				}
			}
			c, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{Cache: cache, MapReplacements: maps.Maps})
			if err != nil {
				opt.errs[name] = err
				continue
			}
			opt.colls[name] = c
		}
	}
	if sequential {
		for i := range specs {
			load(i)
		}
		loadOptional()
	} else {
		var wg sync.WaitGroup
		for i := range specs {
			wg.Add(1)
			go func() { defer wg.Done(); load(i) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); loadOptional() }()
		wg.Wait()
	}
	out := &ebpf.Collection{Programs: map[string]*ebpf.Program{}, Maps: maps.Maps, Variables: maps.Variables}
	var first error
	for i, c := range colls {
		if errs[i] != nil {
			if first == nil {
				first = errs[i]
			}
			continue
		}
		for name, p := range c.Programs {
			out.Programs[name] = p
		}
		c.Programs = nil
		c.Close() // the clones of the maps
	}
	if first != nil {
		out.Close()
		opt.close()
		var ve *ebpf.VerifierError
		if errors.As(first, &ve) {
			return nil, nil, fmt.Errorf("load sensor programs: %w\n%+v", first, ve)
		}
		return nil, nil, fmt.Errorf("load sensor programs: %w", first)
	}
	return out, opt, nil
}

// errNotInObject: an optional program the object does not have.
var errNotInObject = errors.New("not in the object")

// optionalPrograms are best-effort programs loaded with the sensor's:
// one collection each (over clones of the sensor's maps), or why not.
type optionalPrograms struct {
	colls map[string]*ebpf.Collection
	errs  map[string]error
}

// take hands over the collection of the named program (nil and its load
// error when it was not loaded).
func (o *optionalPrograms) take(name string) (*ebpf.Collection, error) {
	c := o.colls[name]
	delete(o.colls, name)
	if c == nil {
		err := o.errs[name]
		if err == nil {
			err = fmt.Errorf("program %s: %w", name, errNotInObject)
		}
		return nil, err
	}
	return c, nil
}

// close frees what was not taken.
func (o *optionalPrograms) close() {
	for _, c := range o.colls {
		c.Close()
	}
	o.colls = nil
}

// JudgingSince is when the sensor started judging loads: the enforcing hook
// attached with the agent's identity learnt and the rules (and, in lock
// mode, the allowlist) in place. From then on no load escapes the judge.
func (s *Sensor) JudgingSince() time.Time { return s.judging }

// Ready waits for the part of the start that NewStaged leaves running after
// the sensor judges loads (group calibration, the ring pre-fault) and
// returns its error. Safe to call any number of times.
func (s *Sensor) Ready() error {
	<-s.started
	return s.startErr
}

// NewStaged is New, returning as soon as the sensor judges loads
// (JudgingSince) rather than when its whole start is done: the rest runs
// concurrently, and Ready waits for it and says whether it failed. Close may
// be called at any time.
func NewStaged(cfg Config) (*Sensor, error) {
	cfg.staged = true
	return New(cfg)
}

// finishStart is the part of the start that does not concern judging
// loads. Every step is best-effort and says what it could not do, as it
// did before the start was staged.
func (s *Sensor) finishStart(prefaultProg *ebpf.Program, prefaultErr error) {
	defer close(s.started)
	s.calibrateGroupsOrSay()
	s.prefault(prefaultProg, prefaultErr)
}

// startPhases times the steps of a start for the debug log.
type startPhases struct {
	last  time.Time
	names []string
	took  []time.Duration
}

func newStartPhases() *startPhases { return &startPhases{last: time.Now()} }

// mark ends the step named name.
func (p *startPhases) mark(name string) {
	now := time.Now()
	p.names, p.took = append(p.names, name), append(p.took, now.Sub(p.last))
	p.last = now
}

func (p *startPhases) attrs() []any {
	var a []any
	for i, n := range p.names {
		a = append(a, n, p.took[i].Round(time.Millisecond))
	}
	return a
}
