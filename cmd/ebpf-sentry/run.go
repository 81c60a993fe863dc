//go:build linux && amd64

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

const (
	runLockPath = "/run/ebpf-sentry.lock"
	runPinPath  = "/sys/fs/bpf/ebpf-sentry"
)

type runOptions struct {
	rules        string
	rulesPoll    time.Duration
	mode         string
	enforcer     string
	ioctlHook    string
	hook         string
	format       string
	pin          bool
	ringMiB      int
	blockUnr     bool
	guardSignals bool
	lockPath     string
	onError      string
	integrity    time.Duration
	heartbeat    time.Duration
	releaseCheck time.Duration
	memMiB       int
	loaderRate   int64
	procs        int
	cpuProfile   string
	out          *outputFlags
	resident     residentOptions
	policy       *policyFlags
	ui           *uiFlags
	lock         *lockFlags
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Watch every BPF_PROG_LOAD, judge it and stop what the rules block",
		Long: `Attach the kernel sensor and report every eBPF program loaded on this host:
one line per load (--format text) or one JSON object per load (--format json).
Block rules that the kernel can evaluate are enforced at load time (--mode
enforce); the other rules alert. SIGHUP or a change of the rule files reloads
--rules (a broken file keeps the rules in force); SIGINT/SIGTERM detach
everything (unless --pin keeps enforcing without the agent).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSensor(cmd, &o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.rules, "rules", "@defaults", "rule file or directory; @defaults is the embedded set; nats-kv://BUCKET[/KEY]: signed fleet bundles (docs/FLEET.md)")
	f.DurationVar(&o.rulesPoll, "rules-poll", 2*time.Second, "reload --rules when its files change, checking this often (0: only on SIGHUP)")
	f.StringVar(&o.mode, "mode", "enforce", "enforce|monitor|learn|lock: monitor reports block verdicts without acting; learn enforces the rules and records what loads into --allowlist; lock also blocks every program whose fingerprint is not on --allowlist, in the kernel")
	f.StringVar(&o.enforcer, "enforcer", "auto", "auto (deny on an LSM hook, else kill) | deny (LSM hook returns EPERM) | kill (SIGKILL the loader) | corrupt (rewrite insn 0; racy, refused under lockdown)")
	f.StringVar(&o.ioctlHook, "ioctl-hook", string(sensor.DefaultIoctlHook), "auto (on-demand where the kernel can: pidfd_open, bpf_send_signal; always elsewhere; see doctor) | on-demand (programs on ioctl only while a process that opened a perf event, or holds one without a program, lives; a perf_event_open caller is stopped until they are on) | always (on ioctl for the agent's lifetime: every ioctl on the host pays; docs/SENSOR.md)")
	f.StringVar(&o.hook, "hook", "auto", "auto (strongest available, see doctor) | lsm-prog-load | lsm-bpf | tracepoint | tp_btf | kprobe")
	f.StringVar(&o.format, "format", "text", "text: one line per load on stdout (events go to --output only when given) | json: events to --output (default stdout)")
	f.BoolVar(&o.pin, "pin", false, "pin the programs in "+runPinPath+" so enforcement continues after the agent exits")
	f.BoolVar(&o.guardSignals, "guard-signals", true, "enforce mode on BPF LSM kernels: refuse signals that would stop or end the agent unless sent by the agent's parent or init (pid 1); =false to only report them (e.g. when a container runtime, neither, stops the agent)")
	f.IntVar(&o.ringMiB, "ring-size", sensor.DefaultRingBufferSize>>20, "ring buffer size in MiB (power of two)")
	f.BoolVar(&o.blockUnr, "block-unreadable", true, "block loads whose instructions the sensor cannot read (pages not resident, e.g. served late by userfaultfd: the kernel copies them, the syscall hooks cannot); =false to let them load, reported")
	f.StringVar(&o.onError, "on-error", "block", "block|allow: what a load the kernel side cannot judge (no scratch memory, no table) gets in enforce mode; counted either way")
	f.DurationVar(&o.integrity, "integrity-interval", 2*time.Second, "compare the kernel config and rule table with the agent's copy this often; a difference is a tamper event")
	f.DurationVar(&o.heartbeat, "heartbeat-interval", 30*time.Second, "emit a heartbeat event this often: hooks attached, tables intact, loads judged")
	f.DurationVar(&o.releaseCheck, "release-check-interval", time.Second, "check the links, perf attachments and BPF_PROG_ATTACH attachments reported attached this often, and report those gone without a detach call (their last fd closed; their cgroup, map or interface gone) as prog_detach; attacher exits trigger a check too; 0: on exits only")
	f.Int64Var(&o.loaderRate, "loader-rate", sensor.DefaultLoaderRate, "instructions one loader (process) may have captured per second; loads beyond it are judged in the kernel but reported without instructions and counted (rate_limited); -1: no limit")
	f.IntVar(&o.memMiB, "memory-budget", sensor.DefaultMemoryBudget>>20, "MiB of captured instructions the agent holds (reassembly and queued events); loads beyond it are reported without instructions and counted (reassembly_budget)")
	f.IntVar(&o.procs, "procs", 0, "CPUs the agent's Go code runs on at once once started (GOMAXPROCS; 0: half the CPUs, at least 1; a GOMAXPROCS environment variable wins): on a small host the agent's hand-offs between goroutines then stay on one thread instead of waking another, and its analysis does not take every CPU from the loaders it judges (docs/PERFORMANCE.md); judging in the kernel does not depend on it")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the agent to this file until it stops (go tool pprof)")
	f.StringVar(&o.lockPath, "lock-file", runLockPath, "file locked while run is active (a second instance refuses to start)")
	o.out = addOutputFlags(f)
	addResidentFlags(f, &o.resident)
	o.policy = addPolicyFlags(f)
	o.ui = addUIFlags(f)
	o.lock = addLockFlags(f)
	return cmd
}

func runSensor(cmd *cobra.Command, o *runOptions) error {
	// The sensor's parses (its object, the kernel's BTF) run beside the
	// rules, allowlist and outputs below: start-up (docs/PERFORMANCE.md).
	sensor.Preload()
	cfg := sensor.Config{RingBufferSize: o.ringMiB << 20, BlockUnreadable: o.blockUnr, GuardSignals: o.guardSignals}
	switch o.mode {
	case "enforce", "learn", "lock":
		cfg.Mode = sensor.ModeEnforce
	case "monitor":
		cfg.Mode = sensor.ModeMonitor
	default:
		return fmt.Errorf("--mode %q: want enforce, monitor, learn or lock", o.mode)
	}
	switch o.ioctlHook {
	case string(sensor.IoctlHookAuto), string(sensor.IoctlHookAlways), string(sensor.IoctlHookOnDemand):
		cfg.IoctlHook = sensor.IoctlHook(o.ioctlHook)
	default:
		return fmt.Errorf("--ioctl-hook %q: want auto, on-demand or always", o.ioctlHook)
	}
	switch o.enforcer {
	case "auto":
	case "deny", "kill", "corrupt":
		cfg.Enforcer = sensor.Enforcer(o.enforcer)
	default:
		return fmt.Errorf("--enforcer %q: want auto, deny, kill or corrupt", o.enforcer)
	}
	switch o.hook {
	case "auto":
	case "lsm-prog-load", "lsm-bpf", "tracepoint", "tp_btf", "kprobe":
		cfg.Hook = sensor.Hook(o.hook)
	default:
		return fmt.Errorf("--hook %q: want auto, lsm-prog-load, lsm-bpf, tracepoint, tp_btf or kprobe", o.hook)
	}
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("--format %q: want text or json", o.format)
	}
	if err := o.resident.validate(); err != nil {
		return err
	}
	if o.ringMiB <= 0 || o.ringMiB&(o.ringMiB-1) != 0 {
		return fmt.Errorf("--ring-size %d: want a power of two (MiB)", o.ringMiB)
	}
	if err := validateRunFlags(o); err != nil {
		return err
	}
	cfg.OnError = sensor.OnError(o.onError)
	cfg.MemoryBudget = int64(o.memMiB) << 20
	cfg.LoaderRate = o.loaderRate
	if o.pin {
		cfg.PinPath = runPinPath
	} else if _, err := os.Stat(runPinPath); err == nil {
		slog.Warn("a sensor pinned by an earlier `run --pin` is still attached and enforcing its rules; `run --pin` replaces it, `rm -r " + runPinPath + "` removes it")
	}
	store, follow, err := o.policy.open(o.rules, o.out.opts.NATS)
	if err != nil {
		return fmt.Errorf("--rules: %w", err)
	}
	set := store.Set()
	compiled := rules.Compile(set)
	if err := compiled.Fits(); err != nil {
		return fmt.Errorf("--rules %s: %w", o.rules, err)
	}
	cfg.Rules = compiled.Kernel()
	allow, err := openAllowlist(o, &cfg, o.out.opts.NATS)
	if err != nil {
		return err
	}
	defer allow.close()

	if os.Geteuid() != 0 {
		return envError("run needs root: loading and attaching BPF programs requires CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN")
	}
	lock, err := takeRunLock(o.lockPath)
	if err != nil {
		return err
	}
	defer lock.Close()
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()

	if o.format == "text" && !cmd.Flags().Changed("output") {
		o.out.opts.Outputs = nil // the text lines are the output
	}
	tel, err := o.out.start(slog.Default())
	if err != nil {
		return err
	}
	defer tel.close(5 * time.Second)
	if err := o.ui.start(cmd.Context(), tel, store.Set); err != nil {
		return err
	}

	// Before the sensor starts: a SIGTERM that arrives once "sensor
	// running" is logged (or during the start) must reach the graceful
	// shutdown below, not the default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// Staged: New returns once loads are judged; the rest of the sensor's
	// start (group calibration, ring pre-fault) runs beside the agent's
	// other start-up jobs, and Ready below reports it.
	s, err := sensor.NewStaged(cfg)
	cfg.Rules = nil // in the kernel now; the sensor keeps its hash, not the 688 KB table
	if err != nil {
		if errors.Is(err, sensor.ErrNotRoot) || errors.Is(err, sensor.ErrEnforcerRefused) || errors.Is(err, sensor.ErrNoHook) {
			return &exitError{code: exitEnvironment, err: err}
		}
		return envError("start sensor: %w (run `ebpf-sentry doctor` to see what this kernel offers)", err)
	}
	info := output.Sensor{Version: version, PID: os.Getpid(), Hook: string(s.Hook()), Enforcer: "signal",
		Guarantee: "killed before use (SIGKILL queued at bpf() entry; see doctor)", MonitorOnly: cfg.Mode == sensor.ModeMonitor,
		RulesCount: len(set.Rules)}
	switch s.Enforcer() {
	case sensor.EnforcerCorrupt:
		info.Enforcer, info.Guarantee = "corrupt", "racy: insn 0 rewritten in the loader's memory"
	case sensor.EnforcerDeny:
		info.Enforcer, info.Guarantee = "lsm", "denied race-free: the kernel's copy is judged in bpf_prog_load before the verifier (EPERM, no prog id)"
		if s.Hook() == sensor.HookLSMBpf {
			info.Guarantee = "denied (EPERM, no prog id); user memory TOCTOU detected after the fact by the tag check"
		}
	}
	if info.MonitorOnly {
		info.Guarantee = "monitor only"
	}
	if o.mode == "lock" {
		info.Guarantee += "; lock: every program not on the allowlist is blocked the same way, the agent's own loads excepted"
	}
	// "judging loads": the enforcing hook is attached with the rules (and
	// the allowlist) in place; from here no load goes unjudged.
	judgingAttrs := []any{"hook", s.Hook(), "enforcer", s.Enforcer(), "mode", o.mode, "kernel_rules", len(compiled.Slots)}
	if up, err := sinceExec(s.JudgingSince()); err == nil {
		info.Startup = up.Seconds()
		judgingAttrs = append(judgingAttrs, "since_exec", up.Round(time.Millisecond))
	}
	slog.Info("judging loads", judgingAttrs...)
	tel.Pipeline.Emit(output.SensorStarted(info))
	attaches := newAttachJudge()
	attaches.release = newReleaseWatch()
	defer attaches.release.close()
	if err := attaches.setKernelTable(s, set); err != nil {
		slog.Warn("attach table: attaches are judged in user space only", "err", err)
	}
	if err := s.Ready(); err != nil {
		// Not reached today (the rest of the start is best-effort and
		// says what it could not do); an error here stops the agent, as
		// an error of New does.
		s.Close()
		return envError("start sensor: %w", err)
	}
	slog.Info("sensor running", "hook", s.Hook(), "enforcer", s.Enforcer(), "mode", o.mode, "ioctl_hook", s.IoctlGate().Hook, "allowlisted", s.Allowlisted(),
		"rules", set.Source, "kernel_rules", len(compiled.Slots), "pid", os.Getpid())
	started := time.Now()
	losses := &lossTracker{last: map[string]uint64{}}
	keeper := newResidentKeeper(o.resident, tel, s, func() *rules.Set { return set }, textOut(cmd, o))
	defer keeper.stop()
	keeper.start()
	cw := startCbpfWatcher(cfg.Mode == sensor.ModeEnforce, tel.Pipeline.Emit, textOut(cmd, o))
	defer cw.close()
	cw.rules = func() *rules.Set { return set }
	lw := startLoaderWatcher(o.resident.bracket, cfg.Mode == sensor.ModeEnforce, keeper, func() *rules.Set { return set }, textOut(cmd, o))
	defer lw.close()
	// Start-up's garbage (the kernel's BTF parsed for the sensor's and the
	// classic BPF capture's objects, the inventory of resident programs)
	// goes back to the system now rather than whenever the scavenger gets
	// to it, and so do the binary's pages only start-up ran or read: idle
	// RSS (docs/PERFORMANCE.md).
	debug.FreeOSMemory()
	if n, err := releaseStartupPages(); err != nil {
		slog.Debug("start-up pages not released", "err", err)
	} else {
		slog.Debug("start-up pages released", "bytes", n)
	}
	// Start-up ran its jobs side by side on every CPU; from here the agent
	// judges loads as they come, with fewer threads waking each other.
	if n, why := agentProcs(o.procs, runtime.NumCPU(), os.Getenv("GOMAXPROCS")); n > 0 {
		runtime.GOMAXPROCS(n)
		slog.Debug("agent CPUs", "procs", n, "why", why)
	}

	tick := time.NewTicker(kernelLossInterval(o.out.opts))
	defer tick.Stop()
	// Rule-file changes are noticed by polling and applied on this goroutine,
	// like SIGHUP, so the kernel table and the user-space set change together.
	reloads := make(chan rules.ReloadEvent, 1)
	if o.rulesPoll > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go store.Watch(ctx, o.rulesPoll, func(ev rules.ReloadEvent) {
			select {
			case reloads <- ev:
			case <-ctx.Done():
			}
		})
	}
	if follow != nil {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go follow(ctx, func(ev rules.ReloadEvent) {
			select {
			case reloads <- ev:
			case <-ctx.Done():
			}
		})
	}
	applyReload := func(reason string, rerr error) {
		if rerr == nil {
			c := rules.Compile(store.Set())
			if rerr = c.Fits(); rerr == nil {
				rerr = s.SetRules(c.Kernel())
			}
		}
		if rerr != nil {
			slog.Error("reload rules: keeping the current ones", "reason", reason, "err", rerr)
			tel.Pipeline.Emit(output.RulesRejected(output.Rules{Source: o.rules, Count: len(set.Rules), Error: rerr.Error()}))
			return
		}
		set = store.Set()
		if err := attaches.setKernelTable(s, set); err != nil {
			slog.Warn("attach table: attaches are judged in user space only", "err", err)
		}
		slog.Info("rules reloaded", "reason", reason, "rules", set.Source, "count", len(set.Rules))
		tel.Pipeline.Emit(output.RulesReloaded(output.Rules{Source: set.Source, Count: len(set.Rules)}))
	}
	out := cmd.OutOrStdout()
	integrity := time.NewTicker(o.integrity)
	defer integrity.Stop()
	heartbeat := time.NewTicker(o.heartbeat)
	defer heartbeat.Stop()
	var releaseTick <-chan time.Time
	if o.releaseCheck > 0 {
		t := time.NewTicker(o.releaseCheck)
		defer t.Stop()
		releaseTick = t.C
	}
	// handleAttaches handles what the sensor queued: the loads first, so
	// that an attach finds its program's facts.
	handleAttaches := func(n int) {
		for m := len(s.Events()); m > 0; m-- {
			if lev, ok := <-s.Events(); ok {
				keeper.observe(lev)
				attaches.remember(lev)
				handleEvent(out, o, tel, set, lev, allow)
			}
		}
		for ; n > 0; n-- {
			if ev, ok := <-s.Attaches(); ok {
				if err := attaches.handle(out, o, tel, set, ev); err != nil {
					slog.Warn("write event", "err", err)
				}
			}
		}
	}
	// checkReleased: a BPF_LINK_DETACH made before its link went is
	// handled first (its link forgotten), then what is gone reported.
	// With nothing followed there is nothing to order against: the idle
	// agent does not wake the reader every interval for it.
	checkReleased := func(observed string) {
		if attaches.release.tracked() > 0 {
			s.CatchUp(releaseCatchUp)
			handleAttaches(len(s.Attaches()))
		}
		attaches.reportReleased(out, o, tel, observed)
	}
	attempts := s.AccessAttempts()
	tokens := s.TokenEvents()
	mapCreates := s.MapCreates()
	for {
		select {
		case tc, ok := <-tokens:
			if !ok {
				tokens = nil // closed with the sensor; Events ends the loop
				continue
			}
			tel.Pipeline.Emit(tokenCreateEvent(tc))
		case mc, ok := <-mapCreates:
			if !ok {
				mapCreates = nil
				continue
			}
			tel.Pipeline.Emit(mapCreateEvent(mc))
		case <-heartbeat.C:
			reportHeartbeat(s, tel, o.heartbeat)
		case <-attaches.release.Exited():
			checkReleased(observedExit)
		case <-releaseTick:
			checkReleased(observedSweep)
		case <-integrity.C:
			reportTampering(s, tel)
		case a, ok := <-attempts:
			if !ok {
				attempts = nil // closed with the sensor; Events ends the loop
				continue
			}
			tel.Pipeline.Emit(accessAttempt(a))
		case ev, ok := <-s.Events():
			if !ok {
				return nil
			}
			keeper.observe(ev)
			attaches.remember(ev)
			if err := handleEvent(out, o, tel, set, ev, allow); err != nil {
				slog.Warn("write event", "err", err)
			}
		case ev, ok := <-s.Attaches():
			// The program's load was delivered before its attach: handle
			// what is queued first, so the attach finds the load's facts.
			for n := len(s.Events()); n > 0; n-- {
				if lev, ok := <-s.Events(); ok {
					keeper.observe(lev)
					attaches.remember(lev)
					handleEvent(out, o, tel, set, lev, allow)
				}
			}
			if ok {
				if err := attaches.handle(out, o, tel, set, ev); err != nil {
					slog.Warn("write event", "err", err)
				}
			}
		case w, ok := <-s.ProgArrayWrites():
			if ok {
				ev := progArrayWriteEvent(w)
				tel.Pipeline.Emit(ev)
				if o.format == "text" {
					fmt.Fprintln(out, progArrayWriteLine(ev))
				}
			}
		case u := <-allow.Updates():
			allow.apply(s, tel, u)
		case <-allow.Flush():
			allow.flush()
		case ev := <-reloads:
			applyReload(ev.Reason, ev.Err)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				applyReload("SIGHUP", store.Reload())
				if allow.Updates() != nil {
					allow.apply(s, tel, allow.reload())
				}
				continue
			}
			slog.Info("shutting down", "signal", sig.String(), "pinned", o.pin)
			closeErr := s.Close()
			for ev := range s.Events() { // what was already captured
				attaches.remember(ev)
				handleEvent(out, o, tel, set, ev, allow)
			}
			for ev := range s.Attaches() {
				attaches.handle(out, o, tel, set, ev)
			}
			// A signal from another process is in the ring before it
			// lands: Close read it, report it (host: nothing refused it).
			for a := range s.AccessAttempts() {
				tel.Pipeline.Emit(accessAttempt(a))
			}
			losses.report(s, tel, true)
			info.Reason, info.Uptime = "signal "+sig.String(), time.Since(started).Seconds()
			tel.Pipeline.Emit(output.SensorStopped(info))
			return closeErr
		case <-tick.C:
			losses.report(s, tel, false)
			keeper.onLossCheck()
		case a, ok := <-cw.events():
			cw.receive(a, ok)
		case r, ok := <-lw.events():
			// The loader program's own prog_load (and every load the
			// hooks reported before the run ended: an LSM hook's inner
			// loads) first, so it is not taken for payload nor reported twice.
			keeper.drainDelivered(s.Events(), s.Delivered(), func(ev *sensor.Event) { handleEvent(out, o, tel, set, ev, allow) })
			lw.receive(r, ok)
		case <-keeper.tick():
			keeper.drain(s.Events(), func(ev *sensor.Event) { handleEvent(out, o, tel, set, ev, allow) })
			keeper.reconcile()
			attaches.reconcileNetlink(out, o, tel, set)
		}
	}
}

// agentProcs is the GOMAXPROCS the agent runs with once started (0: leave
// it): --procs when given, else half the CPUs (at least one); a GOMAXPROCS
// environment variable, which the Go runtime already applied, wins.
func agentProcs(flag, cpus int, env string) (int, string) {
	switch {
	case env != "":
		return 0, "GOMAXPROCS set in the environment"
	case flag > 0:
		return flag, "--procs"
	}
	return max(1, cpus/2), "half the CPUs"
}

// kernelLossInterval is how often the kernel's loss counters are read:
// --loss-interval, like the pipeline's own losses (its 10 s default when 0
// or negative, which switches off only the pipeline's timer).
func kernelLossInterval(o output.Options) time.Duration {
	if o.LossInterval > 0 {
		return o.LossInterval
	}
	return output.DefaultOptions().LossInterval
}

// takeRunLock makes a second `run` refuse to start instead of attaching twice.
func takeRunLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, envError("open lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, &exitError{code: exitRunning, err: fmt.Errorf("another ebpf-sentry run is active (pid %s, lock %s)", strings.TrimSpace(string(b)), path)}
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// lossTracker forwards new kernel and user-space loss counts to the
// pipeline (loss events, metrics) and the log.
type lossTracker struct{ last map[string]uint64 }

func (lt *lossTracker) report(s *sensor.Sensor, tel *telemetry, final bool) {
	l, err := s.Losses()
	if err != nil {
		slog.Warn("read loss counters", "err", err)
		return
	}
	var args []any
	for k, v := range l {
		if v > lt.last[k] {
			tel.Pipeline.CaptureLoss(k, v-lt.last[k])
			args = append(args, k, v-lt.last[k])
		}
		lt.last[k] = v
	}
	if len(args) > 0 || (final && l.Total() > 0) {
		slog.Warn("sensor losses", append(args, "total", l.Total())...)
	}
}

// handleEvent analyses one load, judges it with the full rule set and
// sends it to the text line and/or the output pipeline.
func handleEvent(w io.Writer, o *runOptions, tel *telemetry, set *rules.Set, ev *sensor.Event, allow *allowlistRun) error {
	// Decoded once, for the analysis and the text, into a buffer reused
	// across loads: nothing keeps the instructions past this call (the
	// report and the text lines are copies).
	buf := decodeBufs.Get().(*[]insn.Instruction)
	ins, probs := insn.DecodeAppend(*buf, ev.Program.Insns)
	defer func() {
		if cap(ins) <= maxPooledDecode {
			*buf = ins[:0]
			decodeBufs.Put(buf)
		}
	}()
	rep := analysis.AnalyzeDecoded(ev.Program, ins, probs, nil)
	allow.observe(ev, rep)
	verdict := rules.Evaluate(set, ev.Program, rep)
	if !ev.Complete() {
		tel.Pipeline.CaptureLoss("incomplete_capture", 1)
	}
	if ev.JudgedCopyDiffers {
		// The verdict above is about instructions the kernel did not load.
		slog.Warn("loaded program differs from the judged one: instructions changed in the loader's memory after the check (TOCTOU)",
			"pid", ev.Program.Loader.PID, "prog", ev.Program.Name, "prog_id", ev.Program.Kernel.ID, "tag", ev.Program.Kernel.Tag)
	}
	pl := output.NewProgLoad(eventText(ev, rep, verdict, ins, tel.Insns), tel.Insns)
	if ev.Inner != nil {
		// Loaded from inside the kernel: named with the loader program the
		// caller ran, whose provenance it inherits, as the bracket does.
		v := innerVia(ev.Inner)
		pl = output.WithViaLoader(pl, v)
		provenanceBook.Inherit(pl, v.ID, v.Tag, v.Name)
	}
	provenanceBook.Remember(pl)
	tel.Pipeline.Emit(pl)
	if e := allow.lockCollision(ev, rep); e != nil {
		detail := stopCollision(ev, rep, e)
		slog.Error("lock mode fooled by a forged fingerprint", "detail", detail)
		tel.Pipeline.Emit(output.NewTamper(output.Tamper{What: output.TamperLockCollision, LoadID: ev.LoadID, Detail: detail}))
	}
	if t := enforcementBypassed(o.mode, ev); t != nil {
		slog.Error("sensor tampered with", "what", t.Tamper.What, "detail", t.Tamper.Detail)
		tel.Pipeline.Emit(t)
	}
	if o.format != "text" {
		return nil
	}
	_, err := fmt.Fprintln(w, textLine(ev, rep, verdict))
	return err
}

// decodeBufs are handleEvent's instruction buffers; a buffer grown past
// maxPooledDecode instructions (a rare huge program) is not kept.
var decodeBufs = sync.Pool{New: func() any { return new([]insn.Instruction) }}

const maxPooledDecode = 1 << 17

// textLine is one line per load: time, loader, program, verdict, notable
// helpers. Names come from the loader and are escaped (%q).
func textLine(ev *sensor.Event, rep *analysis.Report, v rules.Verdict) string {
	var b strings.Builder
	p := ev.Program
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	if l := p.Loader; l != nil {
		fmt.Fprintf(&b, " loader=%q pid=%d uid=%d exe=%q", l.Comm, l.PID, l.UID, l.Exe)
	}
	fmt.Fprintf(&b, " prog=%q type=%s insns=%d", p.Name, rep.ProgType, p.InsnCnt)
	if in := ev.Inner; in != nil {
		v := innerVia(in)
		fmt.Fprintf(&b, " via_loader=%q(id=%d tag=%s)", v.Name, v.ID, v.Tag)
	}
	switch ev.Outcome.Result {
	case sensor.ResultLoaded:
		if p.Kernel != nil {
			fmt.Fprintf(&b, " id=%d tag=%s", p.Kernel.ID, p.Kernel.Tag)
		}
	case sensor.ResultFailed:
		name := "unknown" // an inner load refused after the judgement
		if ev.Outcome.Errno != 0 {
			name = unix.ErrnoName(syscall.Errno(ev.Outcome.Errno))
		}
		fmt.Fprintf(&b, " failed=%s", name)
	default:
		fmt.Fprintf(&b, " outcome=%s", ev.Outcome.Result)
		if ev.Outcome.KilledByOther {
			b.WriteString("(not-by-this-sensor)")
		}
	}
	fmt.Fprintf(&b, " kernel=%s", ev.Verdict)
	if ev.RuleID != "" {
		fmt.Fprintf(&b, "(%s)", ev.RuleID)
	}
	if ev.Lock != sensor.LockOff {
		fmt.Fprintf(&b, " lock=%s", ev.Lock)
	}
	if h := insnHash(ev); h != 0 {
		fmt.Fprintf(&b, " fingerprint=%#016x", h)
	}
	if ev.Action != sensor.ActionNone {
		fmt.Fprintf(&b, " action=%s", ev.Action)
	}
	if len(v.Hits) > 0 {
		ids := make([]string, len(v.Hits))
		for i, h := range v.Hits {
			ids[i] = h.ID + ":" + h.Action.String()
		}
		fmt.Fprintf(&b, " rules=%s", strings.Join(ids, ","))
	}
	if hs := notableHelpers(rep); hs != "" {
		b.WriteString(" helpers=" + hs)
	}
	if ev.JudgedCopyDiffers {
		b.WriteString(" TOCTOU(loaded program differs from the judged one)")
	}
	if !ev.Complete() {
		fmt.Fprintf(&b, " INCOMPLETE(missing=%v read_errors=%d chunks=%d/%d)", ev.Missing, ev.ReadErrors, ev.ChunksReceived, ev.ChunksExpected)
	}
	return b.String()
}

// notableHelpers lists the most called helpers, at most five.
func notableHelpers(rep *analysis.Report) string {
	hs := append([]analysis.HelperUse(nil), rep.Helpers...)
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].Count > hs[j].Count })
	var parts []string
	for i, h := range hs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("+%d", len(hs)-5))
			break
		}
		name := h.Name
		if name == "" {
			name = "#" + strconv.Itoa(int(h.ID))
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, h.Count))
	}
	return strings.Join(parts, ",")
}

// progArrayWriteEvent is the prog_array_write event of a write the sensor
// reported (docs/GROUPS.md).
func progArrayWriteEvent(w *sensor.ProgArrayWrite) *output.Event {
	uid := w.UID
	l := output.Loader{PID: w.PID, TID: w.TID, UID: &uid, Comm: w.Comm, Unknown: []string{"ppid", "gid"}}
	return output.NewProgArrayWrite(w.Time, l, output.ProgArrayWrite{Op: w.Op, MapID: w.MapID, Key: w.Key,
		KeyUnreadable: w.KeyUnreadable, ValueFD: w.ValueFD, ProgID: w.ProgID, OldProgID: w.OldProgID,
		Swap: w.Swap(), Errno: w.Errno, Group: output.GroupRef{TGID: w.Group.TGID, StartNS: w.Group.Start}})
}

// progArrayWriteLine is the text line of a prog_array_write (names escaped
// by NewProgArrayWrite, and quoted).
func progArrayWriteLine(ev *output.Event) string {
	w := ev.ProgArray
	line := fmt.Sprintf("%s prog_array_write loader=%q pid=%d op=%s map=%d key=%d prog=%d old_prog=%d group=%d@%d",
		ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Loader.Comm, ev.Loader.PID, w.Op, w.MapID, w.Key,
		w.ProgID, w.OldProgID, w.Group.TGID, w.Group.StartNS)
	if w.Swap {
		line += " swap"
	}
	if w.Errno != 0 {
		line += fmt.Sprintf(" errno=%d", w.Errno)
	}
	return line
}
