package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// Hook is where the kernel programs attach.
type Hook string

const (
	// HookTracepoint: syscalls:sys_enter_bpf / sys_exit_bpf, fires only for bpf().
	HookTracepoint Hook = "tracepoint"
	// HookBTF: tp_btf/sys_enter and sys_exit, fires for every syscall.
	HookBTF Hook = "tp_btf"
	// HookLSMProgLoad: lsm/bpf_prog_load (kernels >= 6.9, BPF LSM active)
	// judges the kernel's own copy of the instructions and can deny the
	// load; the syscall's exit is still seen by the sys_exit tracepoint
	// (tp_btf/sys_exit without tracefs).
	HookLSMProgLoad Hook = "lsm-prog-load"
	// HookLSMBpf: sleepable lsm.s/bpf (BPF LSM active, no bpf_prog_load
	// hook: 6.1) copies the instructions from the loader's memory and can
	// deny; a loader rewriting them before the kernel's own copy is caught
	// afterwards by the tag check (Event.JudgedCopyDiffers).
	HookLSMBpf Hook = "lsm-bpf"
	// HookKprobe: the seed's kprobe on the bpf syscall (KprobeTargets, the
	// first that attaches), with the sys_exit tracepoint (or tp_btf) for
	// the result. Only when asked: it sees what the tracepoint sees.
	HookKprobe Hook = "kprobe"
)

// KprobeTargets are tried in order by the kprobe hook. __x64_sys_bpf takes
// the user's pt_regs (syscall wrappers); the others take the arguments
// directly where they exist and are not inlined (__sys_bpf is inlined on
// 5.10 and takes a bpfptr_t from 5.14, so it is not a target).
var KprobeTargets = []string{"__x64_sys_bpf", "__se_sys_bpf", "__do_sys_bpf"}

// Walk is how the kernel programs loop over the instructions.
type Walk string

const (
	// WalkLoop uses the bpf_loop helper (5.17+): the verifier checks each
	// loop body once, whatever the trip count.
	WalkLoop Walk = "bpf_loop"
	// WalkBounded is for kernels without bpf_loop (5.10): bounded loops that
	// call global functions, each verified once (per 512-instruction chunk,
	// per rule, per path component). Same records, facts and verdicts; the
	// sleepable lsm.s/bpf program is not available (5.10 gives sleepable
	// programs neither ring buffers nor per-CPU maps), so HookLSMBpf judges
	// at the sys_enter_bpf tracepoint and a non-sleepable lsm/bpf gate
	// refuses the blocked load; HookLSMProgLoad needs 6.9 and so bpf_loop.
	WalkBounded Walk = "bounded"
)

// IsLSM reports whether the hook can refuse a load (EnforcerDeny).
func (h Hook) IsLSM() bool { return h == HookLSMProgLoad || h == HookLSMBpf }

// Enforcer is how a block verdict is carried out.
type Enforcer string

const (
	// EnforcerKill sends SIGKILL to the loader from the sys_enter hook.
	EnforcerKill Enforcer = "kill"
	// EnforcerCorrupt rewrites instruction 0 to BPF_EXIT in the loader's
	// memory (bpf_probe_write_user): racy, and refused under lockdown.
	EnforcerCorrupt Enforcer = "corrupt"
	// EnforcerDeny makes an LSM hook return -EPERM: the load fails before
	// the verifier and the program never exists.
	EnforcerDeny Enforcer = "deny"
)

// Mode says whether block verdicts are carried out.
type Mode uint32

const (
	ModeMonitor Mode = Mode(sentrySentryModeSENTRY_MODE_MONITOR)
	ModeEnforce Mode = Mode(sentrySentryModeSENTRY_MODE_ENFORCE)
)

// DefaultRingBufferSize holds a few 1,000,000-instruction loads (8 MiB each).
const DefaultRingBufferSize = 64 << 20

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
	// EventBuffer is the capacity of the Events channel (default 1024).
	EventBuffer int
	// PinPath, when set, pins links and maps there so that enforcement
	// survives the agent (Close then leaves them attached).
	PinPath string
	// ExpireAfter finishes a load with no exit record after this long
	// (default 60 s; a 1M-instruction verification takes ~0.5 s).
	ExpireAfter time.Duration
	Logger      *slog.Logger
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
	coll         *ebpf.Collection
	links        []link.Link
	reader       *ringbuf.Reader
	events       chan *Event
	tokenEvents  chan *TokenCreated // sensor/token.go
	log          *slog.Logger

	mu         sync.Mutex
	generation uint32
	slots      map[uint32][]string // rule ids by table slot, per generation
	asm        *assembler
	badRecs    uint64
	tokenDrops uint64 // TokenEvents full
	userLost   map[string]uint64
	retries    retries // touched by the reader goroutine only

	cancel      context.CancelFunc
	done        chan struct{}
	closing     bool
	closed      bool
	self        Identity // the agent's, written into the config map
	integ       integrity
	finalLosses Losses  // counters as they were when Close detached
	queueSizes  []int64 // instruction bytes of the events in the channel, oldest first
	queuedBytes int64
	prefaulted  int // ring pages written through at start (prefault.go)
}

// New loads the kernel programs, fills the tables and attaches. Events
// start flowing on Events() immediately.
func New(cfg Config) (*Sensor, error) {
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
	if cfg.ExpireAfter == 0 {
		cfg.ExpireAfter = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.OnError {
	case "", OnErrorBlock, OnErrorAllow:
	default:
		return nil, fmt.Errorf("on-error %q: want %s or %s", cfg.OnError, OnErrorBlock, OnErrorAllow)
	}
	self, err := ProcessIdentity(os.Getpid())
	if err != nil {
		return nil, err
	}
	if cfg.PinPath != "" {
		// Before the first load (the feature probes below included).
		if err := takeOver(cfg.PinPath, self, cfg.Logger); err != nil {
			return nil, err
		}
	}
	loopErr := features.HaveProgramHelper(ebpf.TracePoint, asm.FnLoop)
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
	hook, exitHook, err := chooseHook(cfg.Hook, cfg.Enforcer, cfg.Walk, btfOnly, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if cfg.Enforcer == "" {
		cfg.Enforcer = EnforcerKill
		if hook.IsLSM() {
			cfg.Enforcer = EnforcerDeny
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

	load := loadSentry
	if cfg.Walk == WalkBounded {
		load = loadSentryLegacy
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	spec.Maps[sentryMapEvents].MaxEntries = uint32(cfg.RingBufferSize)
	enter, exit, gate := programNames(hook, exitHook, cfg.Enforcer, cfg.Walk)
	cp := planCompat(hook, exitHook, gate != "")
	// Loaded on its own after the collection: a kernel that refuses it
	// must not stop the sensor.
	prefaultSpec := spec.Programs[sentryProgSentryPrefault]
	for name := range spec.Programs {
		keep := name == enter || name == exit || name == gate ||
			hook == HookKprobe && name == sentryProgSentryEnterKprobeDirect ||
			hook == HookLSMProgLoad && name == sentryProgSentryLsmTokenCreate ||
			name == cp.enter || name == cp.exit
		if !keep {
			delete(spec.Programs, name)
		}
	}
	if spec.Programs[enter] == nil {
		return nil, fmt.Errorf("%w: no %s program for the %s hook with the %s walk", ErrNoHook, enter, hook, cfg.Walk)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load sensor programs: %w\n%+v", err, ve)
		}
		return nil, fmt.Errorf("load sensor programs: %w", err)
	}
	// Before attaching, so that the sensor does not report its own load.
	prefaultProg, prefaultErr := loadPrefault(prefaultSpec, spec.Maps[sentryMapEvents], coll.Maps[sentryMapEvents])
	s := &Sensor{
		cfg: cfg, hook: hook, coll: coll, log: cfg.Logger, self: self,
		events:   make(chan *Event, cfg.EventBuffer),
		asm:      newAssembler(),
		userLost: make(map[string]uint64),
		slots:    make(map[uint32][]string),
		done:     make(chan struct{}),
	}
	s.asm.monoToWall = monoToWall()
	s.asm.budget, s.asm.queued = cfg.MemoryBudget, s.queued
	s.asm.enrich = newEnricher()
	s.asm.tokens = newTokenBook()
	s.tokenEvents = make(chan *TokenCreated, 256)
	fail := func(err error) (*Sensor, error) {
		if prefaultProg != nil {
			prefaultProg.Close()
		}
		s.teardown(false)
		return nil, err
	}
	if err := s.SetRules(cfg.Rules); err != nil {
		return fail(err)
	}
	s.reader, err = ringbuf.NewReader(coll.Maps[sentryMapEvents])
	if err != nil {
		return fail(fmt.Errorf("open ring buffer: %w", err))
	}
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
	if hook == HookLSMProgLoad {
		// BPF_TOKEN_CREATE, which no sys_enter program sees here (6.9+,
		// as the bpf_prog_load hook).
		l, err := attach(hook, coll.Programs[sentryProgSentryLsmTokenCreate], false)
		if err != nil {
			return fail(fmt.Errorf("attach %s: %w", sentryProgSentryLsmTokenCreate, err))
		}
		s.links = append(s.links, l)
	}
	s.compat = cp.note
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
	if cfg.PinPath != "" {
		if err := s.pin(); err != nil {
			return fail(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.read(ctx)
	s.prefault(prefaultProg, prefaultErr)
	return s, nil
}

// chooseHook resolves the asked hook ("" = auto) into the enter hook and
// the hook whose sys_exit program reports the syscall's result (the LSM
// hook has no exit of its own).
func chooseHook(asked Hook, enf Enforcer, walk Walk, btfOnly bool, log *slog.Logger) (enter, exit Hook, err error) {
	lsmBpfUsable := func() error { return lsmBpfUsableFor(walk) }
	lsmProgLoadUsable := func() error {
		if walk == WalkBounded {
			return fmt.Errorf("lsm/bpf_prog_load: not with the %s walk (the hook exists from 6.9, which has bpf_loop)", WalkBounded)
		}
		return lsmProgLoadUsable()
	}
	syscallHook := func() (Hook, error) {
		if btfOnly {
			return HookBTF, nil
		}
		if err := ensureTracefs(); err != nil {
			if asked == HookTracepoint {
				return "", fmt.Errorf("%w: %v", ErrNoHook, err)
			}
			log.Warn("syscall tracepoints unavailable, falling back to tp_btf", "err", err)
			return HookBTF, nil
		}
		return HookTracepoint, nil
	}
	switch asked {
	case "":
		// The strongest hook unless the asked enforcer needs a syscall one.
		if enf != EnforcerKill && enf != EnforcerCorrupt {
			if lsmProgLoadUsable() == nil {
				exit, err = syscallHook()
				return HookLSMProgLoad, exit, err
			}
			if lsmBpfUsable() == nil {
				exit, err = syscallHook()
				return HookLSMBpf, exit, err
			}
		}
		enter, err = syscallHook()
		return enter, enter, err
	case HookTracepoint:
		enter, err = syscallHook()
		return enter, enter, err
	case HookBTF:
		return HookBTF, HookBTF, nil
	case HookKprobe:
		exit, err = syscallHook()
		return HookKprobe, exit, err
	case HookLSMBpf:
		if err := lsmBpfUsable(); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrNoHook, err)
		}
		exit, err = syscallHook()
		return HookLSMBpf, exit, err
	case HookLSMProgLoad:
		if err := lsmProgLoadUsable(); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrNoHook, err)
		}
		exit, err = syscallHook()
		return HookLSMProgLoad, exit, err
	}
	return "", "", fmt.Errorf("hook %q: want lsm-prog-load, lsm-bpf, tracepoint, tp_btf or kprobe", asked)
}

// programNames gives the programs to load: the enter and exit programs
// and, for the lsm-bpf hook without bpf_loop, the LSM gate that refuses
// what the enter program (then a judge on the syscall hook) blocked.
func programNames(h, exitHook Hook, e Enforcer, w Walk) (enter, exit, gate string) {
	exit = sentryProgSentryExitTp
	if exitHook == HookBTF {
		exit = sentryProgSentryExitBtf
	}
	switch {
	case h == HookLSMProgLoad:
		enter = sentryProgSentryLsmProgLoad
	case h == HookLSMBpf && w == WalkBounded && exitHook == HookBTF:
		enter, gate = sentryLegacyProgSentryEnterBtfGate, sentryLegacyProgSentryLsmBpfGate
	case h == HookLSMBpf && w == WalkBounded:
		enter, gate = sentryLegacyProgSentryEnterTpGate, sentryLegacyProgSentryLsmBpfGate
	case h == HookLSMBpf:
		enter = sentryProgSentryLsmBpf
	case h == HookKprobe:
		enter = sentryProgSentryEnterKprobe
	case h == HookBTF && e == EnforcerCorrupt:
		enter = sentryProgSentryEnterBtfCorrupt
	case h == HookBTF:
		enter = sentryProgSentryEnterBtf
	case e == EnforcerCorrupt:
		enter = sentryProgSentryEnterTpCorrupt
	default:
		enter = sentryProgSentryEnterTp
	}
	return enter, exit, gate
}

func attach(h Hook, p *ebpf.Program, isExit bool) (link.Link, error) {
	switch h {
	case HookBTF:
		return link.AttachTracing(link.TracingOptions{Program: p})
	case HookLSMProgLoad, HookLSMBpf:
		return link.AttachLSM(link.LSMOptions{Program: p})
	}
	event := "sys_enter_bpf"
	if isExit {
		event = "sys_exit_bpf"
	}
	return link.Tracepoint("syscalls", event, p, nil)
}

// attachKprobe tries KprobeTargets in order: the wrapped program for
// __x64_sys_bpf, the direct one for the others.
func attachKprobe(wrapped, direct *ebpf.Program) (link.Link, string, error) {
	var errs []error
	for _, target := range KprobeTargets {
		p := direct
		if target == "__x64_sys_bpf" {
			p = wrapped
		}
		l, err := link.Kprobe(target, p, nil)
		if err == nil {
			return l, target, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", target, err))
	}
	return nil, "", fmt.Errorf("%w: no kprobe target attached: %w", ErrNoHook, errors.Join(errs...))
}

// compatPlan is how 32-bit (ia32) bpf() calls are covered: the syscall
// tracepoints never fire for them, the kprobe hook's __x64_sys_bpf does not
// see them; tp_btf and the LSM hooks do (enter), and tp_btf/sys_exit sees
// their exit. What is missing is added with kprobes on __ia32_sys_bpf.
type compatPlan struct {
	enter, exit string // programs to attach to __ia32_sys_bpf (kprobe, kretprobe), "" for none
	note        string // what Compat reports when they attach (or none is needed)
}

// planCompat: gated is the lsm-bpf hook without bpf_loop, whose judge is
// on the syscall hook (exitHook: the sys_enter_bpf tracepoint, or tp_btf
// when the sensor is pinned on a kernel that cannot pin perf events).
func planCompat(hook, exitHook Hook, gated bool) compatPlan {
	if !hasIA32() {
		return compatPlan{note: "no ia32 emulation in this kernel (no __ia32_sys_bpf)"}
	}
	var p compatPlan
	switch {
	case gated && exitHook == HookBTF:
		// the tp_btf judge sees 32-bit calls itself
	case gated:
		p.enter = sentryLegacyProgSentryEnterKprobeIa32Gate
	case hook == HookTracepoint || hook == HookKprobe:
		p.enter = sentryProgSentryEnterKprobeIa32
	}
	if exitHook == HookTracepoint {
		p.exit = sentryProgSentryExitKretprobeIa32
	}
	switch {
	case gated && exitHook == HookBTF:
		p.note = "judged by the tp_btf judge of the lsm/bpf gate"
	case gated:
		p.note = "judged by a kprobe on __ia32_sys_bpf, denied by the lsm/bpf gate, results from a kretprobe"
	case p.enter != "":
		p.note = "kprobe and kretprobe on __ia32_sys_bpf"
	case p.exit != "":
		p.note = fmt.Sprintf("judged by the %s hook, results from a kretprobe on __ia32_sys_bpf", hook)
	default:
		p.note = fmt.Sprintf("seen by the %s hook", hook)
	}
	return p
}

// hasIA32 says whether the kernel has the 32-bit bpf() entry point.
func hasIA32() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	types, err := spec.AnyTypesByName("__ia32_sys_bpf")
	return err == nil && len(types) > 0
}

func attachCompat(coll *ebpf.Collection, p compatPlan) ([]link.Link, error) {
	var links []link.Link
	if p.enter != "" {
		l, err := link.Kprobe("__ia32_sys_bpf", coll.Programs[p.enter], nil)
		if err != nil {
			return nil, fmt.Errorf("kprobe __ia32_sys_bpf: %w", err)
		}
		links = append(links, l)
	}
	if p.exit != "" {
		l, err := link.Kretprobe("__ia32_sys_bpf", coll.Programs[p.exit], nil)
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("kretprobe __ia32_sys_bpf: %w", err)
		}
		links = append(links, l)
	}
	return links, nil
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

// SetRules replaces the kernel rule table in one map update: a load sees
// either the old or the new table, never a mix.
func (s *Sensor) SetRules(c *kernel.Rules) error {
	if c == nil {
		c = &kernel.Rules{}
	}
	s.mu.Lock()
	s.generation++
	gen := s.generation
	s.slots[gen] = c.Slots
	delete(s.slots, gen-2) // loads in flight may still report the previous one
	s.mu.Unlock()
	table := c.Table
	table.Generation = gen
	h, err := tableHash(&table)
	if err != nil {
		return fmt.Errorf("hash kernel rule table: %w", err)
	}
	s.integ.mu.Lock()
	err = s.coll.Maps[sentryMapRules].Put(uint32(0), &table)
	if err == nil {
		s.integ.rules = h
	}
	s.integ.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write kernel rule table: %w", err)
	}
	return s.writeConfig()
}

// SetMode switches between monitor and enforce.
func (s *Sensor) SetMode(m Mode) error {
	s.cfg.Mode = m
	return s.writeConfig()
}

func (s *Sensor) writeConfig() error {
	c := sentrySentryConfig{Mode: uint32(s.cfg.Mode), SelfTgid: s.self.TGID, SelfStart: s.self.StartTicks}
	if s.cfg.BlockUnreadable {
		c.BlockUnreadable = 1
	}
	if s.cfg.OnError == OnErrorAllow {
		c.OnError = uint32(sentrySentryOnErrorSENTRY_ON_ERROR_ALLOW)
	}
	c.Kattr = kattrConfig()
	s.integ.mu.Lock()
	defer s.integ.mu.Unlock()
	if err := s.coll.Maps[sentryMapConfig].Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write sensor config: %w", err)
	}
	s.integ.config, s.integ.wrote = c, true
	return nil
}

// ruleID names the rule of a kernel table slot for a table generation.
func (s *Sensor) ruleID(gen uint32, slot int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ids, ok := s.slots[gen]; ok && slot >= 0 && slot < len(ids) {
		return ids[slot]
	}
	return ""
}

// Losses are counts of what could not be captured, by reason.
type Losses map[string]uint64

// Total is the sum over all reasons.
func (l Losses) Total() uint64 {
	var n uint64
	for _, v := range l {
		n += v
	}
	return n
}

var lossNames = []string{
	sentrySentryLossSENTRY_LOSS_HEADER_RESERVE:  "header_reserve",
	sentrySentryLossSENTRY_LOSS_CHUNK_RESERVE:   "chunk_reserve",
	sentrySentryLossSENTRY_LOSS_VERDICT_RESERVE: "verdict_reserve",
	sentrySentryLossSENTRY_LOSS_EXIT_RESERVE:    "exit_reserve",
	sentrySentryLossSENTRY_LOSS_ATTR_READ:       "attr_read",
	sentrySentryLossSENTRY_LOSS_INSN_READ:       "insn_read",
	sentrySentryLossSENTRY_LOSS_INFLIGHT_FULL:   "inflight_full",
	sentrySentryLossSENTRY_LOSS_TOO_MANY_INSNS:  "too_many_insns",
	sentrySentryLossSENTRY_LOSS_NO_SCRATCH:      "unjudged_no_scratch",
	sentrySentryLossSENTRY_LOSS_NO_TABLE:        "unjudged_no_table",
	sentrySentryLossSENTRY_LOSS_GATE_UNJUDGED:   "unjudged_at_gate",
}

// Losses reads the kernel's per-CPU loss counters and adds user space's
// own (malformed records, events dropped because nobody read Events).
func (s *Sensor) Losses() (Losses, error) {
	if s.closed {
		return s.finalLosses, nil
	}
	out := Losses{}
	m := s.coll.Maps[sentryMapLosses]
	for i, name := range lossNames {
		var perCPU []uint64
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read loss counter %s: %w", name, err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		out[name] = n
	}
	// A program run the kernel skipped (another BPF program was running on
	// that CPU) is a load never seen: count it too.
	for name, p := range s.coll.Programs {
		if st, err := p.Stats(); err == nil {
			out["recursion_miss_"+strings.TrimPrefix(name, "sentry_")] = st.RecursionMisses
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.userLost {
		out[k] = v
	}
	out["malformed_record"] = s.badRecs
	out["token_events"] = s.tokenDrops
	out["orphan_chunk"] = s.asm.orphanChunks
	out["reassembly_budget"] = s.asm.overBudget
	return out, nil
}

func (s *Sensor) read(ctx context.Context) {
	defer close(s.done)
	defer close(s.events)
	defer close(s.tokenEvents)
	var rec ringbuf.Record
	lastSweep := time.Now()
	s.reader.SetDeadline(time.Now().Add(time.Second))
	for {
		err := s.reader.ReadInto(&rec)
		now := time.Now()
		if err == nil {
			r, perr := parseRecord(rec.RawSample)
			s.mu.Lock()
			var ev *Event
			if perr != nil {
				s.badRecs++
				s.log.Warn("sensor record", "err", perr)
			} else if r.token != nil {
				s.tokenCreated(r.token)
			} else {
				ev = s.asm.add(r, now)
			}
			s.mu.Unlock()
			if ev != nil {
				s.deliver(ctx, ev)
			}
		} else if errors.Is(err, ringbuf.ErrClosed) {
			break
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Warn("read ring buffer", "err", err)
		}
		if now.Sub(lastSweep) > time.Second {
			lastSweep = now
			s.reader.SetDeadline(now.Add(time.Second))
			s.mu.Lock()
			expired := s.asm.expire(now.Add(-s.cfg.ExpireAfter))
			s.mu.Unlock()
			for _, ev := range expired {
				s.deliver(ctx, ev)
			}
		}
	}
	s.mu.Lock()
	rest := s.asm.expire(time.Now().Add(time.Hour))
	s.mu.Unlock()
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
	} else if ev.Verdict == VerdictBlock && ev.ReadErrors > 0 {
		ev.RuleID = RuleUnreadable
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

// Close detaches (unless pinned), drains what is already in the ring
// buffer into Events, and frees everything. Events is closed afterwards.
func (s *Sensor) Close() error {
	if s.closed || s.closing {
		return nil
	}
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
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
	time.Sleep(50 * time.Millisecond)
	s.drain()
	s.reader.Close()
	s.cancel()
	<-s.done
	s.finalLosses, _ = s.Losses()
	s.closed = true
	s.teardown(keep)
	return nil
}

// drain waits until the reader has consumed everything already submitted.
func (s *Sensor) drain() {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && s.reader.AvailableBytes() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Sensor) teardown(keepPins bool) {
	for _, l := range s.links {
		l.Close()
	}
	if s.reader != nil && !s.closed {
		s.reader.Close()
	}
	if !keepPins && s.cfg.PinPath != "" {
		os.RemoveAll(s.cfg.PinPath)
	}
	s.coll.Close()
}

// pin keeps links and maps in bpffs so enforcement outlives the agent.
func (s *Sensor) pin() error {
	if err := ensureBPFFS(); err != nil {
		return err
	}
	// Leftovers of a previous pinned agent: ours replace them.
	os.RemoveAll(s.cfg.PinPath)
	if err := os.MkdirAll(s.cfg.PinPath, 0o700); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	for i, l := range s.links {
		if err := l.Pin(filepath.Join(s.cfg.PinPath, "link"+strconv.Itoa(i))); err != nil {
			return fmt.Errorf("pin link: %w", err)
		}
	}
	for _, name := range []string{sentryMapRules, sentryMapConfig, sentryMapLosses} { // rules stay editable
		if err := s.coll.Maps[name].Pin(filepath.Join(s.cfg.PinPath, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	return nil
}

func ensureTracefs() error {
	for _, p := range []string{"/sys/kernel/tracing/events/syscalls/sys_enter_bpf", "/sys/kernel/debug/tracing/events/syscalls/sys_enter_bpf"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount tracefs at /sys/kernel/tracing: %w", err)
	}
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_enter_bpf"); err != nil {
		return fmt.Errorf("syscall tracepoints missing (CONFIG_FTRACE_SYSCALLS?): %w", err)
	}
	return nil
}

func ensureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
		return fmt.Errorf("mount bpffs at /sys/fs/bpf: %w", err)
	}
	return nil
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
	var (
		once   sync.Once
		kernel *btf.Spec
		exes   exeHasher
	)
	return func(p *program.Program, h *sentrySentryHeader) {
		p.Loader.ExeSHA256 = exes.hash(h.Pid, h.ExeIno, h.ExeDev)
		if h.ExeTruncated != 0 {
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(int(h.Pid)) + "/exe"); err == nil {
				p.Loader.Exe = exe
			}
		}
		if h.AttachBtfId != 0 && h.AttachBtfObjFd == 0 {
			once.Do(func() { kernel, _ = btf.LoadKernelSpec() })
			if kernel != nil {
				if t, err := kernel.TypeByID(btf.TypeID(h.AttachBtfId)); err == nil {
					p.AttachTo = t.TypeName()
				}
			}
		}
	}
}
