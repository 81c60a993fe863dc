package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/policy"
)

func newAllowlistCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "allowlist",
		Short: "List, diff, approve, prune and publish the fingerprints `run --mode lock` lets load",
		Long: `An allowlist is a YAML file of program fingerprints (the kernel's instruction
hash of a program as submitted, 0x and 16 hex digits) that ` + "`run --mode learn`" + `
writes and ` + "`run --mode lock`" + ` enforces in the kernel (docs/FLEET.md).`,
	}
	cmd.AddCommand(newAllowlistListCmd(), newAllowlistDiffCmd(), newAllowlistApproveCmd(), newAllowlistPruneCmd(), newAllowlistPublishCmd())
	return cmd
}

// escapedEntry is an entry with every string from a loader escaped, for
// output.
func escapedEntry(e allowlist.Entry) allowlist.Entry {
	e.Name, e.Type, e.Tag, e.Note = output.Escape(e.Name), output.Escape(e.Type), output.Escape(e.Tag), output.Escape(e.Note)
	lds := make([]allowlist.Loader, len(e.Loaders))
	for i, l := range e.Loaders {
		l.Exe = output.Escape(l.Exe)
		lds[i] = l
	}
	e.Loaders = lds
	return e
}

func escapedEntries(es []allowlist.Entry) []allowlist.Entry {
	out := make([]allowlist.Entry, len(es))
	for i, e := range es {
		out[i] = escapedEntry(e)
	}
	return out
}

// entryLine is one entry in text: fingerprint, type, name and loaders
// quoted (%q escapes whatever a loader chose).
func entryLine(e allowlist.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-14s %-18q", e.Fingerprint, e.Type, e.Name)
	if e.Count > 0 {
		fmt.Fprintf(&b, " seen=%d", e.Count)
	}
	if !e.LastSeen.IsZero() {
		fmt.Fprintf(&b, " last=%s", e.LastSeen.UTC().Format(time.RFC3339))
	}
	if e.Source != "" {
		fmt.Fprintf(&b, " source=%s", e.Source)
	}
	if e.Tag != "" {
		fmt.Fprintf(&b, " tag=%s", e.Tag)
	}
	for _, l := range e.Loaders {
		fmt.Fprintf(&b, " loader=%q", l.Exe)
	}
	if e.Note != "" {
		fmt.Fprintf(&b, " note=%q", e.Note)
	}
	return b.String()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newAllowlistListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list FILE",
		Short: "Show the entries of an allowlist",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := allowlist.Load(args[0])
			if err != nil {
				return err
			}
			l.Sort()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), &allowlist.List{Version: l.Version, Entries: escapedEntries(l.Entries)})
			}
			w := cmd.OutOrStdout()
			for _, e := range l.Entries {
				fmt.Fprintln(w, entryLine(e))
			}
			fmt.Fprintf(w, "%d entries\n", len(l.Entries))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON instead of text")
	return cmd
}

// loadedDiff is an allowlist against the programs loaded now, matched by
// kernel tag: the scan sees the kernel's rewritten instructions, whose
// fingerprint differs from the submitted one, but the tag the kernel
// computed at load time is the one learn mode recorded.
type loadedDiff struct {
	NotListed []loadedProg      `json:"loaded_not_listed"`
	NotLoaded []allowlist.Entry `json:"listed_not_loaded"`
	NoTag     []allowlist.Entry `json:"listed_without_tag"`
}

type loadedProg struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Tag  string `json:"tag"`
}

func newAllowlistDiffCmd() *cobra.Command {
	var asJSON, loaded bool
	cmd := &cobra.Command{
		Use:   "diff A [B] | diff A --loaded",
		Short: "Compare two allowlists, or an allowlist with the programs loaded now",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := allowlist.Load(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if loaded {
				if len(args) != 1 {
					return errors.New("--loaded compares one allowlist with the kernel: give one file")
				}
				d, err := diffAgainstLoaded(a)
				if err != nil {
					return err
				}
				if asJSON {
					d.NotLoaded, d.NoTag = escapedEntries(d.NotLoaded), escapedEntries(d.NoTag)
					return writeJSON(w, d)
				}
				for _, p := range d.NotListed {
					fmt.Fprintf(w, "+ loaded, not listed: id %d %s %q tag %s\n", p.ID, p.Type, p.Name, p.Tag)
				}
				for _, e := range d.NotLoaded {
					fmt.Fprintf(w, "- listed, not loaded: %s\n", entryLine(e))
				}
				for _, e := range d.NoTag {
					fmt.Fprintf(w, "? listed without a tag (approved, never seen loading): %s\n", entryLine(e))
				}
				fmt.Fprintf(w, "%d loaded programs not on the list, %d entries not loaded, %d without a tag\n", len(d.NotListed), len(d.NotLoaded), len(d.NoTag))
				return nil
			}
			if len(args) != 2 {
				return errors.New("give two allowlists, or one and --loaded")
			}
			b, err := allowlist.Load(args[1])
			if err != nil {
				return err
			}
			d := allowlist.Diff(a, b)
			if asJSON {
				return writeJSON(w, allowlist.Difference{Added: escapedEntries(d.Added), Removed: escapedEntries(d.Removed)})
			}
			for _, e := range d.Added {
				fmt.Fprintf(w, "+ %s\n", entryLine(e))
			}
			for _, e := range d.Removed {
				fmt.Fprintf(w, "- %s\n", entryLine(e))
			}
			fmt.Fprintf(w, "%d added, %d removed\n", len(d.Added), len(d.Removed))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON instead of text")
	cmd.Flags().BoolVar(&loaded, "loaded", false, "compare with the programs loaded now (scan; needs root), by kernel tag")
	return cmd
}

// eventEntries reads prog_load events (JSON lines, as `run` writes them)
// and makes an entry of each that carries a fingerprint.
func eventEntries(path string, blockedOnly bool) ([]allowlist.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readEventEntries(path, f, blockedOnly)
}

// readEventEntries is eventEntries on a reader; path names it in errors.
func readEventEntries(path string, r io.Reader, blockedOnly bool) ([]allowlist.Entry, error) {
	var out []allowlist.Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var ev struct {
			Event string `json:"event"`
			Time  time.Time
			Prog  *struct {
				Name     string                `json:"name"`
				Type     struct{ Name string } `json:"type"`
				SHA256   string                `json:"sha256"`
				InsnHash string                `json:"insn_hash"`
				Kernel   *struct{ Tag string } `json:"kernel"`
			} `json:"prog"`
			Loader *struct {
				Exe string `json:"exe"`
			} `json:"loader"`
			Verdict *struct {
				Action string `json:"action"`
			} `json:"verdict"`
			ECS *json.RawMessage `json:"ebpf_sentry"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if ev.ECS != nil {
			return nil, fmt.Errorf("%s:%d: an ECS event; approve from the native events (--format json without --output-format ecs)", path, line)
		}
		if ev.Event != "prog_load" || ev.Prog == nil || ev.Prog.InsnHash == "" {
			continue
		}
		if blockedOnly && (ev.Verdict == nil || ev.Verdict.Action != "block") {
			continue
		}
		fp, err := allowlist.ParseFingerprint(ev.Prog.InsnHash)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: prog.insn_hash: %w", path, line, err)
		}
		e := allowlist.Entry{Fingerprint: fp, Name: ev.Prog.Name, Type: ev.Prog.Type.Name, SHA256: ev.Prog.SHA256}
		if ev.Prog.Kernel != nil {
			e.Tag = ev.Prog.Kernel.Tag
		}
		if ev.Loader != nil && ev.Loader.Exe != "" {
			e.Loaders = []allowlist.Loader{{Exe: ev.Loader.Exe}}
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// loadOrNew reads the list at path, or starts one if there is none.
func loadOrNew(path string) (*allowlist.List, error) {
	l, err := allowlist.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return allowlist.New(), nil
	}
	return l, err
}

func newAllowlistApproveCmd() *cobra.Command {
	var fps []string
	var events, name, note, learnedURL, learnedBucket string
	var blockedOnly bool
	nopts := output.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "approve FILE (--fingerprint 0x… | --events EVENTS.json)",
		Short: "Add fingerprints to an allowlist (created if absent)",
		Long: `Add fingerprints given on the command line (--fingerprint, from an event's
prog.insn_hash or a text line's fingerprint=) or every prog_load event of a
file of saved events (--events; --blocked-only keeps those that were blocked,
e.g. by lock mode). The file is rewritten atomically.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := loadOrNew(args[0])
			if err != nil {
				return err
			}
			var add []allowlist.Entry
			for _, s := range fps {
				fp, err := allowlist.ParseFingerprint(s)
				if err != nil {
					return fmt.Errorf("--fingerprint: %w", err)
				}
				add = append(add, allowlist.Entry{Fingerprint: fp, Name: name, Note: note})
			}
			if events != "" {
				es, err := eventEntries(events, blockedOnly)
				if err != nil {
					return fmt.Errorf("--events: %w", err)
				}
				for i := range es {
					es[i].Note = note
				}
				add = append(add, es...)
			}
			if learnedURL != "" {
				es, err := learnedEntries(cmd.Context(), learnedURL, learnedBucket, nopts.NATS)
				if err != nil {
					return fmt.Errorf("--learned: %w", err)
				}
				for i := range es {
					if note != "" {
						es[i].Note = note
					}
				}
				add = append(add, es...)
			}
			if len(add) == 0 {
				return errors.New("nothing to approve: give --fingerprint, --events (with prog_load events that carry prog.insn_hash) or --learned")
			}
			n, err := l.Approve(add, time.Now().UTC())
			if err != nil {
				return err
			}
			if err := l.Save(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %d new fingerprints (%d given); %s has %d entries\n", n, len(add), args[0], len(l.Entries))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&fps, "fingerprint", nil, "a fingerprint to allow, 0x and up to 16 hex digits; repeatable")
	f.StringVar(&events, "events", "", "a file of saved events (JSON lines): approve each prog_load's prog.insn_hash")
	f.BoolVar(&blockedOnly, "blocked-only", false, "with --events: only the loads whose verdict was block")
	f.StringVar(&name, "name", "", "with --fingerprint: the program's name, for people")
	f.StringVar(&note, "note", "", "a note kept with the new entries (why they are allowed)")
	f.StringVar(&learnedURL, "learned", "", "NATS servers (nats://HOST:PORT[,…]) of a bucket that agents learn into (run --mode learn --allowlist nats-kv://BUCKET): merge every host's learned list")
	f.StringVar(&learnedBucket, "bucket", "", "with --learned: the bucket")
	addNATSConnFlags(f, &nopts.NATS)
	return cmd
}

func newAllowlistPruneCmd() *cobra.Command {
	var before string
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "prune FILE --before DATE",
		Short: "Remove entries not seen since DATE (2026-01-31, RFC 3339, or an age: 30d, 720h)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := allowlist.ParseDate(before, time.Now().UTC())
			if err != nil {
				return fmt.Errorf("--before: %w", err)
			}
			l, err := allowlist.Load(args[0])
			if err != nil {
				return err
			}
			gone := l.Prune(t)
			if !dryRun && len(gone) > 0 {
				if err := l.Save(args[0]); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, struct {
					Removed []allowlist.Entry `json:"removed"`
					Kept    int               `json:"kept"`
					DryRun  bool              `json:"dry_run"`
				}{escapedEntries(gone), len(l.Entries), dryRun})
			}
			for _, e := range gone {
				fmt.Fprintf(w, "- %s\n", entryLine(e))
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(w, "%s %d entries last seen before %s; %d kept\n", verb, len(gone), t.Format(time.RFC3339), len(l.Entries))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&before, "before", "", "cut-off: entries last seen before it go")
	f.BoolVar(&dryRun, "dry-run", false, "say what would go, change nothing")
	f.BoolVar(&asJSON, "json", false, "JSON instead of text")
	_ = cmd.MarkFlagRequired("before")
	return cmd
}

func newAllowlistPublishCmd() *cobra.Command {
	var keyFile, natsURL, bucket, name string
	var replicas int
	nopts := output.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "publish FILE --key K --nats URL --bucket B",
		Short: "Sign an allowlist and put it in a JetStream KV bucket for agents in lock mode",
		Long: `Validate FILE, sign it with the ed25519 key K (the rule bundles' envelope, one
file named allowlist.yaml) and put it under --name in --bucket. Agents running
--mode lock --allowlist nats-kv://BUCKET/NAME with the matching --policy-key
install it; anything unsigned or signed by another key is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			l, err := allowlist.Parse(args[0], data)
			if err != nil {
				return err
			}
			b := &policy.Bundle{Version: 1, Serial: time.Now().UnixNano(), Files: []policy.File{{Name: allowlistFile, Data: data}}}
			rev, key, err := signAndPublish(cmd.Context(), keyFile, natsURL, nopts.NATS, bucket, name, replicas, b)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %d fingerprints as %s/%s revision %d, serial %d, key id %s\n",
				len(l.Entries), bucket, name, rev, b.Serial, policy.KeyID(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "ed25519 private key (PEM, from `rules keygen`)")
	f.StringVar(&natsURL, "nats", "", "NATS servers, nats://HOST:PORT[,HOST:PORT…]")
	f.StringVar(&bucket, "bucket", "", "JetStream KV bucket")
	f.StringVar(&name, "name", "allowlist", "key in the bucket")
	f.IntVar(&replicas, "replicas", 1, "replicas of the bucket if it is created")
	addNATSConnFlags(f, &nopts.NATS)
	for _, req := range []string{"key", "nats", "bucket"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// learnedEntries reads every host's learned list from the bucket and
// returns their entries, loaders merged per fingerprint.
func learnedEntries(ctx context.Context, urlList, bucket string, nopts output.NATSOptions) ([]allowlist.Entry, error) {
	if bucket == "" {
		return nil, errors.New("give --bucket")
	}
	urls, err := output.ParseNATSURLs(urlList)
	if err != nil {
		return nil, err
	}
	auth, err := output.NATSAuthOptions(nopts)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(urls, ","), auth...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, learnedPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	merged := allowlist.New()
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", bucket, key, err)
		}
		l, err := allowlist.Parse(bucket+"/"+key, e.Value())
		if err != nil {
			return nil, err
		}
		for _, le := range l.Entries {
			for _, ld := range append([]allowlist.Loader{{}}, le.Loaders...) {
				merged.Record(allowlist.Observation{Fingerprint: le.Fingerprint, Name: le.Name, Type: le.Type, Tag: le.Tag,
					SHA256: le.SHA256, Loader: ld, Time: le.LastSeen})
			}
		}
	}
	return merged.Entries, nil
}

// allowlistFile is the name of the allowlist inside a signed fleet bundle.
const allowlistFile = "allowlist.yaml"

// learnedPrefix is where agents in learn mode put what they saw, one key
// per host, unsigned: observations for an operator to review and merge
// (allowlist approve --learned), never applied by an agent.
const learnedPrefix = "learned."
