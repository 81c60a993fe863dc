package output

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WebhookOptions configures a WebhookSink.
type WebhookOptions struct {
	URL     string
	Headers http.Header // sent with every request, e.g. Authorization
	CAFile  string      // PEM bundle trusted in addition to the system roots
	// Timeout bounds one request; a slow receiver makes it retry. Default 10s.
	Timeout time.Duration
	// Attempts is how many times one batch is tried; default 6.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubling up to
	// MaxBackoff (defaults 500ms and 30s). A Retry-After header (seconds)
	// from the receiver replaces it, capped at MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxBody splits a batch into several POSTs so that none exceeds it
	// (an event larger than MaxBody still goes, alone). Default 4 MiB.
	MaxBody int
}

// WebhookSink POSTs batches of events as a JSON array. A batch that fails
// with a network error, a timeout, 408, 429 or 5xx is retried with exponential
// backoff; one refused with another 4xx, or by certificate verification, is
// dropped at once (retrying cannot help). Delivery is at-least-once: a batch whose response was lost is sent
// again, so receivers de-duplicate on the event id.
type WebhookSink struct {
	opt    WebhookOptions
	client *http.Client
	name   string
	buf    bytes.Buffer
}

// NewWebhookSink checks the options and prepares the HTTP client.
func NewWebhookSink(opt WebhookOptions) (*WebhookSink, error) {
	u, err := url.Parse(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("webhook url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want http(s)://host/path", opt.URL)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 6
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 500 * time.Millisecond
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 4 << 20
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("webhook CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webhook CA %s: no PEM certificate in it", opt.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	// The name appears in metrics labels and logs: no credentials from the URL.
	u.User = nil
	u.RawQuery = ""
	return &WebhookSink{
		opt:    opt,
		client: &http.Client{Transport: tr, Timeout: opt.Timeout},
		name:   "webhook:" + u.String(),
	}, nil
}

// Name implements Sink.
func (s *WebhookSink) Name() string { return s.name }

// Send implements Sink: the batch goes as one POST, or as several when it
// would exceed MaxBody, each retried as described. Events of a POST that
// finally failed and of the POSTs not tried after it are counted as lost.
func (s *WebhookSink) Send(ctx context.Context, recs []Record) (int, error) {
	done := 0
	for done < len(recs) {
		n := 1
		size := 2 + len(recs[done].JSON)
		for done+n < len(recs) && size+1+len(recs[done+n].JSON) <= s.opt.MaxBody {
			size += 1 + len(recs[done+n].JSON)
			n++
		}
		if err := s.sendBatch(ctx, recs[done:done+n]); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// sendBatch POSTs recs as one JSON array with retries.
func (s *WebhookSink) sendBatch(ctx context.Context, recs []Record) error {
	s.buf.Reset()
	s.buf.WriteByte('[')
	for i, r := range recs {
		if i > 0 {
			s.buf.WriteByte(',')
		}
		s.buf.Write(r.JSON)
	}
	s.buf.WriteByte(']')
	body := s.buf.Bytes()
	wait := s.opt.Backoff
	var last error
	for attempt := 1; ; attempt++ {
		retryAfter, err := s.post(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		var de *DropError
		if errors.As(err, &de) && (de.Reason == "rejected" || de.Reason == "tls") {
			return err // retrying cannot fix a refusal or an untrusted certificate
		}
		if attempt >= s.opt.Attempts {
			break
		}
		d := wait
		if retryAfter > 0 {
			d = min(retryAfter, s.opt.MaxBackoff)
		}
		wait = min(2*wait, s.opt.MaxBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &DropError{Reason: ReasonShutdown, Err: fmt.Errorf("%s: gave up retrying: %w", s.name, last)}
		case <-t.C:
		}
	}
	return fmt.Errorf("%s: %d attempts: %w", s.name, s.opt.Attempts, last)
}

// post makes one attempt. It returns the receiver's Retry-After, if any.
func (s *WebhookSink) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opt.URL, bytes.NewReader(body))
	if err != nil {
		return 0, &DropError{Reason: "rejected", Err: err}
	}
	for k, v := range s.opt.Headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, &DropError{Reason: httpErrReason(err), Err: err}
	}
	// Drain a little so the connection can be reused; the body is not ours.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		var ra time.Duration
		if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs > 0 {
			ra = time.Duration(secs) * time.Second
		}
		return ra, &DropError{Reason: "server_error", Err: fmt.Errorf("receiver answered %s", resp.Status)}
	default:
		return 0, &DropError{Reason: "rejected", Err: fmt.Errorf("receiver refused the batch: %s", resp.Status)}
	}
}

func httpErrReason(err error) string {
	var ne net.Error
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ce):
		return "tls"
	case errors.Is(err, context.Canceled):
		return ReasonShutdown
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return "unreachable"
}

// Close implements Sink.
func (s *WebhookSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
