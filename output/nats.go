package output

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions configures a NATSSink.
type NATSOptions struct {
	URLs    []string // nats://host:port or tls://host:port, any number of servers of one cluster
	Stream  string   // default "EBPF_SENTRY"
	Subject string   // subject prefix; default "ebpf-sentry" (subjects PREFIX.HOST.EVENT)
	// CreateStream creates the stream when it does not exist, with the
	// settings below (an existing stream is left as it is).
	CreateStream bool
	Replicas     int           // default 1
	MaxAge       time.Duration // default 7 days
	MaxBytes     int64         // 0: no limit
	Duplicates   time.Duration // de-duplication window; default 2 minutes

	CAFile    string // PEM CA bundle: TLS, verifying the servers
	CertFile  string // client certificate (mutual TLS), with KeyFile
	KeyFile   string
	CredsFile string // NATS credentials file (JWT and nkey seed)
	NKeyFile  string // file holding an nkey seed (SU…)

	SpoolDir     string        // required
	SpoolMax     int64         // bytes; default 256 MiB
	SpoolSegment int64         // bytes per segment file; default 16 MiB (capped at SpoolMax)
	SpoolFsync   bool          // fdatasync every append and cursor update
	AckTimeout   time.Duration // wait for JetStream's ack; default 5s
	Logger       *slog.Logger
}

// Drop reasons of the NATS sink.
const (
	ReasonSpoolFull  = "spool_full"  // the server was unreachable and the spool had no room
	ReasonSpoolError = "spool_error" // the spool could not be written
)

// NATSSink publishes every event to JetStream on PREFIX.HOST.EVENT with the
// event id as Nats-Msg-Id, so a message published twice (a retry after a lost
// ack, a replay after a crash) is stored once within the stream's
// de-duplication window. Publishing is asynchronous: a batch goes out at
// once and the sink then waits for its acks. What is not acked (server
// unreachable, no stream leader, ack timeout) goes to the on-disk spool, and
// while the spool holds anything every new event goes behind it, so events
// reach the stream in the order they were emitted. A replay goroutine
// delivers the spool when the servers are back. Only when the spool is full
// are events dropped, counted with reason spool_full.
type NATSSink struct {
	opt   NATSOptions
	name  string
	nc    *nats.Conn
	js    jetstream.JetStream
	spool *spool
	log   *slog.Logger

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// ready: the stream exists (or is not ours to create); until then
	// events are spooled.
	ready atomic.Bool
}

// natsSubjectToken makes s usable as one subject token: the characters
// NATS gives a meaning (. * > and white space) become _.
func natsSubjectToken(s string) string {
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

// NewNATSSink checks the options, opens the spool and starts connecting; it
// does not wait for the servers, so an agent starts (and spools) while the
// bus is down.
func NewNATSSink(opt NATSOptions) (*NATSSink, error) {
	if len(opt.URLs) == 0 {
		return nil, errors.New("nats: no server URL")
	}
	for _, u := range opt.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" {
			return nil, fmt.Errorf("nats url %q: want nats://host:port or tls://host:port", u)
		}
		if p.User != nil {
			return nil, fmt.Errorf("nats url %q: credentials in the URL would show in the process list; use --nats-creds or --nats-nkey", redactURL(u))
		}
	}
	if opt.SpoolDir == "" {
		return nil, errors.New("nats: no spool directory")
	}
	if opt.Stream == "" {
		opt.Stream = "EBPF_SENTRY"
	}
	if opt.Subject == "" {
		opt.Subject = "ebpf-sentry"
	}
	if opt.Replicas <= 0 {
		opt.Replicas = 1
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 7 * 24 * time.Hour
	}
	if opt.Duplicates <= 0 {
		opt.Duplicates = 2 * time.Minute
	}
	if opt.SpoolMax <= 0 {
		opt.SpoolMax = 256 << 20
	}
	if opt.SpoolSegment <= 0 {
		opt.SpoolSegment = 16 << 20
	}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if (opt.CertFile == "") != (opt.KeyFile == "") {
		return nil, errors.New("nats: a client certificate needs both --nats-cert and --nats-key")
	}
	if opt.CredsFile != "" && opt.NKeyFile != "" {
		return nil, errors.New("nats: give a creds file or an nkey seed file, not both")
	}
	sp, lost, err := openSpool(opt.SpoolDir, opt.SpoolMax, opt.SpoolSegment, opt.SpoolFsync)
	if err != nil {
		return nil, err
	}
	if lost > 0 {
		opt.Logger.Error("nats: spool damaged (torn write at a crash?): the unreadable tail of a segment was cut",
			"dir", opt.SpoolDir, "segments_cut", lost)
	}
	s := &NATSSink{
		opt: opt, spool: sp, log: opt.Logger,
		name: "nats:" + strings.Join(opt.URLs, ","),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	copts := []nats.Option{
		nats.Name("ebpf-sentry"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Fail publishes at once while disconnected: the spool, not the
		// client's memory, keeps what cannot be sent.
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info("nats: reconnected", "sink", s.name); s.signal() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats: disconnected", "sink", s.name, "err", err)
			}
		}),
		nats.ConnectHandler(func(*nats.Conn) { s.signal() }),
	}
	auth, err := NATSAuthOptions(opt)
	if err != nil {
		sp.Close()
		return nil, err
	}
	copts = append(copts, auth...)
	nc, err := nats.Connect(strings.Join(opt.URLs, ","), copts...)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opt.AckTimeout), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		sp.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s.nc, s.js = nc, js
	go s.replay()
	s.signal()
	return s, nil
}

// NATSAuthOptions are the client options for opt's TLS and credential
// settings (every secret read from a file).
func NATSAuthOptions(opt NATSOptions) ([]nats.Option, error) {
	if (opt.CertFile == "") != (opt.KeyFile == "") {
		return nil, errors.New("nats: a client certificate needs both --nats-cert and --nats-key")
	}
	if opt.CredsFile != "" && opt.NKeyFile != "" {
		return nil, errors.New("nats: give a creds file or an nkey seed file, not both")
	}
	var copts []nats.Option
	if opt.CAFile != "" {
		copts = append(copts, nats.RootCAs(opt.CAFile))
	}
	if opt.CertFile != "" {
		copts = append(copts, nats.ClientCert(opt.CertFile, opt.KeyFile))
	}
	if opt.CredsFile != "" {
		if _, err := os.Stat(opt.CredsFile); err != nil {
			return nil, fmt.Errorf("nats creds: %w", err)
		}
		copts = append(copts, nats.UserCredentials(opt.CredsFile))
	}
	if opt.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(opt.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey %s: %w", opt.NKeyFile, err)
		}
		copts = append(copts, o)
	}
	return copts, nil
}

// NATSSpoolDir is where a sink for urls spools under base: one directory per
// server list, so two outputs never share a spool.
func NATSSpoolDir(base string, urls []string) string {
	h := sha256.Sum256([]byte(strings.Join(urls, ",")))
	return filepath.Join(base, hex.EncodeToString(h[:6]))
}

func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable)"
	}
	p.User = nil
	return p.String()
}

// Name implements Sink.
func (s *NATSSink) Name() string { return s.name }

// Subject is where an event of kind from host is published.
func (s *NATSSink) Subject(host string, kind Kind) string {
	return s.opt.Subject + "." + natsSubjectToken(host) + "." + natsSubjectToken(string(kind))
}

// Spooled is how many events wait in the spool.
func (s *NATSSink) Spooled() int { return s.spool.Len() }

func (s *NATSSink) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Send implements Sink. Events acked by JetStream or kept in the spool count
// as delivered; those the spool has no room for are lost (spool_full).
func (s *NATSSink) Send(ctx context.Context, recs []Record) (int, error) {
	msgs := make([]spoolMsg, len(recs))
	for i, r := range recs {
		msgs[i] = spoolMsg{Subject: s.Subject(r.Host, r.Kind), ID: r.ID, Data: r.JSON}
	}
	done := 0
	if s.spool.Len() == 0 && s.nc.IsConnected() && s.ready.Load() {
		done, _ = s.publish(ctx, msgs)
	}
	if done == len(msgs) {
		return done, nil
	}
	n, err := s.spool.Append(msgs[done:])
	s.signal()
	if err != nil {
		reason := ReasonSpoolError
		if errors.Is(err, errSpoolFull) {
			reason = ReasonSpoolFull
		}
		return done + n, &DropError{Reason: reason, Err: err}
	}
	return len(msgs), nil
}

// publish sends msgs asynchronously and waits for the acks: it returns how
// many, from the start, JetStream stored.
func (s *NATSSink) publish(ctx context.Context, msgs []spoolMsg) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(msgs))
	var perr error
	for _, m := range msgs {
		f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}},
			jetstream.WithMsgID(m.ID), jetstream.WithExpectStream(s.opt.Stream),
			// No retry behind our back: a message retried by the client
			// lands after the ones published meanwhile. Ours go through
			// the spool, in order.
			jetstream.WithRetryAttempts(0))
		if err != nil {
			perr = err
			break
		}
		futs = append(futs, f)
	}
	n, failed := 0, false
	for i, f := range futs {
		select {
		case <-f.Ok():
			if !failed {
				n = i + 1
			}
		case err := <-f.Err():
			if !failed {
				perr = err
			}
			failed = true
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, perr
}

// replay delivers the spool whenever there is something in it and the
// connection is up, oldest first, a batch at a time: a batch is committed
// up to its first unacked message and retried after a backoff.
func (s *NATSSink) replay() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	backoff := 100 * time.Millisecond
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-tick.C:
		}
		if !s.nc.IsConnected() {
			continue
		}
		if !s.ready.Load() {
			if err := s.ensureStream(ctx); err != nil {
				s.log.Warn("nats: cannot create stream yet", "stream", s.opt.Stream, "err", err)
				continue
			}
			s.ready.Store(true)
		}
		for s.spool.Len() > 0 && s.nc.IsConnected() {
			ents, err := s.spool.Peek(256)
			if err != nil || len(ents) == 0 {
				s.log.Error("nats: spool unreadable", "sink", s.name, "err", err)
				break
			}
			msgs := make([]spoolMsg, len(ents))
			for i, e := range ents {
				msgs[i] = e.spoolMsg
			}
			// The first message alone: if the stream has no leader yet,
			// nothing else is sent out of order behind it.
			n, err := s.publish(ctx, msgs[:1])
			if n == 1 && len(msgs) > 1 {
				var m int
				m, err = s.publish(ctx, msgs[1:])
				n += m
			}
			if n > 0 {
				if cerr := s.spool.Commit(ents[n-1], n); cerr != nil {
					s.log.Error("nats: spool commit", "sink", s.name, "err", cerr)
				}
			}
			if n < len(msgs) {
				s.log.Debug("nats: replay stalled", "sink", s.name, "delivered", n, "err", err)
				select {
				case <-s.stop:
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 2*time.Second)
				break
			}
			backoff = 100 * time.Millisecond
		}
	}
}

// ensureStream creates the stream unless it exists.
func (s *NATSSink) ensureStream(ctx context.Context) error {
	if !s.opt.CreateStream {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.js.Stream(ctx, s.opt.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	_, err = s.js.CreateStream(ctx, NATSStreamConfig(s.opt))
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil
	}
	return err
}

// NATSStreamConfig is the stream --nats-create-stream creates: limits
// retention (events stay until MaxAge or MaxBytes, whichever first, oldest
// discarded), file storage, Replicas copies.
func NATSStreamConfig(opt NATSOptions) jetstream.StreamConfig {
	maxBytes := opt.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:       opt.Stream,
		Subjects:   []string{opt.Subject + ".>"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Discard:    jetstream.DiscardOld,
		MaxAge:     opt.MaxAge,
		MaxBytes:   maxBytes,
		Replicas:   opt.Replicas,
		Duplicates: opt.Duplicates,
	}
}

// Close implements Sink: it stops the replay and closes the connection.
// What is still spooled stays on disk for the next run.
func (s *NATSSink) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.nc.Close()
	return s.spool.Close()
}
