//go:build linux && amd64

package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ebpf-sentry/ebpf-sentry/internal/browsertest"
)

// TestRunUIShowsABlockedLoadInTheFeed runs the sensor in enforce mode with
// --ui, opens the console URL it logs in chromium, has the test loader load
// a program the rules block, and waits (generous deadline) for the blocked
// load in the live feed; its program page shows the report.
func TestRunUIShowsABlockedLoadInTheFeed(t *testing.T) {
	f := startRun(t, "--ui", "127.0.0.1:0", "--event-insns", "raw")
	waitFor(t, "console URL", &f.stderr, "msg=console url=")
	m := regexp.MustCompile(`msg=console url="(http://127\.0\.0\.1:\d+/)\?token=([A-Za-z0-9_-]+)"`).FindStringSubmatch(f.stderr.String())
	if m == nil {
		t.Fatalf("no console URL with a token in:\n%s", f.stderr.String())
	}
	base, token := m[1], m[2]

	b := browsertest.New(t)
	b.Do(t, "open without the token", chromedp.Navigate(base))
	if got := browsertest.Eval[string](t, b, `document.body.textContent`); !regexp.MustCompile(`token printed at start is required`).MatchString(got) {
		t.Errorf("without the token the console answered %q", got)
	}
	b.Do(t, "open the console", chromedp.Navigate(base+"?token="+token))
	b.WaitFor(t, `document.getElementById('status').textContent === 'live'`)

	if !load(t, f.loader, "sclirunblk_ui") {
		t.Fatal("a load the rules block was not killed")
	}
	b.WaitFor(t, `Array.prototype.some.call(document.querySelectorAll('#feed tr.block'), function (r) { return r.textContent.indexOf('sclirunblk_ui') >= 0 && r.textContent.indexOf('cli-block') >= 0; })`)

	seq := browsertest.Eval[string](t, b, `Array.prototype.find.call(document.querySelectorAll('#feed tr.block'), function (r) { return r.textContent.indexOf('sclirunblk_ui') >= 0; }).dataset.seq`)
	b.Do(t, "open the program page", chromedp.Navigate(base+"prog/"+seq))
	b.WaitFor(t, `window.sentryReport !== undefined && window.sentryReport.blocks > 0`)
	if v := browsertest.Eval[string](t, b, `document.querySelector('#verdict h2').textContent`); v != "Verdict: block" {
		t.Errorf("program page verdict %q", v)
	}
	// The inventory: a scan of what is loaded now, judged by run's rules;
	// the sensor's own programs are loaded, so they are listed.
	b.Do(t, "open the inventory", chromedp.Navigate(base+"inventory"))
	inv := browsertest.Eval[string](t, b, `document.getElementById('inventory').textContent`)
	for _, want := range []string{" programs, ", "prog id ", "sentry_exit_tp", "verdict: "} {
		if !strings.Contains(inv, want) {
			t.Errorf("the inventory page lacks %q:\n%.2000s", want, inv)
		}
	}
	// The 401 page of the first request is the only expected error.
	for _, e := range b.Errors() {
		if !regexp.MustCompile(`401`).MatchString(e) {
			t.Errorf("console error: %s", e)
		}
	}
}
