package output

import (
	"context"
	"path/filepath"
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
	opts.WebhookHeaders = []string{"authorization: Bearer x"}
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
