package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
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
	// MaxInFlight bounds the events published and not yet acked: Send
	// returns once a batch is out, and blocks only when the window is
	// full. Default 4096; the window's bytes are also capped at SpoolMax,
	// so that what is in flight when the server fails always fits the
	// (then empty) spool. A negative value selects the synchronous path
	// (each Send waits for its batch's acks), kept as the benchmarks'
	// same-run baseline.
	MaxInFlight int
	// Pack is the most events one JetStream message carries: the events of
	// one Send with the same subject go out in packs of up to Pack events
	// and PackBytes bytes (docs/FLEET.md, "Wire format"), so that the
	// servers store, replicate and ack one message per pack instead of one
	// per event. Default 64; 1 publishes every event as its own message
	// (the format before packs, kept as the benchmarks' baseline).
	Pack      int
	PackBytes int // default 64 KiB; an event larger than this goes alone
	Logger    *slog.Logger
}

// The wire format of packs (docs/FLEET.md).
const (
	// NATSPackHeader marks a message that carries several events; its
	// value is the format's version. Version 1: the data is the events'
	// JSON objects, one per line, each line ending in a newline, in the
	// order they were emitted.
	NATSPackHeader = "Ebpf-Sentry-Pack"
	// NATSPackVersion is the version this agent writes.
	NATSPackVersion = "1"
	// natsPackIDPrefix starts the Nats-Msg-Id of a pack.
	natsPackIDPrefix = "pack-"
)

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

	// The in-flight window: batches published by Send and not yet acked,
	// oldest first. ackLoop waits for their acks in order; when one fails,
	// it moves that message and every one behind it to the spool (mu held,
	// so Send appends nothing in between), and the replay delivers them.
	mu        sync.Mutex
	cond      *sync.Cond
	fifo      []*inflight
	inMsgs    int
	inBytes   int64
	maxBytes  int64
	closing   bool
	abort     chan struct{} // Close gave up waiting for acks
	abortOnce sync.Once
	ackDone   chan struct{}
	acked     atomic.Uint64
	lateLoss  func(reason string, n uint64)

	subjects  map[subjectKey]string // Send's goroutine only
	streamHdr []string
	pubOpts   []jetstream.PublishOpt
}

type subjectKey struct {
	host string
	kind Kind
}

// inflight is one Send's batch: futs[i] is msgs[i]'s ack; when publishing
// stopped early (len(futs) < len(msgs)), err says why. events is how many
// events msgs carry (a pack carries several).
type inflight struct {
	msgs   []spoolMsg
	futs   []jetstream.PubAckFuture
	bytes  int64
	events int
	err    error
}

// NATSSubjectToken is the subject token the sink publishes host (or an
// event kind) as: the characters NATS gives a meaning (. * > and white
// space), and any other outside [A-Za-z0-9_-], become _.
func NATSSubjectToken(s string) string { return natsSubjectToken(s) }

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
	if opt.MaxInFlight == 0 {
		opt.MaxInFlight = 4096
	}
	if opt.Pack <= 0 {
		opt.Pack = 64
	}
	if opt.PackBytes <= 0 {
		opt.PackBytes = 64 << 10
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
		abort: make(chan struct{}), ackDone: make(chan struct{}),
		maxBytes: min(opt.SpoolMax, 64<<20), subjects: map[subjectKey]string{},
		streamHdr: []string{opt.Stream},
		// No retry behind our back: a message retried by the client lands
		// after the ones published meanwhile. Ours go through the spool,
		// in order.
		pubOpts: []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
	}
	s.cond = sync.NewCond(&s.mu)
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
	// The client's own bound is above ours (the window, plus the replay's
	// batches and the acks a failure left behind), so that it never stalls
	// a publish the window admitted.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opt.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(2*max(opt.MaxInFlight, 512)+1024))
	if err != nil {
		nc.Close()
		sp.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s.nc, s.js = nc, js
	go s.replay()
	go s.ackLoop()
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

// SetLateLoss implements LateLossReporter: the pipeline passes the function
// that counts events lost after Send had accepted them.
func (s *NATSSink) SetLateLoss(f func(reason string, n uint64)) { s.lateLoss = f }

// Acked is how many events JetStream acknowledged, directly or from the
// spool.
func (s *NATSSink) Acked() uint64 { return s.acked.Load() }

// subject is Subject, remembered per host and kind (Send's goroutine only).
func (s *NATSSink) subject(host string, kind Kind) string {
	k := subjectKey{host, kind}
	if sub, ok := s.subjects[k]; ok {
		return sub
	}
	sub := s.Subject(host, kind)
	if len(s.subjects) < 4096 {
		s.subjects[k] = sub
	}
	return sub
}

// Send implements Sink. Events published and within the in-flight window,
// acked by JetStream or kept in the spool count as delivered; those the
// spool has no room for are lost (spool_full). Send waits for acks only
// when the window is full.
func (s *NATSSink) Send(ctx context.Context, recs []Record) (int, error) {
	msgs := s.pack(recs)
	var bytes int64
	for _, m := range msgs {
		bytes += spoolRecordSize(m)
	}
	events := len(recs)
	if s.opt.MaxInFlight < 0 {
		return s.sendSync(ctx, msgs)
	}
	s.mu.Lock()
	for !s.closing {
		if s.spool.Len() > 0 || !s.nc.IsConnected() || !s.ready.Load() {
			if len(s.fifo) == 0 {
				break
			}
			// The spool takes this batch only behind what is in flight.
			s.cond.Wait()
			continue
		}
		if len(s.fifo) == 0 && (events > s.opt.MaxInFlight || bytes > s.maxBytes) {
			s.mu.Unlock()
			return s.sendSync(ctx, msgs) // larger than the whole window
		}
		if s.inMsgs+events <= s.opt.MaxInFlight && s.inBytes+bytes <= s.maxBytes {
			b := &inflight{msgs: msgs, bytes: bytes, events: events, futs: make([]jetstream.PubAckFuture, 0, len(msgs))}
			b.futs, b.err = s.publishAsync(msgs, b.futs)
			s.fifo = append(s.fifo, b)
			s.inMsgs += events
			s.inBytes += bytes
			s.cond.Broadcast()
			s.mu.Unlock()
			return events, nil
		}
		s.cond.Wait()
	}
	// Nothing in flight: the spool, in order behind what it holds.
	n, err := s.spool.Append(msgs)
	s.mu.Unlock()
	s.signal()
	return s.spoolResult(eventsOf(msgs[:n]), events, err)
}

// pack turns one Send's records into messages: the records of each subject,
// in order, in packs of up to Pack events and PackBytes bytes (at most half
// the servers' max_payload); a pack of one is a plain single-event message. The messages go out in the order of
// their first event, so events of one subject stay in emission order (their
// seq gives the order across subjects). A pack's Nats-Msg-Id is derived
// from its events' ids, and a pack stays whole through the window, the
// spool and the replay, so a publish retried after a lost ack carries the
// same id and the stream's de-duplication drops the copy.
func (s *NATSSink) pack(recs []Record) []spoolMsg {
	if s.opt.Pack <= 1 || len(recs) < 2 {
		msgs := make([]spoolMsg, len(recs))
		for i, r := range recs {
			msgs[i] = spoolMsg{Subject: s.subject(r.Host, r.Kind), ID: r.ID, Data: r.JSON}
		}
		return msgs
	}
	type open struct {
		first int   // index of the pack's first record
		recs  []int // the pack's records
		bytes int
	}
	limit := s.opt.PackBytes
	if s.nc != nil {
		// A pack never exceeds what the servers take in one message
		// (max_payload, known once connected), with room for headers.
		if mp := int(s.nc.MaxPayload()); mp > 0 {
			limit = min(limit, mp/2)
		}
	}
	var done []open
	cur := map[string]*open{}
	var order []string // subjects with an open pack, by first record
	for i, r := range recs {
		sub := s.subject(r.Host, r.Kind)
		if bytes.IndexByte(r.JSON, '\n') >= 0 {
			// Not one line (never from our encoder): it cannot share a
			// pack, so it goes alone, as a single event.
			done = append(done, open{first: i, recs: []int{i}})
			continue
		}
		p := cur[sub]
		if p != nil && (len(p.recs) >= s.opt.Pack || p.bytes+len(r.JSON)+1 > limit) {
			done = append(done, *p)
			p = nil
		}
		if p == nil {
			if _, ok := cur[sub]; !ok {
				order = append(order, sub)
			}
			p = &open{first: i}
			cur[sub] = p
		}
		p.recs = append(p.recs, i)
		p.bytes += len(r.JSON) + 1
	}
	for _, sub := range order {
		done = append(done, *cur[sub])
	}
	sort.Slice(done, func(i, j int) bool { return done[i].first < done[j].first })
	msgs := make([]spoolMsg, len(done))
	for k, p := range done {
		r0 := recs[p.first]
		sub := s.subject(r0.Host, r0.Kind)
		if len(p.recs) == 1 {
			msgs[k] = spoolMsg{Subject: sub, ID: r0.ID, Data: r0.JSON}
			continue
		}
		data := make([]byte, 0, p.bytes)
		ids := make([]string, len(p.recs))
		for j, i := range p.recs {
			data = append(append(data, recs[i].JSON...), '\n')
			ids[j] = recs[i].ID
		}
		msgs[k] = spoolMsg{Subject: sub, ID: NATSPackID(ids), Data: data, N: len(p.recs)}
	}
	return msgs
}

// NATSPackID is the Nats-Msg-Id of a pack of events with these ids, in
// order: "pack-" and the first 16 bytes, in hex, of the SHA-256 of the ids,
// each followed by a newline.
func NATSPackID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return natsPackIDPrefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// NATSMessageEvents returns the events one message of the stream carries,
// each one JSON object: the message's data when it has no Ebpf-Sentry-Pack
// header, else its lines. A pack of an unknown version, or one that is not
// whole lines of non-empty JSON objects, is an error.
func NATSMessageEvents(h nats.Header, data []byte) ([][]byte, error) {
	v := h.Get(NATSPackHeader)
	if v == "" {
		return [][]byte{data}, nil
	}
	if v != NATSPackVersion {
		return nil, fmt.Errorf("%s %q: this version reads only %s", NATSPackHeader, Escape(v), NATSPackVersion)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("pack of %d bytes does not end with a newline", len(data))
	}
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data[:i:i]
		data = data[i+1:]
		if len(line) == 0 || line[0] != '{' || line[len(line)-1] != '}' {
			return nil, fmt.Errorf("pack event %d is not a JSON object", len(out)+1)
		}
		out = append(out, line)
	}
	return out, nil
}

// sendSync publishes msgs and waits for their acks; what is not acked goes
// to the spool.
func (s *NATSSink) sendSync(ctx context.Context, msgs []spoolMsg) (int, error) {
	done := 0
	if s.spool.Len() == 0 && s.nc.IsConnected() && s.ready.Load() {
		done, _ = s.publish(ctx, msgs)
	}
	ev := eventsOf(msgs[:done])
	s.acked.Add(uint64(ev))
	if done == len(msgs) {
		return ev, nil
	}
	n, err := s.spool.Append(msgs[done:])
	s.signal()
	return s.spoolResult(ev+eventsOf(msgs[done:done+n]), eventsOf(msgs), err)
}

func (s *NATSSink) spoolResult(n, want int, err error) (int, error) {
	if err == nil {
		return want, nil
	}
	reason := ReasonSpoolError
	if errors.Is(err, errSpoolFull) {
		reason = ReasonSpoolFull
	}
	return n, &DropError{Reason: reason, Err: err}
}

// message is m as JetStream gets it: the event id as Nats-Msg-Id, and the
// stream expected, so that a subject another stream took is an error.
func (s *NATSSink) message(m spoolMsg) *nats.Msg {
	h := nats.Header{
		jetstream.MsgIDHeader:          []string{m.ID},
		jetstream.ExpectedStreamHeader: s.streamHdr,
	}
	if m.N > 1 {
		h[NATSPackHeader] = natsPackVersionHdr
	}
	return &nats.Msg{Subject: m.Subject, Data: m.Data, Header: h}
}

var natsPackVersionHdr = []string{NATSPackVersion}

// publishAsync publishes msgs without waiting, appending their futures to
// futs; it stops at the first message the client refuses.
func (s *NATSSink) publishAsync(msgs []spoolMsg, futs []jetstream.PubAckFuture) ([]jetstream.PubAckFuture, error) {
	for _, m := range msgs {
		f, err := s.js.PublishMsgAsync(s.message(m), s.pubOpts...)
		if err != nil {
			return futs, err
		}
		futs = append(futs, f)
	}
	return futs, nil
}

// ackLoop waits for the acks of the in-flight batches in order. A batch
// fully acked leaves the window; at the first message not acked (an error,
// the client's ack timeout, a refused publish), that message and all behind
// it go to the spool, in order, and the replay takes over. Messages after
// the failed one may have been stored too: the replay publishes them again
// with the same ids, and the stream's de-duplication drops the copies.
func (s *NATSSink) ackLoop() {
	defer close(s.ackDone)
	for {
		s.mu.Lock()
		for len(s.fifo) == 0 && !s.closing {
			s.cond.Wait()
		}
		if len(s.fifo) == 0 {
			s.mu.Unlock()
			return
		}
		b := s.fifo[0]
		s.mu.Unlock()
		ok, err := 0, b.err
	wait:
		for _, f := range b.futs {
			select {
			case <-f.Ok():
				ok++
			case err = <-f.Err():
				break wait
			case <-s.abort:
				err = errors.New("closed before the ack")
				break wait
			}
		}
		s.mu.Lock()
		if ok == len(b.msgs) {
			s.fifo[0] = nil
			s.fifo = s.fifo[1:]
			s.inMsgs -= b.events
			s.inBytes -= b.bytes
			s.acked.Add(uint64(b.events))
			s.cond.Broadcast()
			s.mu.Unlock()
			continue
		}
		s.acked.Add(uint64(eventsOf(b.msgs[:ok])))
		rest := append([]spoolMsg(nil), b.msgs[ok:]...)
		for _, o := range s.fifo[1:] {
			rest = append(rest, o.msgs...)
		}
		s.fifo, s.inMsgs, s.inBytes = nil, 0, 0
		n, aerr := s.spool.Append(rest)
		s.cond.Broadcast()
		s.mu.Unlock()
		s.signal()
		s.log.Debug("nats: publish failed, in-flight events spooled", "sink", s.name, "spooled", n, "err", err)
		if aerr != nil {
			// The window never holds more than the spool's size and the
			// spool is empty while events are in flight, so only an I/O
			// error gets here.
			lost := eventsOf(rest[n:])
			s.log.Error("nats: in-flight events could not be spooled", "sink", s.name, "lost", lost, "err", aerr)
			if s.lateLoss != nil {
				_, derr := s.spoolResult(eventsOf(rest[:n]), eventsOf(rest), aerr)
				var de *DropError
				if errors.As(derr, &de) {
					s.lateLoss(de.Reason, uint64(lost))
				}
			}
		}
	}
}

// publish sends msgs asynchronously and waits for the acks: it returns how
// many, from the start, JetStream stored.
func (s *NATSSink) publish(ctx context.Context, msgs []spoolMsg) (int, error) {
	futs, perr := s.publishAsync(msgs, make([]jetstream.PubAckFuture, 0, len(msgs)))
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
				ev := eventsOf(msgs[:n])
				s.acked.Add(uint64(ev))
				if cerr := s.spool.Commit(ents[n-1], ev); cerr != nil {
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

// Close implements Sink: it waits for the acks of what is in flight (at
// most the ack timeout and a second; what is then unacked is spooled),
// stops the replay and closes the connection. What is still spooled stays
// on disk for the next run.
func (s *NATSSink) Close() error {
	s.once.Do(func() {
		t := time.AfterFunc(s.opt.AckTimeout+time.Second, func() { s.abortOnce.Do(func() { close(s.abort) }) })
		s.mu.Lock()
		s.closing = true
		s.cond.Broadcast()
		s.mu.Unlock()
		<-s.ackDone
		t.Stop()
		close(s.stop)
	})
	<-s.done
	s.nc.Close()
	return s.spool.Close()
}
