//go:build linux && amd64

package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/policy"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// Learn-then-lock (docs/FLEET.md): `run --mode learn` records what loads into
// --allowlist; `run --mode lock` enforces it in the kernel.

const defaultAllowlist = "/var/lib/ebpf-sentry/allowlist.yaml"

type lockFlags struct {
	path   string
	cgroup string
	flush  time.Duration
}

func addLockFlags(f *pflag.FlagSet) *lockFlags {
	l := &lockFlags{}
	f.StringVar(&l.path, "allowlist", defaultAllowlist, "--mode learn|lock: the allowlist file (YAML, docs/FLEET.md), or nats-kv://BUCKET[/KEY] with the --policy-* flags: lock follows the signed list under KEY (default allowlist), learn puts what it learns under learned.HOST")
	f.StringVar(&l.cgroup, "lock-cgroup", "", "--mode lock: lock only loaders in this cgroup v2 directory (exactly it, not its children); default every loader")
	f.DurationVar(&l.flush, "allowlist-flush", 5*time.Second, "--mode learn: write what was learned this often (and at exit)")
	return l
}

// allowlistRun is the allowlist side of one `run`: the list in force, what
// learn mode adds to it, and the reloads of lock mode.
type allowlistRun struct {
	mode    string // learn | lock
	path    string // the file, or "" for a fleet bucket
	source  string // what events name as the source
	list    *allowlist.List
	dirty   bool
	stamp   string
	poll    time.Duration
	updates chan allowlistUpdate
	flushT  *time.Ticker
	cancel  context.CancelFunc
	self    int
	// learned, in learn mode with a bucket, puts the list there.
	learned func(*allowlist.List) error
	closeNC func()
}

type allowlistUpdate struct {
	list   *allowlist.List
	err    error
	reason string
	commit func() error // makes the list the cached one, once installed
}

// openAllowlist prepares learn or lock mode before the sensor starts: in
// lock mode cfg carries the list so that it is in the kernel before the
// hooks attach. It returns nil for enforce and monitor.
func openAllowlist(o *runOptions, cfg *sensor.Config, nopts output.NATSOptions) (*allowlistRun, error) {
	if o.mode != "learn" && o.mode != "lock" {
		if o.lock.cgroup != "" {
			return nil, errors.New("--lock-cgroup needs --mode lock")
		}
		return nil, nil
	}
	a := &allowlistRun{mode: o.mode, poll: o.rulesPoll, updates: make(chan allowlistUpdate, 1), self: os.Getpid()}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	if strings.HasPrefix(o.lock.path, "nats-kv://") && o.mode == "learn" {
		if err := a.openFleetLearn(o, nopts); err != nil {
			cancel()
			return nil, err
		}
	} else if strings.HasPrefix(o.lock.path, "nats-kv://") {
		if err := a.openFleet(ctx, o, nopts); err != nil {
			cancel()
			return nil, err
		}
	} else {
		a.path, a.source = o.lock.path, o.lock.path
		l, err := allowlist.Load(a.path)
		switch {
		case err == nil:
			a.list = l
		case o.mode == "learn" && errors.Is(err, os.ErrNotExist):
			a.list = allowlist.New()
		default:
			cancel()
			return nil, fmt.Errorf("--allowlist: %w", err)
		}
		a.stamp, _ = fileStamp(a.path)
	}
	if o.mode == "learn" {
		a.flushT = time.NewTicker(o.lock.flush)
		return a, nil
	}
	cfg.Lock = true
	cfg.Allowlist = a.list.Fingerprints()
	// A load the kernel cannot judge has no fingerprint: lock fails closed.
	cfg.OnError = sensor.OnErrorBlock
	if o.lock.cgroup != "" {
		var st syscall.Stat_t
		if err := syscall.Stat(o.lock.cgroup, &st); err != nil {
			cancel()
			return nil, fmt.Errorf("--lock-cgroup: %w", err)
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(o.lock.cgroup, &fs); err != nil || fs.Type != 0x63677270 /* CGROUP2_SUPER_MAGIC */ {
			cancel()
			return nil, fmt.Errorf("--lock-cgroup %s: not a cgroup v2 directory", o.lock.cgroup)
		}
		cfg.LockCgroup = st.Ino
	}
	if a.path != "" && a.poll > 0 {
		go a.watchFile(ctx)
	}
	return a, nil
}

func fileStamp(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	var ino uint64
	if sys != nil {
		ino = sys.Ino
	}
	return fmt.Sprintf("%d/%d/%d", st.ModTime().UnixNano(), st.Size(), ino), nil
}

// watchFile reloads the file when it changes (an editor's rename included).
func (a *allowlistRun) watchFile(ctx context.Context) {
	t := time.NewTicker(a.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := fileStamp(a.path)
		if err == nil && stamp == a.stamp {
			continue
		}
		a.stamp = stamp
		u := allowlistUpdate{reason: "allowlist file changed"}
		u.list, u.err = allowlist.Load(a.path)
		select {
		case a.updates <- u:
		case <-ctx.Done():
			return
		}
	}
}

// reload is SIGHUP's: the file read again now.
func (a *allowlistRun) reload() allowlistUpdate {
	if a.path == "" {
		return allowlistUpdate{list: a.list, reason: "SIGHUP"}
	}
	l, err := allowlist.Load(a.path)
	return allowlistUpdate{list: l, err: err, reason: "SIGHUP"}
}

// Updates delivers reloads; nil (never ready) when there are none.
func (a *allowlistRun) Updates() <-chan allowlistUpdate {
	if a == nil || a.mode != "lock" {
		return nil
	}
	return a.updates
}

// Flush is learn mode's ticker; nil otherwise.
func (a *allowlistRun) Flush() <-chan time.Time {
	if a == nil || a.flushT == nil {
		return nil
	}
	return a.flushT.C
}

// apply installs a reloaded list in the kernel, atomically, or keeps the
// one in force and says why. Called on the run loop.
func (a *allowlistRun) apply(s *sensor.Sensor, tel *telemetry, u allowlistUpdate) {
	err := u.err
	if err == nil {
		err = s.SetAllowlist(u.list.Fingerprints())
	}
	if err == nil && u.commit != nil {
		if cerr := u.commit(); cerr != nil {
			slog.Warn("allowlist: cache the installed list", "err", cerr)
		}
	}
	if err != nil {
		slog.Error("reload allowlist: keeping the one in force", "reason", u.reason, "entries", len(a.list.Entries), "err", err)
		tel.Pipeline.Emit(output.RulesRejected(output.Rules{Source: "allowlist " + a.source, Count: len(a.list.Entries), Error: err.Error()}))
		return
	}
	a.list = u.list
	slog.Info("allowlist reloaded", "reason", u.reason, "source", a.source, "entries", len(a.list.Entries))
	tel.Pipeline.Emit(output.RulesReloaded(output.Rules{Source: "allowlist " + a.source, Count: len(a.list.Entries)}))
}

// observe records, in learn mode, a load that the kernel accepted and
// walked whole. The agent's own loads are not learned: lock spares them by
// identity.
func (a *allowlistRun) observe(ev *sensor.Event, rep *analysis.Report) {
	if a == nil || a.mode != "learn" || ev.Outcome.Result != sensor.ResultLoaded || insnHash(ev) == 0 {
		return
	}
	p := ev.Program
	if p.Loader != nil && int(p.Loader.PID) == a.self {
		return
	}
	o := allowlist.Observation{Fingerprint: allowlist.Fingerprint(ev.InsnHash), Name: p.Name,
		Type: output.ProgTypeName(p.Type), Time: ev.Time}
	if rep != nil {
		o.SHA256 = rep.SHA256
	}
	if p.Kernel != nil {
		o.Tag = p.Kernel.Tag
	}
	if l := p.Loader; l != nil {
		o.Loader = allowlist.Loader{Exe: l.Exe, Inode: l.ExeInode, Dev: l.ExeDev, SHA256: l.ExeSHA256}
	}
	added, err := a.list.Record(o)
	if err != nil {
		slog.Warn("learn", "err", err)
		return
	}
	a.dirty = true
	if added {
		slog.Info("learned", "fingerprint", o.Fingerprint.String(), "prog", output.Escape(p.Name), "type", o.Type)
	}
}

// flush writes what learn mode recorded.
func (a *allowlistRun) flush() {
	if a == nil || a.mode != "learn" || !a.dirty {
		return
	}
	if a.learned != nil {
		if err := a.learned(a.list); err != nil {
			slog.Error("learn: put what was learned in the bucket", "to", a.source, "err", err)
			return
		}
	} else if err := a.list.Save(a.path); err != nil {
		slog.Error("learn: write the allowlist", "path", a.path, "err", err)
		return
	}
	a.dirty = false
	slog.Info("allowlist written", "to", a.source, "entries", len(a.list.Entries))
}

func (a *allowlistRun) close() {
	if a == nil {
		return
	}
	a.flush()
	a.cancel()
	if a.closeNC != nil {
		a.closeNC()
	}
	if a.flushT != nil {
		a.flushT.Stop()
	}
}

// openFleet boots lock mode from the signed list cached on disk (or an
// empty list: everything but the agent is blocked until one arrives) and
// follows the bucket.
func (a *allowlistRun) openFleet(ctx context.Context, o *runOptions, nopts output.NATSOptions) error {
	spec := o.lock.path
	if !strings.Contains(strings.TrimPrefix(spec, "nats-kv://"), "/") {
		spec += "/allowlist"
	}
	bucket, key, err := policy.ParseSpec(spec)
	if err != nil {
		return fmt.Errorf("--allowlist: %w", err)
	}
	keys, err := policy.ReadPublicKeys(o.policy.keys)
	if err != nil {
		return fmt.Errorf("--allowlist %s: %w", spec, err)
	}
	if o.policy.nats == "" {
		return fmt.Errorf("--allowlist %s needs --policy-nats", spec)
	}
	urls, err := output.ParseNATSURLs(o.policy.nats)
	if err != nil {
		return fmt.Errorf("--policy-nats: %w", err)
	}
	auth, err := output.NATSAuthOptions(nopts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.policy.cache, 0o700); err != nil {
		return fmt.Errorf("policy cache: %w", err)
	}
	f := &fleetAllowlist{keys: keys, cache: filepath.Join(o.policy.cache, "allowlist-"+bucket+"-"+key+".signed")}
	a.source = spec
	a.list = allowlist.New()
	if env, err := os.ReadFile(f.cache); err == nil {
		l, serial, err := f.verify(env)
		if err != nil {
			return fmt.Errorf("allowlist cache %s: %w", f.cache, err)
		}
		a.list = l
		f.serial.Store(serial)
		slog.Info("fleet allowlist", "booted_from", f.cache, "entries", len(l.Entries))
	} else {
		slog.Warn("fleet allowlist: no cached list yet; every load but the agent's is blocked until one arrives", "bucket", bucket, "key", key)
	}
	go func() {
		opts := append([]nats.Option{nats.Name("ebpf-sentry allowlist"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}, auth...)
		nc, err := nats.Connect(strings.Join(urls, ","), opts...)
		if err != nil {
			slog.Error("fleet allowlist", "err", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			slog.Error("fleet allowlist", "err", err)
			return
		}
		backoff := time.Second
		for ctx.Err() == nil {
			kv, err := js.KeyValue(ctx, bucket)
			if err == nil {
				err = f.follow(ctx, kv, key, a.updates)
			}
			if err != nil {
				slog.Warn("fleet allowlist: bucket unreachable, keeping the list in force", "bucket", bucket, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
	return nil
}

// fleetAllowlist verifies signed allowlist bundles (policy.Verify, the
// rule bundles' envelope: one file, allowlist.yaml) and caches the one in
// force.
type fleetAllowlist struct {
	keys   []ed25519.PublicKey
	cache  string
	serial atomic.Int64 // the list in force: written on the run loop, read by the watch
}

func (f *fleetAllowlist) verify(env []byte) (*allowlist.List, int64, error) {
	b, err := policy.Verify(env, f.keys)
	if err != nil {
		return nil, 0, err
	}
	if len(b.Files) != 1 || b.Files[0].Name != allowlistFile {
		return nil, 0, fmt.Errorf("an allowlist bundle holds exactly one file, %s", allowlistFile)
	}
	l, err := allowlist.Parse("bundle "+allowlistFile, b.Files[0].Data)
	if err != nil {
		return nil, 0, err
	}
	return l, b.Serial, nil
}

func (f *fleetAllowlist) follow(ctx context.Context, kv jetstream.KeyValue, key string, out chan<- allowlistUpdate) error {
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %s/%s: %w", kv.Bucket(), key, err)
	}
	defer w.Stop()
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil
		case v, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch %s/%s ended", kv.Bucket(), key)
			}
			if v == nil {
				continue
			}
			e = v
		}
		u := allowlistUpdate{reason: fmt.Sprintf("fleet allowlist %s/%s revision %d", kv.Bucket(), key, e.Revision())}
		var serial int64
		switch {
		case e.Operation() != jetstream.KeyValuePut:
			u.err = errors.New("allowlist deleted from the bucket: keeping the list in force")
		default:
			u.list, serial, u.err = f.verify(e.Value())
			if cur := f.serial.Load(); u.err == nil && serial < cur {
				u.err = fmt.Errorf("%w (serial %d < %d)", policy.ErrRollback, serial, cur)
			}
			if u.err == nil && serial == f.serial.Load() {
				continue // the list in force, seen again
			}
		}
		if u.err != nil {
			u.err = fmt.Errorf("%s rejected: %w", u.reason, u.err)
		} else {
			env := e.Value()
			u.commit = func() error {
				f.serial.Store(serial)
				tmp := f.cache + ".tmp"
				if err := os.WriteFile(tmp, env, 0o600); err != nil {
					return err
				}
				return os.Rename(tmp, f.cache)
			}
		}
		select {
		case out <- u:
		case <-ctx.Done():
			return nil
		}
	}
}

// openFleetLearn makes learn mode put its list under learned.HOST in the
// bucket (created if absent) at every flush.
func (a *allowlistRun) openFleetLearn(o *runOptions, nopts output.NATSOptions) error {
	bucket, _, err := policy.ParseSpec(o.lock.path)
	if err != nil {
		return fmt.Errorf("--allowlist: %w", err)
	}
	if o.policy.nats == "" {
		return fmt.Errorf("--allowlist %s needs --policy-nats", o.lock.path)
	}
	urls, err := output.ParseNATSURLs(o.policy.nats)
	if err != nil {
		return fmt.Errorf("--policy-nats: %w", err)
	}
	auth, err := output.NATSAuthOptions(nopts)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	key := learnedPrefix + kvToken(host)
	opts := append([]nats.Option{nats.Name("ebpf-sentry learn"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}, auth...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return fmt.Errorf("--policy-nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	a.closeNC = nc.Close
	a.list, a.source = allowlist.New(), o.lock.path+" key "+key
	a.learned = func(l *allowlist.List) error {
		data, err := l.Marshal()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 5})
		}
		if err != nil {
			return err
		}
		_, err = kv.Put(ctx, key, data)
		return err
	}
	slog.Info("learning into the fleet bucket", "bucket", bucket, "key", key)
	return nil
}

// kvToken makes s one KV key token.
func kvToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// lockCollision returns, in lock mode, the allowlist entry a load passed
// by its 64-bit fingerprint although its SHA-256 (over the instructions
// the kernel judged, captured whole) differs from the entry's: the
// fingerprint, which is invertible, was forged. nil otherwise (entries
// without a sha256 cannot be checked).
func (a *allowlistRun) lockCollision(ev *sensor.Event, rep *analysis.Report) *allowlist.Entry {
	if a == nil || a.mode != "lock" || a.list == nil || rep == nil || rep.SHA256 == "" || ev.Lock != sensor.LockListed ||
		ev.Outcome.Result != sensor.ResultLoaded || !ev.Complete() {
		return nil
	}
	e := a.list.Find(allowlist.Fingerprint(ev.InsnHash))
	if e == nil || e.SHA256 == "" || e.SHA256 == rep.SHA256 {
		return nil
	}
	return e
}

// stopCollision kills the loader of a load that fooled the lock (its pid,
// only while its executable is still the one the kernel named at the load,
// so a reused pid is spared) and says what happened, for a tamper event.
func stopCollision(ev *sensor.Event, rep *analysis.Report, e *allowlist.Entry) string {
	l := ev.Program.Loader
	action := "loader unknown: not killed"
	if l != nil && l.PID != 0 {
		var st syscall.Stat_t
		switch err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", l.PID), &st); {
		case err != nil:
			action = fmt.Sprintf("loader pid %d gone before the check (%v)", l.PID, err)
		case st.Ino != l.ExeInode:
			action = fmt.Sprintf("loader pid %d now runs another executable: not killed", l.PID)
		default:
			if err := syscall.Kill(int(l.PID), syscall.SIGKILL); err != nil {
				action = fmt.Sprintf("kill loader pid %d: %v", l.PID, err)
			} else {
				action = fmt.Sprintf("loader pid %d killed", l.PID)
			}
		}
	}
	id := uint32(0)
	if ev.Program.Kernel != nil {
		id = ev.Program.Kernel.ID
	}
	return fmt.Sprintf("fingerprint %#016x is listed for sha256 %s, but prog id %d (%s) has sha256 %s: a forged fingerprint passed the lock; %s %s after the load",
		ev.InsnHash, e.SHA256, id, output.Escape(ev.Program.Name), rep.SHA256, action, time.Since(ev.Time).Round(time.Microsecond))
}
