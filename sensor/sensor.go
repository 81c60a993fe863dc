package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// Mode says whether block verdicts are carried out.
type Mode uint32

const (
	ModeMonitor Mode = Mode(sentrySentryModeSENTRY_MODE_MONITOR)
	ModeEnforce Mode = Mode(sentrySentryModeSENTRY_MODE_ENFORCE)
)

// DefaultRingBufferSize holds the records of ~1,000 small loads or one
// 100,000-instruction program; bigger programs are read from the loader's
// memory when their chunks do not fit (recover.go). The ring is mapped
// twice into the agent and counts twice in its RSS.
const DefaultRingBufferSize = 4 << 20

// DefaultLoaderRate is Config.LoaderRate's default: 4 Mi instructions (32
// MiB of ring buffer) per loader per second, four of the biggest loads the
// kernel accepts.
const DefaultLoaderRate = 4 << 20

// DefaultMemoryBudget is Config.MemoryBudget's default.
const DefaultMemoryBudget = 256 << 20

// Config chooses the sensor's hook, enforcer and tables.
type Config struct {
	Hook     Hook     // "" picks the strongest available (lsm-prog-load, tracepoint, tp_btf)
	Enforcer Enforcer // "" means deny on an LSM hook, else kill
	Walk     Walk     // "" means bpf_loop where the kernel has it, else bounded
	Mode     Mode
	// Rules is the kernel rule table (rules.Compile(set).Kernel()); nil
	// means an empty table (capture and report only).
	Rules *kernel.Rules
	// BlockUnreadable blocks loads whose instructions could not be read
	// from the loader's memory (a way to hide them from the sensor: pages
	// not yet faulted in, e.g. served by userfaultfd, fail the syscall
	// hooks' non-faulting read and are then copied by the kernel).
	// Reported with RuleID RuleUnreadable. `run` sets it by default.
	BlockUnreadable bool
	// OnError decides, in enforce mode, a load the kernel side cannot
	// judge (no scratch memory, no table): block (the default, "") or
	// allow. Counted as a loss with its reason either way.
	OnError OnError
	// RingBufferSize in bytes, a power of two ≥ page size; 0 means default.
	RingBufferSize int
	// MemoryBudget bounds the bytes of instructions the agent holds for
	// loads being reassembled and events not yet taken from Events
	// (default DefaultMemoryBudget; negative: no bound). A load beyond it
	// is reported without its instructions and counted
	// (reassembly_budget); the heap does not grow with a flood.
	MemoryBudget int64
	// LoaderRate bounds the instructions one loader (tgid) has copied into
	// the ring buffer per LoaderWindow (default DefaultLoaderRate per
	// second; negative: no bound). A load over it is judged in full in the
	// kernel but reported without instructions (Event.RateLimited) and
	// counted (rate_limited): one loader's flood cannot take the ring from
	// the others. The first load of a window is always captured.
	LoaderRate   int64
	LoaderWindow time.Duration
	// EventBuffer is the capacity of the Events channel (default 1024).
	EventBuffer int
	// PinPath, when set, pins links and maps there so that enforcement
	// survives the agent (Close then leaves them attached).
	PinPath string
	// ExpireAfter finishes a load with no exit record after this long
	// (default 60 s; a 1M-instruction verification takes ~0.5 s).
	ExpireAfter time.Duration
	// sweepEvery: how often the reader expires loads and wakes to sweep
	// even when no record comes (default 1 s). Tests set it to hours to
	// see that records never wait for it.
	sweepEvery time.Duration
	Logger     *slog.Logger
	// Lock turns on lock mode (allowlist.go): in enforce mode a load whose
	// fingerprint is not on the allowlist is blocked. LockCgroup, when
	// non-zero, limits it to loaders in that cgroup v2.
	Lock       bool
	LockCgroup uint64
	// Allowlist is installed before the hooks attach when Lock is set.
	Allowlist []uint64
	// GuardSignals: on LSM kernels in enforce mode, signals that would stop
	// or end the agent from any process other than the agent, its parent
	// and the init process are refused (EPERM; selfprotect.h). Off, and on
	// kernels without the BPF LSM, they are only reported (AccessAttempts).
	GuardSignals bool

	// IoctlHook says when the programs on ioctl are attached: always, or
	// on demand (while a perf event fd may be used for an attach); auto
	// (or empty, the default) is on demand where OnDemandIoctlSupport says
	// the kernel can, always elsewhere.
	IoctlHook IoctlHook

	// staged: New returns once the sensor judges loads (NewStaged).
	staged bool
	// sequentialStart loads the programs one after the other and the
	// 32-bit judge even where kprobes cannot attach: the start before
	// startup.go, kept as BenchmarkSensorStart's same-run baseline.
	sequentialStart bool
	// ioctlPairToo also loads the old ioctl exit program (the one paired
	// with an entry program on every ioctl), unattached: the same-run
	// baseline of BenchmarkUnrelatedIoctl.
	ioctlPairToo bool
	// ioctlGateOnly limits the processes the on-demand ioctl gate follows
	// (tests on a shared host; ioctlgate.go).
	ioctlGateOnly func(pid uint32) bool
	// lsmReattach: an LSM program can be attached again once detached
	// (kernelprobe.LSMReattach), so the lsm/file_ioctl gate can go on and
	// off with the on-demand ioctl hook.
	lsmReattach bool
}

// OnError is the policy for loads that cannot be judged.
type OnError string

const (
	OnErrorBlock OnError = "block"
	OnErrorAllow OnError = "allow"
)

// RuleUnjudged is the RuleID of a load the kernel side could not judge
// (Event.Unjudged says why), blocked or allowed by Config.OnError.
const RuleUnjudged = "unjudged-load"

// RuleUnreadable is the RuleID of a load blocked because its instructions
// could not be read from the loader's memory (Config.BlockUnreadable).
const RuleUnreadable = "unreadable-instructions"

// RuleGroupRefsOver is the RuleID of a load blocked (Config.BlockUnreadable)
// because it references more maps than the group judge follows (64): its
// instructions were read, but its group could not be judged.
const RuleGroupRefsOver = "group-map-references-over-cap"

// Sentinel errors callers branch on.
var (
	ErrNotRoot         = errors.New("the sensor needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)")
	ErrEnforcerRefused = errors.New("enforcer not available on this kernel")
	ErrNoHook          = errors.New("no usable hook on this kernel")
)

// Sensor owns the kernel programs, maps and links.
type Sensor struct {
	cfg  Config
	hook Hook
	// kprobeTarget is the symbol the kprobe hook attached to.
	kprobeTarget string
	compat       string // how 32-bit bpf() calls are covered (Compat)
	signals      string // how signals to the agent are guarded (Signals)
	coll         *ebpf.Collection
	kattr        uint32 // sentry_config.kattr, from the kernel's BTF at start
	links        []link.Link
	reader       *ringbuf.Reader
	// wait parks the reader on the netpoller (ringwait.go); nil: the
	// reader waits in ringbuf.Reader.
	wait      *ringWait
	delivered deliveredWaiters // Delivered's callers (delivered.go)
	events    chan *Event
	attempts  chan AccessAttempt
	writes    chan *ProgArrayWrite
	groupNote string // what loader groups cannot do here (GroupNote)
	// lastGroupSweep: when the reader last dropped finished groups.
	lastGroupSweep time.Time
	tokenEvents    chan *TokenCreated // sensor/token.go
	mapCreates     chan *MapCreated   // sensor/token.go
	log            *slog.Logger

	mu             sync.Mutex
	generation     uint32
	slots          map[uint32][]string // rule ids by table slot, per generation
	asm            *assembler
	badRecs        uint64
	tokenDrops     uint64 // TokenEvents full
	mapCreateDrops uint64 // MapCreates full
	userLost       map[string]uint64
	retries        retries // touched by the reader goroutine only

	cancel      context.CancelFunc
	done        chan struct{}
	closing     bool
	closed      bool
	self        Identity // the agent's, written into the config map
	rulesActive uint32   // the kernel rule table in use (ruletable.go)
	tableWait   time.Duration
	integ       integrity
	finalLosses Losses  // counters as they were when Close detached
	queueSizes  []int64 // instruction bytes of the events in the channel, oldest first
	queuedBytes int64
	prefaulted  int // ring pages written through at start (prefault.go)

	// Attach events (attach_events.go): pairing by id, the attach table's
	// rule ids, and the programs that report them (best-effort).
	attaches      chan *AttachEvent
	attachPending map[uint64]*AttachEvent
	attachOrphans uint64
	attachRuleIDs []string
	undoWG        sync.WaitGroup // detaches of blocked attaches (attach_undo.go) in flight
	attachNote    string
	attachColls   []*ebpf.Collection
	attachLinks   []link.Link
	attachProgs   []attachProgram // what attachLinks[i] attaches (benchmarks toggle the ioctl hook)
	armMu         sync.Mutex
	armable       map[string]*armable // attach programs attached only while needed (the ioctl entry)
	armMode       Mode                // the mode armable programs are attached for
	ioctlOpen     bool                // the on-demand ioctl gate is open (armable programs on ioctl attach)
	perfViaChild  bool                // armable tracepoints open their perf events in a child (sensor/perfopen.go); under armMu
	perfHelpers   perfHelpers         // those children, whose perf_event_open reports are the agent's own
	ioctlGate     *ioctlGate          // nil: the ioctl hook is always on (IoctlHookAlways)
	allowSpec     *ebpf.MapSpec       // the allowlist's inner map (allowlist.go)
	allowN        int

	judging  time.Time     // JudgingSince
	started  chan struct{} // closed when finishStart is done (Ready)
	startErr error
}

// New loads the kernel programs, fills the tables and attaches. Events
// start flowing on Events() immediately. It returns when the whole start is
// done; NewStaged returns as soon as loads are judged.
func New(cfg Config) (*Sensor, error) {
	s, err := newSensorPinFallback(cfg)
	if err != nil || cfg.staged {
		return s, err
	}
	if err := s.Ready(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newSensorPinFallback(cfg Config) (*Sensor, error) {
	s, err := newSensor(cfg, false)
	if err != nil && cfg.PinPath != "" && errors.Is(err, ebpf.ErrNotSupported) && (cfg.Hook == "" || cfg.Hook == HookLSMBpf) {
		// Before 5.15 tracepoint and kprobe attachments are perf events,
		// which cannot be pinned; tp_btf links can. The syscall side of
		// the plan moves there (it costs every syscall: PERFORMANCE.md).
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("--pin: this kernel cannot pin tracepoint or kprobe attachments; using tp_btf instead", "err", err)
		return newSensor(cfg, true)
	}
	if err != nil && cfg.PinPath != "" && errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("%w (the %s hook cannot be pinned on this kernel: perf-event links before 5.15; --hook tp_btf or auto can)", err, cfg.Hook)
	}
	return s, err
}

// newSensor is New; btfOnly puts the syscall side on tp_btf (pinnable).
func newSensor(cfg Config, btfOnly bool) (*Sensor, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if cfg.RingBufferSize == 0 {
		cfg.RingBufferSize = DefaultRingBufferSize
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = 1024
	}
	switch {
	case cfg.MemoryBudget == 0:
		cfg.MemoryBudget = DefaultMemoryBudget
	case cfg.MemoryBudget < 0:
		cfg.MemoryBudget = 0 // no bound
	}
	switch {
	case cfg.LoaderRate == 0:
		cfg.LoaderRate = DefaultLoaderRate
	case cfg.LoaderRate < 0 || cfg.LoaderRate > math.MaxUint32:
		cfg.LoaderRate = 0 // no bound
	}
	if cfg.LoaderWindow <= 0 {
		cfg.LoaderWindow = time.Second
	}
	if cfg.sweepEvery == 0 {
		cfg.sweepEvery = time.Second
	}
	if cfg.ExpireAfter == 0 {
		cfg.ExpireAfter = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.IoctlHook {
	case "", IoctlHookAuto:
		cfg.IoctlHook = ResolveIoctlHook(cfg.IoctlHook)
	case IoctlHookAlways:
	case IoctlHookOnDemand:
		if err := OnDemandIoctlSupport(); err != nil {
			return nil, fmt.Errorf("%w: --ioctl-hook %s: %v", ErrNoHook, IoctlHookOnDemand, err)
		}
	default:
		return nil, fmt.Errorf("ioctl hook %q: want %s, %s or %s", cfg.IoctlHook, IoctlHookAuto, IoctlHookAlways, IoctlHookOnDemand)
	}
	switch cfg.OnError {
	case "", OnErrorBlock, OnErrorAllow:
	default:
		return nil, fmt.Errorf("on-error %q: want %s or %s", cfg.OnError, OnErrorBlock, OnErrorAllow)
	}
	self := Identity{TGID: uint32(os.Getpid())}
	if cfg.PinPath != "" {
		// Before the first load (the feature probes below included).
		var err error
		if self, err = takeOver(cfg.PinPath, self.TGID, cfg.Logger); err != nil {
			return nil, err
		}
	}
	phases := newStartPhases()
	// Started at once (or by Preload), each on its own goroutine, and
	// awaited where first needed: the kernel's BTF (the LSM probes, the
	// compat plan, every collection's relocations, the config's kattr) and
	// the object's spec below.
	kernel, preSpec := takePreloaded()
	if kernel == nil {
		kernel = parseKernelBTF()
	}
	loopErr := kernelprobe.Helper(asm.FnLoop)
	switch cfg.Walk {
	case "":
		cfg.Walk = WalkLoop
		if loopErr != nil {
			cfg.Walk = WalkBounded
		}
	case WalkLoop:
		if loopErr != nil {
			return nil, fmt.Errorf("%w: walk %s needs the bpf_loop helper (Linux 5.17+): %v", ErrNoHook, WalkLoop, loopErr)
		}
	case WalkBounded:
	default:
		return nil, fmt.Errorf("walk %q: want %s or %s", cfg.Walk, WalkLoop, WalkBounded)
	}
	load := loadSentry
	if cfg.Walk == WalkBounded {
		load = loadSentryLegacy
	}
	parsed := preSpec
	if parsed == nil || cfg.Walk != WalkLoop {
		parsed = parseSpec(load)
	}
	hook, exitHook, err := chooseHook(cfg.Hook, cfg.Enforcer, cfg.Walk, btfOnly, kernel.parsed, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if cfg.Enforcer == "" {
		cfg.Enforcer = EnforcerKill
		if hook.IsLSM() {
			cfg.Enforcer = EnforcerDeny
		}
	}
	if cfg.IoctlHook == IoctlHookOnDemand && cfg.Enforcer == EnforcerDeny {
		// the lsm/file_ioctl gate goes on and off with the hook only where
		// an LSM program can be attached again once detached (5.13)
		if err := kernelprobe.LSMReattach(); err != nil {
			cfg.Logger.Info("ioctl hook: the lsm/file_ioctl gate stays attached while enforcing", "reason", err)
		} else {
			cfg.lsmReattach = true
		}
	}
	switch cfg.Enforcer {
	case EnforcerCorrupt:
		if hook == HookKprobe {
			return nil, fmt.Errorf("%w: --enforcer corrupt is implemented for the tracepoint and tp_btf hooks only", ErrEnforcerRefused)
		}
		if hook.IsLSM() {
			return nil, fmt.Errorf("%w: --enforcer corrupt rewrites the loader's memory from a syscall hook; the %s hook denies instead (--enforcer deny)", ErrEnforcerRefused, hook)
		}
		if err := CorruptAvailable(); err != nil {
			return nil, err
		}
	case EnforcerKill:
		if hook.IsLSM() {
			return nil, fmt.Errorf("%w: the %s hook enforces by denying the load (--enforcer deny); kill needs --hook tracepoint or tp_btf", ErrEnforcerRefused, hook)
		}
	case EnforcerDeny:
		if !hook.IsLSM() {
			return nil, fmt.Errorf("%w: --enforcer deny needs an LSM hook (--hook lsm-prog-load or lsm-bpf), not %s", ErrEnforcerRefused, hook)
		}
	default:
		return nil, fmt.Errorf("enforcer %q: want deny, kill or corrupt", cfg.Enforcer)
	}

	phases.mark("probe")
	sr := <-parsed
	if sr.err != nil {
		return nil, sr.err
	}
	spec := sr.spec
	spec.Maps[sentryMapEvents].MaxEntries = uint32(cfg.RingBufferSize)
	enter, exit, gate := programNames(hook, exitHook, cfg.Enforcer, cfg.Walk)
	// The kernel's BTF, parsed once for the compat plan and every
	// collection's relocations, and dropped after.
	phases.mark("spec")
	kspec := kernel.spec()
	kernelprobe.IA32Entry(kspec)
	cp := planCompat(hook, exitHook, gate != "")
	compatNote := ""
	if cp.enter != "" || cp.exit != "" {
		if err := kernelprobe.KprobesAttachable(); err != nil && !cfg.sequentialStart {
			// The 32-bit judge costs the verifier as much as the enter
			// program; not verified where it could never attach.
			compatNote = fmt.Sprintf("not seen: kprobe __ia32_sys_bpf: %v", err)
			cfg.Logger.Debug("32-bit bpf() calls will not be seen", "err", err)
			cp.enter, cp.exit = "", ""
		}
	}
	groupEnter := groupProgram(exitHook)
	// Loaded on its own after the collection: a kernel that refuses it
	// must not stop the sensor.
	prefaultSpec := spec.Programs[sentryProgSentryPrefault]
	guards := guardPrograms(spec, hook.IsLSM())
	attachSpec := attachSpecOf(spec, attachPlan(hook, cfg))
	for name := range spec.Programs {
		keep := name == enter || name == exit || name == gate || guards[name] ||
			hook == HookKprobe && name == sentryProgSentryEnterKprobeDirect ||
			hook == HookLSMProgLoad && name == sentryProgSentryLsmTokenCreate ||
			hook.IsLSM() && name == sentryProgSentryLsmProgFd ||
			name == cp.enter || name == cp.exit || name == groupEnter
		if !keep {
			delete(spec.Programs, name)
		}
	}
	if spec.Programs[enter] == nil {
		return nil, fmt.Errorf("%w: no %s program for the %s hook with the %s walk", ErrNoHook, enter, hook, cfg.Walk)
	}
	// The judges, the 32-bit judge and the rest verified concurrently
	// (startup.go); the attach-monitoring programs alongside, below.
	judges := []string{enter, sentryProgSentryEnterKprobeDirect}
	var rest []string
	for name := range spec.Programs {
		if name != enter && name != sentryProgSentryEnterKprobeDirect && name != cp.enter {
			rest = append(rest, name)
		}
	}
	phases.mark("kernel-btf")
	// /proc/kallsyms for the attach programs (~40-50 ms of CPU, most in
	// the kernel), read beside the verifier, which runs the judge on one
	// CPU for most of the verify phase, rather than beside the parses
	// above, which it delayed.
	attachScan := startAttachCfgScan()
	coll, attachProgs, err := loadConcurrently(spec, programGroups{judges, {cp.enter}, rest}, attachSpec, kernel.cache, cfg.sequentialStart)
	if err != nil {
		return nil, err
	}
	// Before attaching, so that the sensor does not report its own load.
	phases.mark("verify")
	prefaultProg, prefaultErr := loadPrefault(prefaultSpec, spec.Maps[sentryMapEvents], coll.Maps[sentryMapEvents])
	s := &Sensor{
		cfg: cfg, hook: hook, coll: coll, log: cfg.Logger, self: self, kattr: kattrConfig(kspec),
		events:   make(chan *Event, cfg.EventBuffer),
		attempts: make(chan AccessAttempt, 64),
		attaches: make(chan *AttachEvent, cfg.EventBuffer),

		attachPending: make(map[uint64]*AttachEvent),
		writes:        make(chan *ProgArrayWrite, cfg.EventBuffer),
		asm:           newAssembler(),
		userLost:      make(map[string]uint64),
		slots:         make(map[uint32][]string),
		done:          make(chan struct{}),
		started:       make(chan struct{}),
	}
	s.allowSpec = spec.Maps[sentryMapAllowlist].InnerMap.Copy()
	s.asm.monoToWall = monoToWall()
	s.asm.budget, s.asm.queued = cfg.MemoryBudget, s.queued
	s.asm.enrich = newEnricher()
	s.asm.readMem = readProcessMemory
	s.asm.log = cfg.Logger
	s.asm.tokens = newTokenBook()
	s.tokenEvents = make(chan *TokenCreated, 256)
	s.mapCreates = make(chan *MapCreated, 256)
	fail := func(err error) (*Sensor, error) {
		attachProgs.close()
		if prefaultProg != nil {
			prefaultProg.Close()
		}
		s.teardown(false)
		return nil, err
	}
	// What the judges read is frozen: only the sensor's programs write it,
	// copying the agent's staged writes (selfprotect.h).
	for _, name := range []string{sentryMapConfig, sentryMapRules} {
		if err := coll.Maps[name].Freeze(); err != nil {
			return fail(fmt.Errorf("freeze map %s: %w", name, err))
		}
	}
	if cfg.Lock {
		if err := s.SetAllowlist(cfg.Allowlist); err != nil {
			return fail(err)
		}
	}
	s.reader, err = ringbuf.NewReader(coll.Maps[sentryMapEvents])
	if err != nil {
		return fail(fmt.Errorf("open ring buffer: %w", err))
	}
	if s.wait, err = newRingWait(coll.Maps[sentryMapEvents]); err != nil {
		s.log.Debug("ring reader waits in epoll_wait", "err", err)
		s.wait = nil
	}
	phases.mark("tables")
	s.attachNote = s.startAttachPrograms(attachProgs, attachScan)
	// Exit first: an enter without its exit would leave an inflight entry.
	// The gate only refuses what the enter program marked, so its order
	// does not matter.
	order := []string{exit, enter}
	if gate != "" {
		order = []string{exit, gate, enter}
	}
	for _, name := range order {
		h := hook
		switch {
		case name == exit:
			h = exitHook
		case name == enter && gate != "":
			h = exitHook // the gate's judge is on the syscall hook
		}
		var l link.Link
		var err error
		if h == HookKprobe {
			l, s.kprobeTarget, err = attachKprobe(coll.Programs[name], coll.Programs[sentryProgSentryEnterKprobeDirect])
		} else {
			l, err = attach(h, coll.Programs[name], name == exit)
		}
		if err != nil {
			return fail(fmt.Errorf("attach %s (%s): %w", name, hook, err))
		}
		s.links = append(s.links, l)
	}
	if err := s.attachGroup(exitHook); err != nil {
		return fail(err)
	}
	if hook == HookLSMProgLoad {
		// BPF_TOKEN_CREATE, which no sys_enter program sees here (6.9+,
		// as the bpf_prog_load hook).
		l, err := attach(hook, coll.Programs[sentryProgSentryLsmTokenCreate], false)
		if err != nil {
			return fail(fmt.Errorf("attach %s: %w", sentryProgSentryLsmTokenCreate, err))
		}
		s.links = append(s.links, l)
	}
	if p := coll.Programs[sentryProgSentryLsmProgFd]; p != nil {
		// The outcome of loads from inside the kernel (bpf_sys_bpf), which
		// the outer call's sys_exit does not give: the new program's id
		// when the kernel gives it an fd. Not in the 5.10 object, whose
		// kernel has no syscall programs.
		l, err := attach(hook, p, false)
		if err != nil {
			return fail(fmt.Errorf("attach %s: %w", sentryProgSentryLsmProgFd, err))
		}
		s.links = append(s.links, l)
	}
	s.compat = cp.note
	if compatNote != "" {
		s.compat = compatNote
	}
	if cp.enter != "" || cp.exit != "" {
		// Best-effort, like the kernel's ia32 support itself: the
		// sensor runs without them and says what it does not see.
		links, err := attachCompat(coll, cp)
		if err != nil {
			// doctor says this once; every sensor start repeating it
			// (tests start hundreds) is noise.
			s.compat = fmt.Sprintf("not seen: %v", err)
			cfg.Logger.Debug("32-bit bpf() calls will not be seen", "err", err)
		}
		s.links = append(s.links, links...)
	}
	if hook.IsLSM() {
		if err := s.attachGuards(); err != nil {
			return fail(err)
		}
	} else {
		s.signals = s.attachSignalWatch()
	}
	// Staged writes are committed by the hooks just attached: first the
	// agent's identity, then the rules and config only it may commit.
	phases.mark("attach")
	if err := s.learnSelf(); err != nil {
		return fail(err)
	}
	if err := s.SetRules(cfg.Rules); err != nil {
		return fail(err)
	}
	s.cfg.Rules = nil // in the kernel, and hashed: not kept (688 KB)
	if err := s.recordOwnIDs(); err != nil {
		return fail(err)
	}
	if cfg.PinPath != "" {
		if err := s.pin(); err != nil {
			return fail(err)
		}
	}
	// Judging: the enforcing hook is attached, the agent known, the rules
	// (and the allowlist) in place, the sentry's own ids guarded.
	s.judging = time.Now()
	phases.mark("rules")
	cfg.Logger.Debug("sensor judging loads", phases.attrs()...)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.read(ctx)
	go s.finishStart(prefaultProg, prefaultErr)
	return s, nil
}

// Compat says how 32-bit processes' bpf() calls are covered, or why not.
func (s *Sensor) Compat() string { return s.compat }

// KprobeTarget is the symbol the kprobe hook attached to ("" for other hooks).
func (s *Sensor) KprobeTarget() string { return s.kprobeTarget }

// Hook is the hook in use.
func (s *Sensor) Hook() Hook { return s.hook }

// Walk is how the kernel programs walk the instructions.
func (s *Sensor) Walk() Walk { return s.cfg.Walk }

// Enforcer is the enforcer in use.
func (s *Sensor) Enforcer() Enforcer { return s.cfg.Enforcer }

// Events delivers one Event per BPF_PROG_LOAD; closed after Close.
func (s *Sensor) Events() <-chan *Event { return s.events }

// Close detaches (unless pinned), drains what is already in the ring
// buffer into Events, and frees everything. Events is closed afterwards.
func (s *Sensor) Close() error {
	if s.closed || s.closing {
		return nil
	}
	<-s.started
	s.closing = true
	// Detach first so that no new load starts; then let the reader drain.
	keep := s.cfg.PinPath != ""
	if keep {
		// The pinned programs outlive this agent: they must not spare
		// whatever gets its pid next (the start time already says so;
		// clearing makes it explicit).
		s.self = Identity{}
		if err := s.writeConfig(); err != nil {
			s.log.Warn("clear the agent's identity from the pinned config", "err", err)
		}
	}
	for _, l := range append(s.links, s.attachLinks...) {
		l.Close()
	}
	s.links, s.attachLinks = nil, nil
	if s.ioctlGate != nil {
		// after the perf_event_open programs are off: lets go every
		// caller they stopped
		s.ioctlGate.close()
	}
	s.disarmAll()
	time.Sleep(50 * time.Millisecond)
	s.drain()
	// The wait first: its close returns once no wait is checking the
	// ring's positions, which the reader's close unmaps.
	s.closeWait()
	s.reader.Close()
	s.cancel()
	<-s.done
	s.finalLosses, _ = s.Losses()
	s.closed = true
	s.teardown(keep)
	return nil
}

func (s *Sensor) teardown(keepPins bool) {
	for _, l := range s.links {
		l.Close()
	}
	if s.reader != nil && !s.closed {
		s.closeWait()
		s.reader.Close()
	}
	if !keepPins && s.cfg.PinPath != "" {
		os.RemoveAll(s.cfg.PinPath)
	}
	for _, l := range s.attachLinks {
		l.Close()
	}
	if s.ioctlGate != nil {
		s.ioctlGate.close()
	}
	s.disarmAll()
	for _, c := range s.attachColls {
		c.Close()
	}
	s.coll.Close()
}
