package output

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildAcceptsEverySinkSpec(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions()
	opts.Outputs = []string{
		"stdout",
		"file:" + filepath.Join(dir, "events.json"),
		"syslog+udp://127.0.0.1:5514",
		"syslog+tcp://localhost",
		"syslog+unix://" + filepath.Join(dir, "log.sock"),
		"https://siem.example/ingest",
	}
	opts.WebhookSecretHeaders = []string{"authorization: Bearer x"}
	opts.Insns = "both"
	opts.Format = "ecs"
	p, insns, err := Build(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if p.cfg.Format != FormatECS {
		t.Errorf("format = %q, want ecs", p.cfg.Format)
	}
	if insns.Mode != InsnModeBoth || insns.Max != DefaultInsnMax {
		t.Errorf("insn options = %+v", insns)
	}
	names := map[string]bool{}
	for _, w := range p.wk {
		names[w.sink.Name()] = true
	}
	for _, want := range []string{"stdout", "file:" + filepath.Join(dir, "events.json"), "syslog+udp:127.0.0.1:5514",
		"syslog+tcp:localhost:514", "syslog+unix:" + filepath.Join(dir, "log.sock"), "webhook:https://siem.example/ingest"} {
		if !names[want] {
			t.Errorf("no sink %q among %v", want, names)
		}
	}
}

func TestBuildRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(o *Options)
	}{
		{"an unknown output", func(o *Options) { o.Outputs = []string{"kafka://x"} }},
		{"a file output without a path", func(o *Options) { o.Outputs = []string{"file:"} }},
		{"an unknown syslog transport", func(o *Options) { o.Outputs = []string{"syslog+sctp://x:1"} }},
		{"an unknown facility", func(o *Options) { o.Outputs = []string{"syslog+udp://x:1"}; o.SyslogFacility = "local9" }},
		{"a header without a colon", func(o *Options) { o.Outputs = []string{"https://x/"}; o.WebhookHeaders = []string{"Bearer"} }},
		{"an unknown instructions mode", func(o *Options) { o.Insns = "all" }},
		{"an unknown event format", func(o *Options) { o.Format = "cef" }},
		{"a nats server without a port", func(o *Options) { o.Outputs = []string{"nats://a:4222,b"} }},
		{"nats credentials in the URL", func(o *Options) { o.Outputs = []string{"nats://user:pw@a:4222"} }},
		{"a nats client cert without its key", func(o *Options) {
			o.Outputs = []string{"nats://a:4222"}
			o.NATS.CertFile = "c.pem"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			o := DefaultOptions()
			tt.mutate(&o)
			if p, _, err := Build(o, nil, nil); err == nil {
				p.Close(context.Background())
				t.Error("accepted")
			}
		})
	}
}

func TestBuildMakesOneNATSSinkPerSpecWithItsOwnSpool(t *testing.T) {
	opts := DefaultOptions()
	opts.NATSSpoolBase = t.TempDir()
	opts.Outputs = []string{"nats://127.0.0.1:1,nats://127.0.0.2:2", "nats://127.0.0.3:3"}
	p, _, err := Build(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	dirs := map[string]bool{}
	for _, w := range p.wk {
		s, ok := w.sink.(*NATSSink)
		if !ok {
			t.Fatalf("sink %s is %T", w.sink.Name(), w.sink)
		}
		dirs[s.opt.SpoolDir] = true
		if w.opt.BatchMax != 512 {
			t.Errorf("%s batches %d", s.Name(), w.opt.BatchMax)
		}
	}
	if len(dirs) != 2 {
		t.Errorf("spool dirs %v, want two distinct", dirs)
	}
	urls, err := ParseNATSURLs("nats://a:1, nats://b:2")
	if err != nil || len(urls) != 2 || urls[0] != "nats://a:1" || urls[1] != "nats://b:2" {
		t.Errorf("ParseNATSURLs = %v, %v", urls, err)
	}
}

// Webhook credentials come from a private file or the environment, never
// from the command line, and never go to a plain http:// URL unless asked.
func TestWebhookSecretsStayOffTheCommandLineAndPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "headers")
	if err := os.WriteFile(private, []byte("# the SIEM's token\nAuthorization: Bearer s3cret\nX-Source: sentry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("Authorization: Bearer s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		set  func(*Options)
		want string // error substring; "" for none
	}{
		{"a credential on the command line is refused", func(o *Options) {
			o.WebhookHeaders = []string{"Authorization: Bearer s3cret"}
		}, "show in the process list"},
		{"other headers on the command line are fine", func(o *Options) { o.WebhookHeaders = []string{"X-Source: sentry"} }, ""},
		{"a private header file is read", func(o *Options) { o.WebhookHeaderFile = private }, ""},
		{"a header file others can read is refused", func(o *Options) { o.WebhookHeaderFile = open }, "want 0600"},
		{"a credential from the environment is fine", func(o *Options) { o.WebhookSecretHeaders = []string{"Authorization: Bearer s3cret"} }, ""},
		{"credentials over plain http are refused", func(o *Options) {
			o.Outputs = []string{"http://siem.example/ingest"}
			o.WebhookHeaderFile = private
		}, "plain http://"},
		{"credentials over plain http when explicitly allowed", func(o *Options) {
			o.Outputs = []string{"http://siem.example/ingest"}
			o.WebhookHeaderFile = private
			o.WebhookPlainHTTPCredentials = true
		}, ""},
		{"plain http without credentials is fine", func(o *Options) { o.Outputs = []string{"http://siem.example/ingest"} }, ""},
		{"credentials in the URL are refused", func(o *Options) { o.Outputs = []string{"https://user:pw@siem.example/ingest"} }, "no credentials in the URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Outputs = []string{"https://siem.example/ingest"}
			c.set(&o)
			p, _, err := Build(o, nil, nil)
			if p != nil {
				defer p.Close(context.Background())
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if c.want == "" && strings.Contains(fmt.Sprint(err), "s3cret") {
				t.Fatal("the secret is in an error")
			}
		})
	}
}
