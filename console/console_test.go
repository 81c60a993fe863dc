package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/browsertest"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// start serves a console on loopback with a pipeline feeding it.
func start(t testing.TB) (*Server, *output.Pipeline, string, string) {
	t.Helper()
	token, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	m := output.NewMetrics()
	c := New(token, m)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := c.Serve(ctx, "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	p := output.NewPipeline(output.Config{Metrics: m, LossInterval: -1})
	p.Add(c.Sink(), output.QueueOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return c, p, "http://" + addr.String(), token
}

// blockedLoad is a prog_load event of a program the rules blocked, with its
// raw instructions, loaded by a process with a hostile name.
func blockedLoad(name string) *output.Event {
	raw := []byte{
		0xb7, 0x00, 0, 0, 0, 0, 0, 0, // r0 = 0
		0x95, 0, 0, 0, 0, 0, 0, 0, // exit
	}
	p := &program.Program{Source: program.SourceSensor, Name: name, Type: 2, Insns: raw, InsnCnt: 2,
		Loader: &program.Loader{PID: 4242, Comm: "loader<script>"}}
	return output.NewProgLoad(output.ProgLoad{
		Time: time.Now(), Program: p, Report: analysis.Analyze(p, nil),
		Outcome: output.Outcome{Result: output.ResultDenied},
		Verdict: &output.Verdict{Action: "block", EnforcedBy: "lsm", Rules: []output.RuleMatch{{ID: "test-block", Action: "block", Why: "test"}}},
	}, output.InsnOptions{Mode: output.InsnModeRaw})
}

func TestTheTokenIsRequired(t *testing.T) {
	_, _, url, token := start(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/events", "/counters", "/prog/1", "/inventory", "/?token=wrong" + token[:4]} {
		resp, err := noRedirect.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, resp.StatusCode)
		}
	}
	jar, _ := cookiejar.New(nil)
	withJar := &http.Client{Jar: jar}
	resp, err := withJar.Get(url + "/?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.RawQuery != "" {
		t.Errorf("GET /?token=…: %d at %s, want 200 after a redirect to the clean URL", resp.StatusCode, resp.Request.URL)
	}
	resp, err = withJar.Get(url + "/counters")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /counters with the cookie: %d", resp.StatusCode)
	}
}

func TestServeRefusesNonLoopbackUnlessAllowed(t *testing.T) {
	c := New("t", nil)
	_, err := c.Serve(context.Background(), "0.0.0.0:0", false)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("Serve on 0.0.0.0 without remote: %v", err)
	}
}

// TestConsoleInBrowser: with the token, the page loads with no console
// error; a blocked load emitted into the pipeline appears in the live feed
// (generous deadline), filters hide and show it, its program page shows the
// report, and the counters come from the metrics.
func TestConsoleInBrowser(t *testing.T) {
	_, p, url, token := start(t)
	b := browsertest.New(t)
	eval := func(expr string) string { t.Helper(); return browsertest.Eval[string](t, b, expr) }

	b.Do(t, "open", chromedp.Navigate(url+"/?token="+token))
	b.WaitFor(t, `document.getElementById('status').textContent === 'live'`)

	p.Emit(blockedLoad("evil<b>name</b>"))
	// A load appears within a second on a quiet machine; the deadline is
	// generous because this one is shared.
	b.WaitFor(t, `document.querySelector('#feed tr.block') !== null`)
	if got := eval(`document.querySelector('#feed tr.block').textContent`); !strings.Contains(got, "evil<b>name</b>") || !strings.Contains(got, "test-block") {
		t.Errorf("feed row %q lacks the program name as text or the rule", got)
	}
	if n := eval(`String(document.querySelectorAll('#feed b').length)`); n != "0" {
		t.Errorf("the program name made %s <b> elements", n)
	}
	filter := func(id, value string) string {
		t.Helper()
		return eval(fmt.Sprintf(`(function () {
			var f = document.getElementById(%q); f.value = %q; f.dispatchEvent(new Event('input'));
			return String(document.querySelector('#feed tr.block').hidden);
		})()`, id, value))
	}
	for _, c := range []struct{ id, value, hidden string }{
		{"f-verdict", "alert", "true"}, {"f-verdict", "block", "false"},
		{"f-rule", "other-rule", "true"}, {"f-rule", "test-block", "false"},
		{"f-loader", "sshd", "true"}, {"f-loader", "4242", "false"},
	} {
		if got := filter(c.id, c.value); got != c.hidden {
			t.Errorf("filter %s=%s: the blocked load hidden=%s, want %s", c.id, c.value, got, c.hidden)
		}
	}
	b.WaitFor(t, `document.getElementById('counters').textContent.indexOf('load_outcomes_total {action=block result=denied}') >= 0`)

	seq := eval(`document.querySelector('#feed tr.block').dataset.seq`)
	b.Do(t, "open program", chromedp.Navigate(fmt.Sprintf("%s/prog/%s", url, seq)))
	b.WaitFor(t, `window.sentryReport !== undefined && window.sentryReport.blocks === 1`)
	if v := eval(`document.querySelector('#verdict h2').textContent`); v != "Verdict: block" {
		t.Errorf("program page verdict %q", v)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// The inventory page shows what its function writes, each time, as inert
// text: a hostile program name with markup and a script stays text. Without
// an inventory function the page says so (404).
func TestInventoryPageIsInertText(t *testing.T) {
	c, _, url, token := start(t)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	get := func() (int, string) {
		resp, err := client.Get(url + "/inventory?token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.String()
	}
	if code, _ := get(); code != http.StatusNotFound {
		t.Errorf("no inventory function: %d, want 404", code)
	}
	scans := 0
	c.SetInventory(func(w io.Writer) error {
		scans++
		_, err := fmt.Fprintf(w, "1 programs\nprog id 7 tag 00\n  name: <script>window.pwned=1</script>&amp;\nverdict: alert (1 rules matched)\n")
		return err
	})
	code, body := get()
	if code != http.StatusOK {
		t.Fatalf("inventory: %d", code)
	}
	if strings.Contains(body, "<script") || !strings.Contains(body, "&lt;script&gt;window.pwned=1&lt;/script&gt;&amp;amp;") {
		t.Errorf("the hostile name is not escaped:\n%s", body)
	}
	if !strings.Contains(body, "verdict: alert (1 rules matched)") {
		t.Errorf("the verdict is missing:\n%s", body)
	}
	get()
	if scans != 2 {
		t.Errorf("%d scans for two requests, want one each", scans)
	}
}
