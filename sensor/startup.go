package sensor

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
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
	// The maps first, created while the programs are copied for their
	// groups below (the copies are ~10 ms of CPU, the maps mostly the
	// kernel's).
	type created struct {
		maps *ebpf.Collection
		err  error
	}
	mapsDone := make(chan created, 1)
	mapsSpec := specWith(spec)
	create := func() {
		maps, err := createMaps(mapsSpec, cache, sequential)
		mapsDone <- created{maps, err}
	}
	if sequential {
		create()
	} else {
		go create()
	}
	specs := make([]*ebpf.CollectionSpec, 0, len(groups))
	placed := map[string]bool{}
	for _, g := range groups {
		var names []string
		for _, name := range g {
			if p := spec.Programs[name]; p != nil && !placed[name] {
				names = append(names, name)
				placed[name] = true
			}
		}
		if len(names) > 0 {
			specs = append(specs, specWith(spec, names...))
		}
	}
	var optional []*ebpf.CollectionSpec
	if optSpec != nil {
		for name := range optSpec.Programs {
			optional = append(optional, specWith(optSpec, name))
		}
	}
	c := <-mapsDone
	maps, err := c.maps, c.err
	if err != nil {
		return nil, nil, err
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
		for _, one := range optional {
			var name string
			for name = range one.Programs {
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

// specWith is spec with only the named programs (copies, as the
// collection loader may change them), without copying the others: the
// object holds every hook's programs, and a whole copy per group (about
// fifteen per start) cost ~25 ms of CPU and their garbage.
func specWith(spec *ebpf.CollectionSpec, names ...string) *ebpf.CollectionSpec {
	progs := spec.Programs
	spec.Programs = nil
	out := spec.Copy()
	spec.Programs = progs
	out.Programs = make(map[string]*ebpf.ProgramSpec, len(names))
	for _, name := range names {
		if p := progs[name]; p != nil {
			out.Programs[name] = p.Copy()
		}
	}
	return out
}

// bigMapBytes: a map whose creation pre-allocates at least this much
// (hash and LRU hash maps allocate every element up front) is created on
// its own goroutine, beside the others.
const bigMapBytes = 1 << 20

// createMaps creates the maps of spec (which has no programs). Creating
// the maps took ~85 ms of CPU on 6.18, most of it the kernel
// pre-allocating the big hash maps (group_accs alone ~55 %), and nothing
// else can run before them: the big ones are created concurrently with
// the rest (sequential: all in one collection, the path before).
func createMaps(spec *ebpf.CollectionSpec, cache *btf.Cache, sequential bool) (*ebpf.Collection, error) {
	var big []string
	if !sequential {
		for name, m := range spec.Maps {
			if preallocBytes(m) >= bigMapBytes {
				big = append(big, name)
			}
		}
	}
	bigMaps := make([]*ebpf.Map, len(big))
	bigErrs := make([]error, len(big))
	var wg sync.WaitGroup
	for i, name := range big {
		m := spec.Maps[name]
		delete(spec.Maps, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			bigMaps[i], bigErrs[i] = ebpf.NewMapWithOptions(m, ebpf.MapOptions{})
		}()
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: cache})
	wg.Wait()
	for i, e := range bigErrs {
		if e != nil && err == nil {
			err = fmt.Errorf("map %s: %w", big[i], e)
		}
	}
	if err != nil {
		if coll != nil {
			coll.Close()
		}
		for _, m := range bigMaps {
			if m != nil {
				m.Close()
			}
		}
		return nil, fmt.Errorf("create sensor maps: %w", err)
	}
	for i, name := range big {
		coll.Maps[name] = bigMaps[i]
	}
	return coll, nil
}

// preallocBytes is what creating m allocates up front, roughly: every
// element of a pre-allocated hash map, every value of an array.
func preallocBytes(m *ebpf.MapSpec) uint64 {
	n := uint64(m.MaxEntries) * uint64(m.KeySize+m.ValueSize)
	switch m.Type {
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash:
		if m.Flags&unix.BPF_F_NO_PREALLOC != 0 {
			return 0
		}
		return n
	case ebpf.Array:
		return uint64(m.MaxEntries) * uint64(m.ValueSize)
	}
	return 0
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
	s.calibrateAttachFdsOrSay()
	s.prefault(prefaultProg, prefaultErr)
}

// specResult is the object's spec, parsed beside the probes.
type specResult struct {
	spec *ebpf.CollectionSpec
	err  error
}

// parseSpec parses an object's spec on its own goroutine.
func parseSpec(load func() (*ebpf.CollectionSpec, error)) <-chan specResult {
	parsed := make(chan specResult, 1)
	go func() {
		spec, err := load()
		parsed <- specResult{spec, err}
	}()
	return parsed
}

// preloaded is what Preload started, for the next start to take.
var preloaded struct {
	sync.Mutex
	kernel *kernelBTF
	spec   <-chan specResult // the bpf_loop walk's object
}

// Preload starts the parts of a start that depend neither on its Config nor
// on the kernel's answers to a load: parsing the kernel's BTF and the
// object's spec (~100 ms of CPU together on 6.18, the longest step before
// the first map can be created), each on its own goroutine. A caller that
// will call New soon (run) calls Preload first thing, so they overlap its
// own start (rule parsing, outputs) instead of following it. The next start
// takes them; later ones parse their own. Preload loads nothing into the
// kernel: with --pin, the first load waits for the take-over of a pinned
// sensor. The object parsed is the bpf_loop walk's (every kernel from 5.17);
// a start that picks the bounded walk parses its own.
func Preload() {
	if os.Geteuid() != 0 {
		return // New refuses; nothing to win
	}
	preloaded.Lock()
	defer preloaded.Unlock()
	if preloaded.kernel != nil {
		return
	}
	preloaded.kernel = parseKernelBTF()
	preloaded.spec = parseSpec(loadSentry)
}

// takePreloaded hands over what Preload started (nils without Preload).
func takePreloaded() (*kernelBTF, <-chan specResult) {
	preloaded.Lock()
	defer preloaded.Unlock()
	k, s := preloaded.kernel, preloaded.spec
	preloaded.kernel, preloaded.spec = nil, nil
	return k, s
}

// kernelBTF is the kernel's BTF, parsed once per start on its own
// goroutine (~40-60 ms of CPU on 6.18) and shared by everything the start
// loads through cache. Nothing keeps it after the start: idle memory.
type kernelBTF struct {
	done  chan struct{}
	cache *btf.Cache
	types *btf.Spec
}

func parseKernelBTF() *kernelBTF {
	k := &kernelBTF{done: make(chan struct{}), cache: btf.NewCache()}
	go func() {
		defer close(k.done)
		k.types, _ = k.cache.Kernel() // nil without BTF: each user says what that costs
	}()
	return k
}

// parsed waits for the parse and gives the cache holding it.
func (k *kernelBTF) parsed() *btf.Cache {
	<-k.done
	return k.cache
}

// spec waits for the parse: nil when the kernel has no BTF.
func (k *kernelBTF) spec() *btf.Spec {
	<-k.done
	return k.types
}

// startPhases times the steps of a start for the debug log: wall time,
// and the process's CPU (user + system, all threads: the verifier runs in
// the bpf() calls), which a busy host does not inflate.
type startPhases struct {
	last    time.Time
	lastCPU time.Duration
	names   []string
	took    []time.Duration
	cpu     []time.Duration
}

func newStartPhases() *startPhases { return &startPhases{last: time.Now(), lastCPU: processCPU()} }

// mark ends the step named name.
func (p *startPhases) mark(name string) {
	now, cpu := time.Now(), processCPU()
	p.names, p.took, p.cpu = append(p.names, name), append(p.took, now.Sub(p.last)), append(p.cpu, cpu-p.lastCPU)
	p.last, p.lastCPU = now, cpu
}

func (p *startPhases) attrs() []any {
	// The process's CPU before New: the runtime's and the caller's start.
	a := []any{"before_cpu", (p.lastCPU - sum(p.cpu)).Round(time.Millisecond)}
	var cpu time.Duration
	for i, n := range p.names {
		a = append(a, n, p.took[i].Round(time.Millisecond))
		cpu += p.cpu[i]
	}
	for i, n := range p.names {
		a = append(a, n+"_cpu", p.cpu[i].Round(time.Millisecond))
	}
	return append(a, "cpu", cpu.Round(time.Millisecond))
}

func sum(d []time.Duration) time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t
}

// processCPU is the process's user + system time so far (0 if unknown).
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
