package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/report"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

//go:embed feed.html
var feedHTML string

var feedTemplate = template.Must(template.New("feed").Parse(feedHTML))

// keep is how many recent events the console remembers (the feed's
// backlog and the program pages).
const keep = 1000

// Server is the console. Its Sink receives the pipeline's records.
type Server struct {
	token   string
	metrics *output.Metrics

	mu     sync.Mutex
	events []stored // the last keep events, oldest first
	subs   map[chan []byte]struct{}
	// Dropped counts feed messages a slow browser did not take in time.
	dropped uint64

	// inventory writes what is loaded now (scan's text form); nil: the
	// inventory page says it is not available.
	inventory func(w io.Writer) error
}

// SetInventory gives the console its inventory page: f writes the programs
// loaded now, judged (scan's text form), each time the page is asked for.
func (s *Server) SetInventory(f func(w io.Writer) error) {
	s.mu.Lock()
	s.inventory = f
	s.mu.Unlock()
}

type stored struct {
	seq uint64
	ev  *output.Event
	raw []byte
}

// NewToken returns a random token for New.
func NewToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// New makes a console requiring token; metrics may be nil (no counters).
func New(token string, metrics *output.Metrics) *Server {
	return &Server{token: token, metrics: metrics, subs: map[chan []byte]struct{}{}}
}

// Sink is the output.Sink that feeds the console.
func (s *Server) Sink() output.Sink { return sink{s} }

type sink struct{ s *Server }

func (sink) Name() string { return "console" }
func (sink) Close() error { return nil }
func (k sink) Send(_ context.Context, recs []output.Record) (int, error) {
	for _, r := range recs {
		k.s.publish(r.JSON)
	}
	return len(recs), nil
}

// publish remembers an event and sends it to every open feed.
func (s *Server) publish(raw []byte) {
	var ev output.Event
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Event == "" {
		return // not our JSON shape (ECS): the feed shows json events only
	}
	raw = append([]byte(nil), raw...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, stored{ev.Seq, &ev, raw})
	if len(s.events) > keep {
		s.events = s.events[len(s.events)-keep:]
	}
	for c := range s.subs {
		select {
		case c <- raw:
		default:
			s.dropped++
		}
	}
}

// Handler serves the console.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.feedPage)
	mux.HandleFunc("GET /events", s.feed)
	mux.HandleFunc("GET /prog/{seq}", s.progPage)
	mux.HandleFunc("GET /counters", s.counters)
	mux.HandleFunc("GET /inventory", s.inventoryPage)
	authed := s.auth(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" { // browsers ask unprompted; no icon, no error
			w.WriteHeader(http.StatusNoContent)
			return
		}
		authed.ServeHTTP(w, r)
	})
}

const cookieName = "ebpf_sentry_console"

// auth requires the token as ?token= (then sets a cookie and redirects to
// the clean URL) or as the cookie.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("X-Frame-Options", "DENY")
		if t := r.URL.Query().Get("token"); t != "" && s.ok(t) {
			http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			u := *r.URL
			q := u.Query()
			q.Del("token")
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if c, err := r.Cookie(cookieName); err == nil && s.ok(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		http.Error(w, "ebpf-sentry console: the token printed at start is required (open the URL it gave)", http.StatusUnauthorized)
	})
}

func (s *Server) ok(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.token)) == 1
}

func (s *Server) feedPage(w http.ResponseWriter, r *http.Request) {
	nonce, _ := NewToken()
	w.Header().Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-"+nonce+"'; base-uri 'none'; form-action 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	feedTemplate.Execute(w, struct{ Nonce string }{nonce})
}

// inventoryPage shows what is loaded now, judged: a fresh scan at each
// request, as inert text (every byte HTML-escaped; no script at all).
func (s *Server) inventoryPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.inventory
	s.mu.Unlock()
	if f == nil {
		http.Error(w, "no inventory: this console was started without one", http.StatusNotFound)
		return
	}
	var buf bytes.Buffer
	err := f(&buf)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ebpf-sentry inventory</title></head><body>\n<h1>Loaded now</h1>\n<p><a href=\"/\">live feed</a></p>\n")
	if err != nil {
		io.WriteString(w, "<p>scan failed: "+html.EscapeString(err.Error())+"</p>\n")
	}
	io.WriteString(w, "<pre id=\"inventory\">"+html.EscapeString(buf.String())+"</pre>\n</body></html>\n")
}

// feed streams events as server-sent events: the remembered ones first,
// then each new one. One event per message, as its JSON.
func (s *Server) feed(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	c := make(chan []byte, 256)
	s.mu.Lock()
	backlog := make([][]byte, len(s.events))
	for i, e := range s.events {
		backlog[i] = e.raw
	}
	s.subs[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, c)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	send := func(b []byte) { fmt.Fprintf(w, "data: %s\n\n", b) } // JSON has no raw newline
	for _, b := range backlog {
		send(b)
	}
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-c:
			send(b)
			fl.Flush()
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			fl.Flush()
		}
	}
}

// progPage renders the report of the program of a remembered prog_load
// event, from the raw instructions the event carries (--event-insns auto,
// the default, raw or both).
func (s *Server) progPage(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		http.Error(w, "bad event number", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	var ev *output.Event
	for _, e := range s.events {
		if e.seq == seq {
			ev = e.ev
		}
	}
	s.mu.Unlock()
	if ev == nil || ev.Prog == nil {
		http.Error(w, "no such program load among the last events", http.StatusNotFound)
		return
	}
	p, err := output.ProgramFromEvent(ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	rep := analysis.Analyze(p, nil)
	ins, _ := p.Decode()
	in := report.Input{Program: p, Analysis: rep, Insns: ins, ProgTypeName: ev.Prog.Type.Name, AttachTypeName: ev.Prog.ExpectedAttachType.Name}
	if v := ev.Verdict; v != nil {
		var rv rules.Verdict
		for _, m := range v.Rules {
			a := actionOf(m.Action)
			rv.Hits = append(rv.Hits, rules.Hit{ID: m.ID, Action: a, Description: m.Why, Tags: m.Tags})
		}
		rv.Action = actionOf(v.Action)
		in.Verdicts = []rules.Verdict{rv}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := report.Write(w, in); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func actionOf(s string) rules.Action {
	switch s {
	case "block":
		return rules.ActionBlock
	case "alert":
		return rules.ActionAlert
	}
	return rules.ActionNone
}

// counters serves the ebpf_sentry_ metrics as JSON: [name, labels, value].
func (s *Server) counters(w http.ResponseWriter, r *http.Request) {
	type sample struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
		Value  float64           `json:"value"`
	}
	out := struct {
		Samples []sample `json:"samples"`
		Note    string   `json:"note,omitempty"`
		Dropped uint64   `json:"feed_dropped"`
	}{Samples: []sample{}}
	s.mu.Lock()
	out.Dropped = s.dropped
	s.mu.Unlock()
	if s.metrics == nil {
		out.Note = "no metrics: start run with --metrics-addr to see the counters here"
	} else if fams, err := s.metrics.Registry().Gather(); err == nil {
		for _, f := range fams {
			if !strings.HasPrefix(f.GetName(), "ebpf_sentry_") {
				continue
			}
			for _, m := range f.GetMetric() {
				sm := sample{Name: f.GetName(), Labels: map[string]string{}}
				for _, l := range m.GetLabel() {
					sm.Labels[l.GetName()] = l.GetValue()
				}
				switch {
				case m.Counter != nil:
					sm.Value = m.Counter.GetValue()
				case m.Gauge != nil:
					sm.Value = m.Gauge.GetValue()
				case m.Histogram != nil:
					sm.Name += "_count"
					sm.Value = float64(m.Histogram.GetSampleCount())
				}
				out.Samples = append(out.Samples, sm)
			}
		}
		sort.SliceStable(out.Samples, func(i, j int) bool { return out.Samples[i].Name < out.Samples[j].Name })
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// Serve listens on addr and serves the console until ctx ends. Unless
// remote is set, addr must be a loopback address.
func (s *Server) Serve(ctx context.Context, addr string, remote bool) (net.Addr, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("console address %q: %w", addr, err)
	}
	if !remote {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("console address %q is not a loopback address (the console is local; allow other addresses explicitly)", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
