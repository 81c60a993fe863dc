package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/policy"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// policyFlags are run's fleet policy flags (--rules nats-kv://…).
type policyFlags struct {
	keys  []string
	nats  string
	cache string
}

func addPolicyFlags(f *pflag.FlagSet) *policyFlags {
	p := &policyFlags{}
	f.StringArrayVar(&p.keys, "policy-key", nil, "fleet policy: ed25519 public key (PEM, from `rules keygen`) whose signed bundles are applied; repeatable")
	f.StringVar(&p.nats, "policy-nats", "", "fleet policy: NATS servers of the bucket, nats://HOST:PORT[,HOST:PORT…] (TLS and credentials: the --nats-* flags)")
	f.StringVar(&p.cache, "policy-cache", "/var/lib/ebpf-sentry/policy", "fleet policy: where the last good bundle is kept, to boot protected without the bus")
	return p
}

// followFunc follows the bucket until ctx ends, reporting every attempt.
type followFunc func(ctx context.Context, report func(rules.ReloadEvent))

// open is openRunRules for every --rules form: a file or directory, the
// defaults, or nats-kv://BUCKET[/KEY] (then follow is non-nil).
func (p *policyFlags) open(arg string, nopts output.NATSOptions) (*rules.Store, followFunc, error) {
	if !strings.HasPrefix(arg, "nats-kv://") {
		s, err := openRunRules(arg)
		return s, nil, err
	}
	bucket, key, err := policy.ParseSpec(arg)
	if err != nil {
		return nil, nil, err
	}
	keys, err := policy.ReadPublicKeys(p.keys)
	if err != nil {
		return nil, nil, err
	}
	if p.nats == "" {
		return nil, nil, fmt.Errorf("%s needs --policy-nats", arg)
	}
	urls, err := output.ParseNATSURLs(p.nats)
	if err != nil {
		return nil, nil, fmt.Errorf("--policy-nats: %w", err)
	}
	auth, err := output.NATSAuthOptions(nopts)
	if err != nil {
		return nil, nil, err
	}
	fol, err := policy.NewFollower(p.cache, keys)
	if err != nil {
		return nil, nil, err
	}
	slog.Info("fleet policy", "bucket", bucket, "key", key, "booted_from", fol.Store.Set().Source)
	follow := func(ctx context.Context, report func(rules.ReloadEvent)) {
		opts := append([]nats.Option{nats.Name("ebpf-sentry policy"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}, auth...)
		nc, err := nats.Connect(strings.Join(urls, ","), opts...)
		if err != nil {
			report(rules.ReloadEvent{Set: fol.Store.Set(), Err: fmt.Errorf("fleet policy: %w", err), Reason: arg})
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			report(rules.ReloadEvent{Set: fol.Store.Set(), Err: fmt.Errorf("fleet policy: %w", err), Reason: arg})
			return
		}
		backoff := time.Second
		for ctx.Err() == nil {
			kv, err := js.KeyValue(ctx, bucket)
			if err == nil {
				err = fol.Follow(ctx, kv, key, report)
			}
			if err != nil {
				slog.Warn("fleet policy: bucket unreachable, keeping the rules in force", "bucket", bucket, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
	return fol.Store, follow, nil
}

func newRulesKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen PREFIX",
		Short: "Make an ed25519 key pair for signing fleet rule bundles (PREFIX.key, PREFIX.pub)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := policy.GenerateKey(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key (keep it secret) and %s.pub (give it to agents: --policy-key), key id %s\n", args[0], args[0], policy.KeyID(pub))
			return nil
		},
	}
}

func newRulesPublishCmd() *cobra.Command {
	var keyFile, natsURL, bucket, name string
	var replicas int
	nopts := output.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "publish DIR --key K --nats URL --bucket B",
		Short: "Sign the rule files of DIR and put them in a JetStream KV bucket for the fleet",
		Long: `Validate DIR like ` + "`rules check`" + ` (an invalid set is not published), sign its
*.yaml / *.yml files with the ed25519 key K and put the bundle under --name in
--bucket (created with --replicas copies if absent). Agents running with
--rules nats-kv://BUCKET/NAME and the matching --policy-key apply it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := rules.Load(args[0]); err != nil {
				return err
			}
			b, err := policy.ReadDir(args[0])
			if err != nil {
				return err
			}
			rev, key, err := signAndPublish(cmd.Context(), keyFile, natsURL, nopts.NATS, bucket, name, replicas, b)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %d files as %s/%s revision %d, serial %d, key id %s\n",
				len(b.Files), bucket, name, rev, b.Serial, policy.KeyID(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "ed25519 private key (PEM, from `rules keygen`)")
	f.StringVar(&natsURL, "nats", "", "NATS servers, nats://HOST:PORT[,HOST:PORT…]")
	f.StringVar(&bucket, "bucket", "", "JetStream KV bucket")
	f.StringVar(&name, "name", "rules", "key in the bucket")
	f.IntVar(&replicas, "replicas", 1, "replicas of the bucket if it is created")
	addNATSConnFlags(f, &nopts.NATS)
	for _, req := range []string{"key", "nats", "bucket"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// openRunRules loads --rules into a store that reloads them atomically.
func openRunRules(arg string) (*rules.Store, error) {
	if arg == "" {
		return nil, fmt.Errorf("empty path (the embedded defaults are --rules @defaults)")
	}
	if arg == "@defaults" {
		arg = ""
	}
	return rules.NewStore(arg)
}

// signAndPublish signs b with the ed25519 key in keyFile and puts it under
// name in bucket on the NATS servers natsURL (rules publish, allowlist
// publish). It returns the KV revision and the key that signed.
func signAndPublish(ctx context.Context, keyFile, natsURL string, opt output.NATSOptions, bucket, name string, replicas int, b *policy.Bundle) (uint64, ed25519.PrivateKey, error) {
	key, err := policy.ReadPrivateKey(keyFile)
	if err != nil {
		return 0, nil, fmt.Errorf("--key: %w", err)
	}
	urls, err := output.ParseNATSURLs(natsURL)
	if err != nil {
		return 0, nil, fmt.Errorf("--nats: %w", err)
	}
	auth, err := output.NATSAuthOptions(opt)
	if err != nil {
		return 0, nil, err
	}
	nc, err := nats.Connect(strings.Join(urls, ","), auth...)
	if err != nil {
		return 0, nil, fmt.Errorf("--nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rev, err := policy.Publish(ctx, js, bucket, name, replicas, b, key)
	return rev, key, err
}
