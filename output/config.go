package output

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options is the output configuration the CLI builds from its flags.
type Options struct {
	// Outputs are sink specs, any number of them:
	//   stdout
	//   file:PATH
	//   syslog+udp://HOST:PORT  syslog+tcp://HOST:PORT  syslog+unix:///PATH
	//   http://HOST/PATH  https://HOST/PATH   (webhook)
	//   nats://HOST:PORT[,HOST:PORT…]        (JetStream, see NATS)
	Outputs        []string
	QueueSize      int      // per sink
	FileMaxSize    int64    // bytes before rotation; 0: never rotate
	FileKeep       int      // rotated files kept
	SyslogFacility string   // name (local0, auth, …) or number
	SyslogMaxSize  int      // largest syslog message; 0: transport default
	WebhookHeaders []string // "Name: value" from the command line: no credentials (they show in ps)
	// WebhookHeaderFile holds more "Name: value" lines, credentials
	// included; it must be owned by root (or this user) and not readable
	// or writable by group or others.
	WebhookHeaderFile string
	// WebhookSecretHeaders are "Name: value" credentials from the
	// environment (the CLI reads $EBPF_SENTRY_WEBHOOK_AUTHORIZATION).
	WebhookSecretHeaders []string
	// WebhookPlainHTTPCredentials allows credentials over plain http://
	// (refused otherwise: anyone on the path reads them).
	WebhookPlainHTTPCredentials bool
	WebhookCA                   string        // PEM file
	WebhookBatch                int           // events per POST
	WebhookLinger               time.Duration // wait for a batch to fill
	WebhookTimeout              time.Duration
	WebhookMaxBody              int // bytes per POST; 0: 4 MiB
	LossInterval                time.Duration
	Insns                       string // auto|none|text|raw|both
	InsnMax                     int
	Format                      string // json | ecs
	// NATS holds the JetStream settings of nats:// outputs (URLs and
	// SpoolDir come from each spec and NATSSpoolBase).
	NATS          NATSOptions
	NATSSpoolBase string
}

// DefaultOptions are the CLI's defaults.
func DefaultOptions() Options {
	return Options{
		Outputs:        []string{"stdout"},
		QueueSize:      4096,
		FileMaxSize:    100 << 20,
		FileKeep:       5,
		SyslogFacility: "local0",
		WebhookBatch:   100,
		WebhookLinger:  time.Second,
		WebhookTimeout: 10 * time.Second,
		LossInterval:   10 * time.Second,
		Insns:          string(InsnModeAuto),
		InsnMax:        DefaultInsnMax,
		Format:         "json",
		NATS: NATSOptions{
			Stream: "EBPF_SENTRY", Subject: "ebpf-sentry", Replicas: 1, MaxAge: 7 * 24 * time.Hour,
			Duplicates: 2 * time.Minute, SpoolMax: 256 << 20, SpoolSegment: 16 << 20, SpoolFsync: true,
			AckTimeout: 5 * time.Second, MaxInFlight: 4096, Pack: 64, PackBytes: 64 << 10,
		},
		NATSSpoolBase: "/var/lib/ebpf-sentry/nats-spool",
	}
}

// Build checks opts and makes the pipeline with every sink attached, plus
// the instruction options the event builder should use. Nothing is
// connected yet: network sinks dial on first use.
func Build(opts Options, m *Metrics, log *slog.Logger) (*Pipeline, InsnOptions, error) {
	mode, err := ParseInsnMode(opts.Insns)
	if err != nil {
		return nil, InsnOptions{}, err
	}
	format := Format(opts.Format)
	switch format {
	case "":
		format = FormatJSON
	case FormatJSON, FormatECS:
	default:
		return nil, InsnOptions{}, fmt.Errorf("event format %q: want json or ecs", opts.Format)
	}
	var sinks []Sink
	var qopts []QueueOptions
	for _, spec := range opts.Outputs {
		s, q, err := newSink(spec, opts)
		if err != nil {
			for _, o := range sinks {
				_ = o.Close()
			}
			return nil, InsnOptions{}, fmt.Errorf("output %q: %w", spec, err)
		}
		sinks, qopts = append(sinks, s), append(qopts, q)
	}
	p := NewPipeline(Config{Metrics: m, Logger: log, LossInterval: opts.LossInterval, Format: format})
	for i, s := range sinks {
		p.Add(s, qopts[i])
	}
	return p, InsnOptions{Mode: mode, Max: opts.InsnMax}, nil
}

func newSink(spec string, o Options) (Sink, QueueOptions, error) {
	q := QueueOptions{Size: o.QueueSize}
	switch {
	case spec == "stdout":
		return NewWriterSink("stdout", os.Stdout), q, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		if path == "" {
			return nil, q, errors.New("file: needs a path")
		}
		s, err := NewFileSink(path, o.FileMaxSize, o.FileKeep)
		return s, q, err
	case strings.HasPrefix(spec, "syslog+"):
		u, err := url.Parse(spec)
		if err != nil {
			return nil, q, err
		}
		fac, err := ParseFacility(o.SyslogFacility)
		if err != nil {
			return nil, q, err
		}
		opt := SyslogOptions{Facility: fac, MaxMessage: o.SyslogMaxSize}
		switch u.Scheme {
		case "syslog+udp", "syslog+tcp":
			opt.Network, opt.Addr = strings.TrimPrefix(u.Scheme, "syslog+"), u.Host
			if u.Port() == "" {
				opt.Addr += ":514"
			}
		case "syslog+unix":
			opt.Network, opt.Addr = "unixgram", u.Path
		default:
			return nil, q, fmt.Errorf("unknown syslog transport %q: want syslog+udp, syslog+tcp or syslog+unix", u.Scheme)
		}
		s, err := NewSyslogSink(opt)
		return s, q, err
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		h, err := webhookHeaders(spec, o)
		if err != nil {
			return nil, q, err
		}
		s, err := NewWebhookSink(WebhookOptions{URL: spec, Headers: h, CAFile: o.WebhookCA, Timeout: o.WebhookTimeout, MaxBody: o.WebhookMaxBody})
		q.BatchMax, q.Linger = o.WebhookBatch, o.WebhookLinger
		return s, q, err
	case strings.HasPrefix(spec, "nats://"):
		urls, err := ParseNATSURLs(spec)
		if err != nil {
			return nil, q, err
		}
		n := o.NATS
		n.URLs = urls
		n.SpoolDir = NATSSpoolDir(o.NATSSpoolBase, urls)
		s, err := NewNATSSink(n)
		q.BatchMax = 512
		return s, q, err
	}
	return nil, q, errors.New("unknown output: want stdout, file:PATH, syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT, syslog+unix:///PATH, an http(s) URL or nats://HOST:PORT[,HOST:PORT…]")
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "audit": 13, "console": 14,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility accepts a syslog facility name or number (0…23).
func ParseFacility(s string) (int, error) {
	if f, ok := facilities[strings.ToLower(s)]; ok {
		return f, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 23 {
		return n, nil
	}
	return 0, fmt.Errorf("syslog facility %q: want a name (local0, auth, daemon…) or 0…23", s)
}

// ParseNATSURLs splits nats://HOST:PORT[,HOST:PORT…] (each item may repeat
// the nats:// scheme) into one URL per server.
func ParseNATSURLs(spec string) ([]string, error) {
	rest, ok := strings.CutPrefix(spec, "nats://")
	if !ok {
		return nil, fmt.Errorf("%q: want nats://HOST:PORT[,HOST:PORT…]", spec)
	}
	var urls []string
	for _, item := range strings.Split(rest, ",") {
		item = strings.TrimPrefix(strings.TrimSpace(item), "nats://")
		u, err := url.Parse("nats://" + item)
		if err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("nats server %q: want HOST:PORT", item)
		}
		if u.User != nil {
			return nil, fmt.Errorf("nats server %q: no credentials in the URL (they would show in the process list); use --nats-creds or --nats-nkey", u.Host)
		}
		urls = append(urls, "nats://"+u.Host)
	}
	return urls, nil
}

// credentialHeaders carry secrets: never from the command line, never over
// plain http unless asked.
var credentialHeaders = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "X-Api-Key": true}

// webhookHeaders gathers the webhook's headers from the command line, the
// header file and the environment, and refuses credentials where they
// would leak.
func webhookHeaders(spec string, o Options) (http.Header, error) {
	h := http.Header{}
	secret := false
	add := func(kv, from string, credentialsOK bool) error {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("webhook header %q%s: want \"Name: value\"", Escape(kv), from)
		}
		name := textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
		if credentialHeaders[name] {
			if !credentialsOK {
				return fmt.Errorf("webhook header %s on the command line: credentials there show in the process list; put it in --webhook-header-file (mode 0600) or $EBPF_SENTRY_WEBHOOK_AUTHORIZATION", name)
			}
			secret = true
		}
		h.Add(name, strings.TrimSpace(v))
		return nil
	}
	for _, kv := range o.WebhookHeaders {
		if err := add(kv, "", false); err != nil {
			return nil, err
		}
	}
	if o.WebhookHeaderFile != "" {
		lines, err := readSecretFile(o.WebhookHeaderFile)
		if err != nil {
			return nil, err
		}
		for i, line := range lines {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(line, fmt.Sprintf(" (%s line %d)", o.WebhookHeaderFile, i+1), true); err != nil {
				return nil, err
			}
		}
	}
	for _, kv := range o.WebhookSecretHeaders {
		if err := add(kv, " (environment)", true); err != nil {
			return nil, err
		}
	}
	if u, err := url.Parse(spec); err == nil && u.User != nil {
		return nil, fmt.Errorf("webhook %s: no credentials in the URL (they show in the process list); use --webhook-header-file", Escape(u.Host))
	}
	if secret && strings.HasPrefix(spec, "http://") && !o.WebhookPlainHTTPCredentials {
		return nil, fmt.Errorf("webhook %s: credentials over plain http:// can be read on the way; use https:// or --webhook-allow-plain-http-credentials", Escape(spec))
	}
	return h, nil
}

// readSecretFile reads a file holding secrets, refusing one that others
// could read or change.
func readSecretFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("webhook header file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("webhook header file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("webhook header file %s: mode %v lets group or others read or change it; want 0600", path, st.Mode().Perm())
	}
	if uid, ok := fileOwner(st); ok && uid != 0 && uid != os.Geteuid() {
		return nil, fmt.Errorf("webhook header file %s: owned by uid %d, want root or this user (%d)", path, uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("webhook header file: %w", err)
	}
	return strings.Split(string(b), "\n"), nil
}
