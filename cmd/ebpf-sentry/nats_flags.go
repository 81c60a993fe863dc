package main

import (
	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// addNATSFlags registers the settings of --output nats://… sinks.
func addNATSFlags(f *pflag.FlagSet, o *output.Options) {
	d := output.DefaultOptions()
	n := &o.NATS
	f.StringVar(&n.Stream, "nats-stream", d.NATS.Stream, "nats: JetStream stream the events go to")
	f.StringVar(&n.Subject, "nats-subject", d.NATS.Subject, "nats: subject prefix (events go to PREFIX.HOST.EVENT)")
	f.BoolVar(&n.CreateStream, "nats-create-stream", false, "nats: create the stream when it does not exist (limits retention, file storage, see docs/FLEET.md)")
	f.IntVar(&n.Replicas, "nats-replicas", d.NATS.Replicas, "nats: replicas of a stream --nats-create-stream creates")
	f.DurationVar(&n.MaxAge, "nats-max-age", d.NATS.MaxAge, "nats: how long a created stream keeps events")
	f.Int64Var(&n.MaxBytes, "nats-max-bytes", 0, "nats: most bytes a created stream keeps, oldest discarded (0: no limit)")
	f.DurationVar(&n.Duplicates, "nats-dedup-window", d.NATS.Duplicates, "nats: de-duplication window of a created stream (event ids published twice within it are stored once)")
	addNATSConnFlags(f, n)
	f.StringVar(&o.NATSSpoolBase, "nats-spool-dir", d.NATSSpoolBase, "nats: directory of the on-disk spool that keeps events during an outage (one subdirectory per --output)")
	f.Int64Var(&n.SpoolMax, "nats-spool-size", d.NATS.SpoolMax, "nats: bytes the spool may take; events beyond are dropped and counted (spool_full)")
	f.BoolVar(&n.SpoolFsync, "nats-spool-fsync", d.NATS.SpoolFsync, "nats: fdatasync every spool write (false: the kernel writes back; a power loss may lose the last seconds)")
	f.IntVar(&n.MaxInFlight, "nats-max-inflight", d.NATS.MaxInFlight, "nats: most events published and not yet acked (Send waits beyond; the window's bytes are also capped at --nats-spool-size); -1 waits for every batch's acks")
	f.IntVar(&n.Pack, "nats-pack", d.NATS.Pack, "nats: most events one JetStream message carries (events of one subject packed as JSON lines, header Ebpf-Sentry-Pack, see docs/FLEET.md); 1 publishes one message per event")
	f.IntVar(&n.PackBytes, "nats-pack-bytes", d.NATS.PackBytes, "nats: most bytes of one pack (at most half the servers' max_payload); a larger event goes alone")
	f.DurationVar(&n.AckTimeout, "nats-ack-timeout", d.NATS.AckTimeout, "nats: how long to wait for JetStream's ack before spooling the event")
}

// addNATSConnFlags registers how to reach a NATS server securely: TLS and
// credentials. Every command that talks to NATS (run's sink, rules publish,
// allowlist publish and approve --learned) takes the same five flags.
func addNATSConnFlags(f *pflag.FlagSet, n *output.NATSOptions) {
	f.StringVar(&n.CAFile, "nats-ca", "", "nats: PEM file of CA certificates: connect with TLS and verify the servers against them")
	f.StringVar(&n.CertFile, "nats-cert", "", "nats: client certificate (PEM) for mutual TLS, with --nats-key")
	f.StringVar(&n.KeyFile, "nats-key", "", "nats: client key (PEM) for mutual TLS")
	f.StringVar(&n.CredsFile, "nats-creds", "", "nats: credentials file (user JWT and nkey seed)")
	f.StringVar(&n.NKeyFile, "nats-nkey", "", "nats: file holding the user's nkey seed")
}
