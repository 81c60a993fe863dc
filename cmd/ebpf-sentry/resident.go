//go:build linux && amd64

package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// residentOptions are run's inventory flags.
type residentOptions struct {
	block     string        // alert | detach | kill-holders
	reconcile time.Duration // period of the reconciliation; 0 turns it off
	bracket   bool          // bracket BPF_PROG_TEST_RUN of syscall programs (loaderrun.go)
}

func addResidentFlags(f *pflag.FlagSet, o *residentOptions) {
	f.StringVar(&o.block, "resident-block", "alert", "what a block rule does to a program found already loaded (prog_present, prog_unseen): "+
		"alert (report only) | detach (BPF_LINK_DETACH its links) | kill-holders (SIGKILL the processes holding its fds and its links' fds)")
	f.DurationVar(&o.reconcile, "reconcile", 30*time.Second, "compare the loaded programs with those the load hook reported this often (0: only on lost records); "+
		"a program the hook never reported becomes a prog_unseen event")
	f.BoolVar(&o.bracket, "bracket-loaders", true, "judge what syscall programs load from inside the kernel (bpf_sys_bpf, light skeletons) at the end of each BPF_PROG_TEST_RUN, "+
		"stopping the caller until judged in enforce mode; =false leaves such loads to reconciliation (prog_unseen)")
}

func (o *residentOptions) validate() error {
	switch o.block {
	case "alert", "detach", "kill-holders":
	default:
		return fmt.Errorf("--resident-block %q: want alert, detach or kill-holders", o.block)
	}
	if o.reconcile < 0 {
		return fmt.Errorf("--reconcile %s: want a positive period or 0", o.reconcile)
	}
	return nil
}

// residentKeeper keeps run's inventory: which program ids the load hook
// reported, which were present at start, and what appeared otherwise.
//
// Reconciliation is two-phase: an id that the enumeration shows and the hook
// has not reported becomes a candidate, and is reported as prog_unseen only
// if it is still unreported at the next pass. The event loop drains the
// ring between passes, so a load whose event is merely in flight is not
// mistaken for one the hook missed. Everything runs on run's event loop
// goroutine, off the load path: the kernel side is unchanged.
type residentKeeper struct {
	opts    residentOptions
	tel     *telemetry
	set     func() *rules.Set
	losses  func() uint64 // total records lost so far (kernel and user space)
	self    uint32
	root    string
	seen    map[uint32]bool      // reported by the hook, or present at start
	pending map[uint32]time.Time // candidates found by the last pass
	lost    uint64
	ticker  *time.Ticker
	text    io.Writer // run --format text: one line per event; nil for json
	insns   output.InsnOptions

	// The kernel and the pipeline, replaced in unit tests.
	listIDs   func() ([]uint32, error)
	scan      func(*inventory.Options) (*inventory.Inventory, error)
	emit      func(*output.Event)
	crossView func() (*inventory.Views, []inventory.Hidden, error)
	hidden    map[string]bool // findings already reported
	iter      *inventory.ProgIterator
}

func newResidentKeeper(o residentOptions, tel *telemetry, s *sensor.Sensor, set func() *rules.Set, text io.Writer) *residentKeeper {
	k := &residentKeeper{opts: o, tel: tel, set: set, self: uint32(os.Getpid()), root: "/",
		seen: map[uint32]bool{}, pending: map[uint32]time.Time{}, text: text,
		insns: tel.Insns, listIDs: inventory.ProgramIDs, scan: inventory.Scan, emit: tel.Pipeline.Emit,
		hidden: map[string]bool{}}
	k.crossView = k.keptCrossView
	if s != nil {
		k.losses = func() uint64 {
			l, err := s.Losses()
			if err != nil {
				return 0
			}
			return l.Total()
		}
	}
	if o.reconcile > 0 {
		k.ticker = time.NewTicker(o.reconcile)
	}
	return k
}

// tick fires when a reconciliation is due (never when turned off).
func (k *residentKeeper) tick() <-chan time.Time {
	if k.ticker == nil {
		return nil
	}
	return k.ticker.C
}

func (k *residentKeeper) stop() {
	if k.ticker != nil {
		k.ticker.Stop()
	}
	if k.iter != nil {
		k.iter.Close()
		k.iter = nil
	}
}

// keptCrossView compares the views with one iterator program, loaded at
// the first check and kept until stop: a reconciliation then loads no
// program of its own. If it cannot be loaded, each check tries again.
func (k *residentKeeper) keptCrossView() (*inventory.Views, []inventory.Hidden, error) {
	if k.iter == nil {
		it, err := inventory.NewProgIterator()
		if err != nil {
			return inventory.CrossView()
		}
		k.iter = it
	}
	return inventory.CrossViewWith(k.iter)
}

// drain handles the events already waiting in the sensor's channel, so a
// pass never judges ids whose prog_load is queued behind it.
func (k *residentKeeper) drain(events <-chan *sensor.Event, handle func(*sensor.Event)) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			k.observe(ev)
			handle(ev)
		default:
			return
		}
	}
}

// drainDelivered is drain up to the sensor's mark delivered (Sensor.Delivered):
// it handles events until every record the hooks wrote before the mark was
// taken has been delivered, then what is queued. A bracket run is judged
// after it, so an inner load the load hook reported (LSM hooks) is seen,
// not reported a second time: records still in the sensor's ring or
// reader are not in the channel yet, which drain alone misses.
func (k *residentKeeper) drainDelivered(events <-chan *sensor.Event, delivered <-chan struct{}, handle func(*sensor.Event)) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			k.observe(ev)
			handle(ev)
		case <-delivered:
			k.drain(events, handle)
			return
		}
	}
}

// observe notes a program id the load hook reported.
func (k *residentKeeper) observe(ev *sensor.Event) {
	if p := ev.Program; p != nil && p.Kernel != nil && p.Kernel.ID != 0 {
		k.seen[p.Kernel.ID] = true
		delete(k.pending, p.Kernel.ID)
	}
}

// start reports every program loaded now as prog_present.
func (k *residentKeeper) start() {
	if k.losses != nil {
		k.lost = k.losses()
	}
	inv, err := k.scan(&inventory.Options{Root: k.root})
	if err != nil {
		slog.Error("inventory at start: resident programs not reported", "err", err)
		return
	}
	k.report(output.KindProgPresent, inv)
	k.checkHidden()
}

// checkHidden compares GET_NEXT_ID with the kernel-side views and reports
// each new finding once as prog_hidden, with the program's analysis and
// verdict when it can be read by id.
func (k *residentKeeper) checkHidden() {
	if k.crossView == nil {
		return
	}
	v, found, err := k.crossView()
	if err != nil {
		slog.Warn("hidden-program check", "err", err)
		return
	}
	if v != nil && v.IterErr != nil {
		slog.Warn("hidden-program check: bpf_iter view unavailable", "err", v.IterErr)
	}
	for _, h := range found {
		key := fmt.Sprint(h.ID, h.Tag, h.Name, h.SeenBy, h.MissingFrom)
		if k.hidden[key] {
			continue
		}
		k.hidden[key] = true
		in := output.ProgLoad{Time: time.Now()}
		if h.ID != 0 {
			if inv, err := k.scan(&inventory.Options{Root: k.root, Programs: map[uint32]bool{h.ID: true}}); err == nil && len(inv.Programs) == 1 && inv.Programs[0].Prog != nil {
				p := &inv.Programs[0]
				aopts := &analysis.Options{}
				if ks, err := readCalledKallsyms(inv); err == nil {
					aopts.Kallsyms = ks
				}
				r, v, kf := judgeScanned(p, k.set(), aopts)
				in.Program, in.Report, in.Verdict = p.Prog, r, outputVerdict(v)
				ins, _ := p.Prog.Decode()
				for _, x := range ins {
					in.Disasm = append(in.Disasm, fmt.Sprintf("%d: %s", x.Index, kf.Format(x)))
				}
			}
		}
		ev := output.NewHidden(in, output.Hidden(h), k.insns)
		k.emit(ev)
		if k.text != nil {
			fmt.Fprintf(k.text, "%s prog_hidden %s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), hiddenText(h))
		}
	}
}

// onLossCheck starts a reconciliation pass when records were lost since the
// last check: a lost prog_load is exactly what the pass catches.
func (k *residentKeeper) onLossCheck() {
	if k.losses == nil {
		return
	}
	if n := k.losses(); n > k.lost {
		k.lost = n
		slog.Info("records lost: reconciling the inventory")
		k.reconcile()
	}
}

// reconcile runs one pass: promote last pass's candidates that are still
// unreported to prog_unseen, and collect new candidates.
func (k *residentKeeper) reconcile() {
	ids, err := k.listIDs()
	if err != nil {
		slog.Warn("reconcile inventory", "err", err)
		return
	}
	now := time.Now()
	live := make(map[uint32]bool, len(ids))
	confirm := map[uint32]bool{}
	for _, id := range ids {
		live[id] = true
		switch {
		case k.seen[id]:
		case !k.pending[id].IsZero():
			confirm[id] = true
		default:
			k.pending[id] = now
		}
	}
	for id := range k.seen { // ids are not reused before 2^31 loads: forget the unloaded
		if !live[id] {
			delete(k.seen, id)
		}
	}
	for id := range k.pending {
		if !live[id] || confirm[id] {
			delete(k.pending, id)
		}
	}
	k.checkHidden()
	if len(confirm) == 0 {
		return
	}
	inv, err := k.scan(&inventory.Options{Root: k.root, Programs: confirm})
	if err != nil {
		slog.Warn("reconcile inventory", "err", err)
		return
	}
	k.report(output.KindProgUnseen, inv)
}

// report judges and emits one event per program of inv.
func (k *residentKeeper) report(kind output.Kind, inv *inventory.Inventory) {
	for _, pr := range inv.Problems {
		slog.Warn("inventory", "problem", pr)
	}
	aopts := &analysis.Options{}
	if ks, err := readCalledKallsyms(inv); err == nil {
		aopts.Kallsyms = ks
	}
	links := map[uint32]inventory.Link{}
	for _, l := range inv.Links {
		links[l.ID] = l
	}
	set := k.set()
	for i := range inv.Programs {
		p := &inv.Programs[i]
		k.seen[p.ID] = true
		ev := k.event(kind, p, links, set, aopts)
		k.emit(ev)
		if k.text != nil {
			fmt.Fprintln(k.text, residentLine(ev))
		}
	}
}

func (k *residentKeeper) event(kind output.Kind, p *inventory.Program, links map[uint32]inventory.Link, set *rules.Set, aopts *analysis.Options) *output.Event {
	res := output.Resident{LoadedAt: p.LoadTime, UID: p.CreatedByUID, Pinned: p.Pins}
	for _, h := range p.Holders {
		res.Holders = append(res.Holders, output.Holder(h))
	}
	for _, id := range p.Links {
		l := links[id]
		res.Links = append(res.Links, output.ResidentLink{ID: id, Type: l.Type, Target: l.Target})
	}
	in := output.ProgLoad{Time: time.Now(), Program: p.Prog}
	if p.Prog == nil {
		// Unreadable: report what the id says, and why.
		in.Program = residentStub(p)
		ev := output.NewResident(kind, in, res, output.InsnOptions{})
		return ev
	}
	r, v, kf := judgeScanned(p, set, aopts)
	in.Report = r
	verdict := outputVerdict(v)
	in.Verdict = verdict
	ins, _ := p.Prog.Decode()
	in.Disasm = make([]string, len(ins))
	for i, x := range ins {
		in.Disasm[i] = fmt.Sprintf("%d: %s", x.Index, kf.Format(x))
	}
	if verdict.Action == "block" {
		res.Response = k.respond(p, links)
		if res.Response.Action != "alert" && len(res.Response.Done) > 0 {
			verdict.EnforcedBy = res.Response.Action
		}
	}
	return output.NewResident(kind, in, res, k.insns)
}

// respond applies --resident-block to a blocked resident program. It never
// signals itself or pid 1, and says what keeps the program loaded.
func (k *residentKeeper) respond(p *inventory.Program, links map[uint32]inventory.Link) *output.ResidentAction {
	a := &output.ResidentAction{Action: k.opts.block}
	for _, pin := range p.Pins {
		a.Survives = append(a.Survives, "pinned at "+pin)
	}
	switch k.opts.block {
	case "detach":
		for _, id := range p.Links {
			if err := inventory.DetachLink(id); err != nil {
				a.Failed = append(a.Failed, err.Error())
				continue
			}
			a.Done = append(a.Done, fmt.Sprintf("detached link %d (%s)", id, links[id].Target))
		}
		a.Survives = append(a.Survives, "attachments made without a link (socket filters, legacy tc/xdp, perf ioctl) are not detached")
		if len(p.Holders) > 0 {
			a.Survives = append(a.Survives, fmt.Sprintf("%d processes hold its fds", len(p.Holders)))
		}
	case "kill-holders":
		type target struct {
			h   inventory.Holder
			key string
			id  uint32
		}
		var ts []target
		for _, h := range p.Holders {
			ts = append(ts, target{h, "prog_id", p.ID})
		}
		for _, id := range p.Links {
			for _, h := range links[id].Holders {
				ts = append(ts, target{h, "link_id", id})
			}
		}
		killed := map[uint32]bool{}
		for _, t := range ts {
			switch {
			case killed[t.h.PID]:
			case t.h.PID == k.self || t.h.PID == 1:
				a.Survives = append(a.Survives, fmt.Sprintf("pid %d (%s) is not killed", t.h.PID, t.h.Comm))
			default:
				if err := inventory.KillHolder(k.root, t.h, t.key, t.id); err != nil {
					a.Failed = append(a.Failed, err.Error())
					continue
				}
				killed[t.h.PID] = true
				a.Done = append(a.Done, fmt.Sprintf("killed pid %d (%s)", t.h.PID, t.h.Comm))
			}
		}
	}
	return a
}

// residentStub stands for a program that could not be read: its id, and
// the reason in origin.
func residentStub(p *inventory.Program) *program.Program {
	return &program.Program{Source: program.SourceKernel, Origin: fmt.Sprintf("prog id %d: %s", p.ID, p.Unreadable),
		Name: p.Name, Type: p.Type, Kernel: &program.Kernel{ID: p.ID, Tag: p.Tag}}
}

// outputVerdict maps a rules verdict (nil: no rules) into the event schema.
func outputVerdict(v *rules.Verdict) *output.Verdict {
	out := &output.Verdict{Action: "allow", Rules: []output.RuleMatch{}}
	if v == nil {
		return out
	}
	if a := v.Action.String(); a == "alert" || a == "block" {
		out.Action = a
	}
	for _, h := range v.Hits {
		why := make([]string, len(h.Why))
		for i, r := range h.Why {
			why[i] = r.String()
		}
		out.Rules = append(out.Rules, output.RuleMatch{ID: h.ID, Action: h.Action.String(), Severity: h.Severity.String(),
			Tags: h.Tags, Why: strings.Join(why, "; ")})
	}
	return out
}

// residentLine is run --format text's line for prog_present / prog_unseen.
func residentLine(ev *output.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	fmt.Fprintf(&b, " %s", ev.Event)
	if p := ev.Prog; p != nil {
		fmt.Fprintf(&b, " prog=%q type=%s", p.Name, p.Type.Name)
		if p.Kernel != nil {
			fmt.Fprintf(&b, " id=%d tag=%s", p.Kernel.ID, p.Kernel.Tag)
		}
		if ev.Analysis == nil {
			fmt.Fprintf(&b, " unreadable=%q", p.Origin)
		}
	}
	if r := ev.Resident; r != nil {
		for _, h := range r.Holders {
			fmt.Fprintf(&b, " holder=%d:%q", h.PID, h.Comm)
		}
		if r.Response != nil {
			fmt.Fprintf(&b, " response=%s done=%q failed=%q", r.Response.Action, r.Response.Done, r.Response.Failed)
		}
	}
	if v := ev.Verdict; v != nil && len(v.Rules) > 0 {
		ids := make([]string, len(v.Rules))
		for i, r := range v.Rules {
			ids[i] = r.ID + ":" + r.Action
		}
		fmt.Fprintf(&b, " rules=%s", strings.Join(ids, ","))
	}
	return b.String()
}

// textOut is where run --format text writes its lines; nil for json.
func textOut(cmd *cobra.Command, o *runOptions) io.Writer {
	if o.format != "text" {
		return nil
	}
	return cmd.OutOrStdout()
}
