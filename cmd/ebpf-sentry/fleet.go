package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
	"github.com/ebpf-sentry/ebpf-sentry/fleet"
	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// fleetConn are the flags every fleet subcommand needs to reach the bus.
type fleetConn struct {
	nats, bucket string
	replicas     int
}

func (c *fleetConn) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.nats, "nats", "", "NATS servers, nats://HOST:PORT[,HOST:PORT…] (TLS and credentials: the --nats-* flags)")
	f.StringVar(&c.bucket, "bucket", "EBPF_SENTRY_FLEET", "JetStream KV bucket of the inventory")
	f.IntVar(&c.replicas, "replicas", 1, "replicas of the inventory bucket if it is created")
	_ = cmd.MarkFlagRequired("nats")
}

func (c *fleetConn) connect(ctx context.Context, nopts output.NATSOptions) (*nats.Conn, *fleet.Inventory, jetstream.JetStream, error) {
	urls, err := output.ParseNATSURLs(c.nats)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--nats: %w", err)
	}
	auth, err := output.NATSAuthOptions(nopts)
	if err != nil {
		return nil, nil, nil, err
	}
	nc, err := nats.Connect(strings.Join(urls, ","), append([]nats.Option{nats.Name("ebpf-sentry fleet"), nats.MaxReconnects(-1)}, auth...)...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	inv, err := fleet.OpenInventory(ctx, js, c.bucket, c.replicas)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return nc, inv, js, nil
}

func newFleetCmd() *cobra.Command {
	var c fleetConn
	var durable string
	cmd := &cobra.Command{
		Use:   "fleet --nats URL",
		Short: "Keep the fleet inventory of loaded programs from the event stream; raise fleet_first_seen",
		Long: `Consume the prog_load events that agents publish (run --output nats://…) into an
inventory kept in a JetStream KV bucket: per program fingerprint (sha256), the
hosts that loaded it with first and last time, its names and its loaders. A
fingerprint no host loaded before raises a fleet_first_seen event on --output.
Any number of fleet consumers may run: they share the durable consumer.`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlags(cmd.Flags())
	c.flags(cmd)
	cmd.Flags().StringVar(&durable, "durable", "ebpf-sentry-fleet", "name of the durable JetStream consumer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		nc, inv, js, err := c.connect(ctx, out.opts.NATS)
		if err != nil {
			return err
		}
		defer nc.Close()
		tel, err := out.start(slog.Default())
		if err != nil {
			return err
		}
		defer tel.close(5 * time.Second)
		n := out.opts.NATS
		return fleet.Consume(ctx, js, n.Stream, n.Subject, durable, inv, func(s fleet.Sighting) {
			tel.Pipeline.Emit(output.NewFleetFirstSeen(output.FleetFirstSeen{SHA256: s.SHA256, Name: s.Name, ProgType: s.ProgType,
				Host: s.Host, Time: s.Time, LoaderExe: s.LoaderExe, EventID: s.EventID}))
		}, func(err error) { slog.Warn("fleet: event skipped", "err", err) })
	}
	cmd.AddCommand(newFleetQueryCmd())
	return cmd
}

func newFleetQueryCmd() *cobra.Command {
	var c fleetConn
	var sha, name, host, fp string
	var asJSON bool
	nopts := output.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "query --nats URL (--sha256 HEX | --fingerprint 0x… | --name NAME | --host HOST) [--json]",
		Short: "Which hosts loaded a program, which programs a host loaded",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// One query per invocation, even when the command tree is reused.
			defer func() { sha, name, host, fp, asJSON = "", "", "", "", false }()
			set := 0
			for _, v := range []string{sha, name, host, fp} {
				if v != "" {
					set++
				}
			}
			if set != 1 {
				return errors.New("fleet query: give exactly one of --sha256, --fingerprint, --name, --host")
			}
			sha = strings.ToLower(sha)
			if sha != "" && (len(sha) < 8 || len(sha) > 64 || strings.Trim(sha, "0123456789abcdef") != "") {
				return fmt.Errorf("fleet query: --sha256 %q: want the program's sha256, 64 hex digits, or a prefix of at least 8", output.Escape(sha))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			nc, inv, _, err := c.connect(ctx, nopts.NATS)
			if err != nil {
				return err
			}
			defer nc.Close()
			var entries []*fleet.Entry
			switch {
			case len(sha) == 64:
				e, err := inv.Get(ctx, sha)
				if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
					return err
				}
				if e != nil {
					entries = append(entries, e)
				}
			case sha != "":
				// A prefix of the sha256: every entry is read.
				entries, err = inv.Find(ctx, func(e *fleet.Entry) bool { return strings.HasPrefix(e.SHA256, sha) })
			case fp != "":
				f, err := allowlist.ParseFingerprint(strings.ToLower(fp))
				if err != nil {
					return fmt.Errorf("fleet query: --fingerprint: %s", output.Escape(err.Error()))
				}
				want := f.String()
				entries, err = inv.Find(ctx, func(e *fleet.Entry) bool {
					i := sort.SearchStrings(e.Fingerprints, want)
					return i < len(e.Fingerprints) && e.Fingerprints[i] == want
				})
				if err != nil {
					return err
				}
			case name != "":
				entries, err = inv.Find(ctx, func(e *fleet.Entry) bool {
					i := sort.SearchStrings(e.Names, name)
					return i < len(e.Names) && e.Names[i] == name
				})
			default:
				entries, err = inv.Find(ctx, func(e *fleet.Entry) bool { return e.Hosts[host] != nil })
			}
			if err != nil {
				return err
			}
			if asJSON {
				if entries == nil {
					entries = []*fleet.Entry{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			writeFleetEntries(cmd.OutOrStdout(), entries)
			return nil
		},
	}
	c.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&sha, "sha256", "", "program sha256 (prog.sha256 of its events), or a prefix of at least 8 hex digits")
	f.StringVar(&fp, "fingerprint", "", "the kernel's instruction hash (prog.insn_hash of events, fingerprint= of text lines and allowlists), 0x and up to 16 hex digits")
	f.StringVar(&name, "name", "", "program name (exact)")
	f.StringVar(&host, "host", "", "host name as in events")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	addNATSFlags(f, &nopts)
	return cmd
}

// writeFleetEntries prints one block per fingerprint, one line per host.
func writeFleetEntries(w io.Writer, entries []*fleet.Entry) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "no program found")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The bucket holds what the consumer wrote (already escaped), but anyone
	// who can write to it could store anything: every string is made safe
	// for a terminal again (backslashes kept, so escaped text reads the same).
	esc := output.EscapeUnprintable
	join := func(l []string, sep string) string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = esc(s)
		}
		return strings.Join(out, sep)
	}
	for _, e := range entries {
		fmt.Fprintf(tw, "sha256 %s  names %s  types %s  first %s  last %s  hosts %d\n", esc(e.SHA256), join(e.Names, ","),
			join(e.ProgTypes, ","), e.FirstSeen.UTC().Format(time.RFC3339), e.LastSeen.UTC().Format(time.RFC3339), len(e.Hosts))
		if len(e.Fingerprints) > 0 {
			fmt.Fprintf(tw, "  fingerprints\t%s\n", join(e.Fingerprints, ", "))
		}
		if len(e.Loaders) > 0 {
			fmt.Fprintf(tw, "  loaders\t%s\n", join(e.Loaders, ", "))
		}
		for _, l := range e.LoaderIDs {
			fmt.Fprintf(tw, "  loader\t%s\tinode %d dev %d sha256 %s\n", esc(l.Exe), l.Inode, l.Dev, esc(l.SHA256))
		}
		if e.Omitted > 0 {
			fmt.Fprintf(tw, "  omitted\t%d names, types or loaders (lists full)\n", e.Omitted)
		}
		hosts := make([]string, 0, len(e.Hosts))
		for h := range e.Hosts {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			s := e.Hosts[h]
			fmt.Fprintf(tw, "  host %s\tfirst %s\tlast %s\tloads %d\n", esc(h), s.FirstSeen.UTC().Format(time.RFC3339), s.LastSeen.UTC().Format(time.RFC3339), s.Loads)
		}
	}
	tw.Flush()
}
