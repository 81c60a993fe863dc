package output

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// SyslogOptions configures a SyslogSink.
type SyslogOptions struct {
	Network  string // "udp", "tcp" or "unixgram"
	Addr     string // host:port, or the socket path for unixgram
	Facility int    // 1…23; 0 (kern, reserved for the kernel) means the default, 16 (local0)
	Hostname string // HOSTNAME field; default os.Hostname()
	AppName  string // APP-NAME field; default "ebpf-sentry"
	// MaxMessage is the largest message sent; a larger one is counted as
	// lost (reason too_large) instead of being cut. Default: 65000 for UDP
	// (one datagram), 1 MiB otherwise. The receiver must accept as much
	// (rsyslog: global(maxMessageSize=…)).
	MaxMessage  int
	DialTimeout time.Duration // default 2s
	// WriteTimeout bounds one batch; a stalled receiver costs queue space,
	// never the producer. Default 5s.
	WriteTimeout time.Duration
}

// SyslogSink sends each event as one RFC 5424 message whose MSG is the
// event's JSON. Over UDP and unix datagram sockets each message is a
// datagram; over TCP messages are framed by octet counting (RFC 6587 3.4.1).
// A broken connection is redialled with exponential backoff; while the
// receiver is unreachable, records are counted as lost, not queued forever.
type SyslogSink struct {
	opt      SyslogOptions
	header   string // " HOSTNAME APP-NAME PROCID " between timestamp and MSGID
	conn     net.Conn
	nextDial time.Time
	backoff  time.Duration
	lastErr  error
	buf      []byte
}

const (
	dialBackoffMin = 200 * time.Millisecond
	dialBackoffMax = 30 * time.Second
)

// NewSyslogSink checks the options; it connects on first use, so a receiver
// that starts after the sentry is fine.
func NewSyslogSink(opt SyslogOptions) (*SyslogSink, error) {
	switch opt.Network {
	case "udp", "tcp", "unixgram":
	default:
		return nil, fmt.Errorf("syslog network %q: want udp, tcp or unixgram", opt.Network)
	}
	if opt.Addr == "" {
		return nil, fmt.Errorf("syslog %s: empty address", opt.Network)
	}
	if opt.Facility == 0 {
		opt.Facility = 16
	}
	if opt.Facility < 0 || opt.Facility > 23 {
		return nil, fmt.Errorf("syslog facility %d: want 0…23", opt.Facility)
	}
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
	}
	if opt.AppName == "" {
		opt.AppName = "ebpf-sentry"
	}
	if opt.MaxMessage <= 0 {
		opt.MaxMessage = 1 << 20
		if opt.Network == "udp" {
			opt.MaxMessage = 65000
		}
	}
	opt.MaxMessage = min(opt.MaxMessage, 9_999_999) // sendStream's 7-digit length field
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 2 * time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 5 * time.Second
	}
	s := &SyslogSink{opt: opt}
	s.header = " " + headerField(opt.Hostname, 255) + " " + headerField(opt.AppName, 48) + " " + strconv.Itoa(os.Getpid()) + " "
	return s, nil
}

// headerField makes an RFC 5424 header field: 1…max printable ASCII
// characters without spaces, or "-" (NILVALUE).
func headerField(s string, maxLen int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < maxLen; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// Name implements Sink.
func (s *SyslogSink) Name() string {
	n := s.opt.Network
	if n == "unixgram" {
		n = "unix"
	}
	return "syslog+" + n + ":" + s.opt.Addr
}

// appendMessage appends "<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG";
// to a local unix socket "<PRI>Mmm dd hh:mm:ss APP[PROCID]: MSG" instead, the
// form syslog(3) sends to /dev/log: its readers (rsyslog's imuxsock and
// journald, with their default parsers) take the RFC 5424 VERSION "1" for
// the tag.
func (s *SyslogSink) appendMessage(b []byte, r Record) []byte {
	if s.opt.Network == "unixgram" {
		b = append(b, '<')
		b = strconv.AppendInt(b, int64(s.opt.Facility*8+int(r.Severity)), 10)
		b = append(b, '>')
		b = r.Time.Local().AppendFormat(b, time.Stamp)
		b = append(b, ' ')
		b = append(b, headerField(s.opt.AppName, 48)...)
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(os.Getpid()), 10)
		b = append(b, "]: "...)
		return append(b, r.JSON...)
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(s.opt.Facility*8+int(r.Severity)), 10)
	b = append(b, ">1 "...)
	b = r.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, s.header...)
	b = append(b, r.Kind...)
	b = append(b, " - "...)
	return append(b, r.JSON...)
}

// Send implements Sink.
func (s *SyslogSink) Send(ctx context.Context, recs []Record) (int, error) {
	if err := s.connect(ctx); err != nil {
		return 0, err
	}
	if s.opt.Network == "tcp" {
		if !s.peerOpen() {
			// The receiver closed the connection while we were idle; a
			// write would still succeed locally and the batch vanish.
			s.drop()
			if err := s.connect(ctx); err != nil {
				return 0, err
			}
		}
		return s.sendStream(recs)
	}
	return s.sendDatagrams(recs)
}

func (s *SyslogSink) connect(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	if time.Now().Before(s.nextDial) {
		return &DropError{Reason: dialReason(s.lastErr), Err: fmt.Errorf("%s: waiting to redial after: %w", s.Name(), s.lastErr)}
	}
	d := net.Dialer{Timeout: s.opt.DialTimeout}
	c, err := d.DialContext(ctx, s.opt.Network, s.opt.Addr)
	if err != nil {
		s.failed(err)
		return &DropError{Reason: dialReason(err), Err: fmt.Errorf("dial %s: %w", s.Name(), err)}
	}
	s.conn = c
	return nil
}

// failed drops the connection and holds off redialling with exponential
// backoff, so a dead receiver costs one error per backoff period, not one
// dial per event. The backoff resets after a successful send.
func (s *SyslogSink) failed(err error) {
	s.drop()
	s.backoff = min(max(2*s.backoff, dialBackoffMin), dialBackoffMax)
	s.nextDial = time.Now().Add(s.backoff)
	s.lastErr = err
}

func dialReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ENOENT):
		return "unreachable" // unix socket path missing
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "unreachable"
}

func (s *SyslogSink) drop() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// sendDatagrams sends one datagram per record. An oversized record is
// skipped (and counted as too_large) so it cannot hold back the others.
func (s *SyslogSink) sendDatagrams(recs []Record) (int, error) {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
	sent := 0
	var tooLarge error
	for _, r := range recs {
		s.buf = s.appendMessage(s.buf[:0], r)
		if len(s.buf) > s.opt.MaxMessage {
			tooLarge = s.tooLarge(r, len(s.buf))
			continue
		}
		if _, err := s.conn.Write(s.buf); err != nil {
			// Over UDP a refusal (ICMP port unreachable) reports on the
			// datagram after the lost one; back off so the following
			// ones are counted too rather than sent into the void.
			s.failed(err)
			return sent, &DropError{Reason: sendReason(err), Err: fmt.Errorf("send to %s: %w", s.Name(), err)}
		}
		sent++
	}
	s.backoff = 0
	return sent, tooLarge
}

// appendFramed appends the records as octet-counted messages ("LEN SP
// MSG"), skipping those over MaxMessage, and says how many it framed.
func (s *SyslogSink) appendFramed(b []byte, recs []Record) ([]byte, int, error) {
	sent := 0
	var tooLarge error
	for _, r := range recs {
		start := len(b)
		b = append(b, "0000000 "...) // length placeholder, fixed below
		b = s.appendMessage(b, r)
		n := len(b) - start - 8
		if n > s.opt.MaxMessage {
			tooLarge = s.tooLarge(r, n)
			b = b[:start]
			continue
		}
		// Write the decimal length over the placeholder and close the gap
		// its unused digits leave.
		digits := strconv.Itoa(n)
		copy(b[start:], digits)
		b[start+len(digits)] = ' '
		if pad := 7 - len(digits); pad > 0 {
			copy(b[start+len(digits)+1:], b[start+8:])
			b = b[:len(b)-pad]
		}
		sent++
	}
	return b, sent, tooLarge
}

func (s *SyslogSink) tooLarge(r Record, n int) error {
	return &DropError{Reason: "too_large", Err: fmt.Errorf("%s: %s event of %d bytes exceeds %d", s.Name(), r.Kind, n, s.opt.MaxMessage)}
}

// sendStream writes the whole batch, octet-counted, in one write; if the
// connection broke it redials once and resends the batch, so a receiver may
// see a message twice (at-least-once) but a live one loses none.
func (s *SyslogSink) sendStream(recs []Record) (int, error) {
	var sent int
	var tooLarge error
	s.buf, sent, tooLarge = s.appendFramed(s.buf[:0], recs)
	if sent == 0 {
		return 0, tooLarge
	}
	for attempt := 0; ; attempt++ {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
		_, err := s.conn.Write(s.buf)
		if err == nil {
			break
		}
		if attempt > 0 {
			s.failed(err)
			return 0, &DropError{Reason: sendReason(err), Err: fmt.Errorf("send to %s: %w", s.Name(), err)}
		}
		s.drop()
		if cerr := s.connect(context.Background()); cerr != nil {
			return 0, cerr
		}
	}
	s.backoff = 0
	return sent, tooLarge
}

func sendReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EMSGSIZE):
		return "too_large"
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EAGAIN):
		return "receiver_busy"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "send_failed"
}

// Close implements Sink.
func (s *SyslogSink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
