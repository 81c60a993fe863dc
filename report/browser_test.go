package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ebpf-sentry/ebpf-sentry/cfg"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// browser is a headless Debian chromium driven through chromedp, with
// everything that would reach the network switched off, and the page's
// console errors and uncaught exceptions collected.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// Browser starts chromium for t (skipped, or failed in CI, when it is not
// installed: scripts/deps.sh installs it). Chromium's sandbox needs a
// non-root user namespace setup that CI (root) does not have, hence
// --no-sandbox; the pages are our own local files.
func Browser(t testing.TB) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testutils.SkipOrFail(t, "Debian's chromium is not installed (scripts/deps.sh installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1600),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	// The first call starts the browser; it must not carry a deadline.
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "assert" {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.errors = append(b.errors, "log: "+ev.Entry.Text)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Errors returns the console errors and exceptions seen so far.
func (b *browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Do runs actions with a generous deadline.
func (b *browser) Do(t testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t testing.TB, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor polls a JavaScript predicate until it holds (generous deadline).
func (b *browser) WaitFor(t testing.TB, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// Open loads a local file and waits for the report's script to be ready.
func (b *browser) Open(t testing.TB, path string) {
	t.Helper()
	b.Do(t, "open "+path, chromedp.Navigate("file://"+path))
	b.WaitFor(t, `window.sentryReport !== undefined && window.sentryReport.drawn() > 0 && document.querySelector('#disasm-rows .row') !== null`)
}

func writeFile(t testing.TB, in Input) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, in); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReportInBrowser(t *testing.T) {
	progs, err := program.FromELF("../testdata/evasion.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	var p *program.Program
	for _, q := range progs {
		if q.Name == "det_pam_split" {
			p = q
		}
	}
	in := input(t, p, set)
	g := cfg.Build(in.Insns, cfg.Options{})
	b := Browser(t)
	b.Open(t, writeFile(t, in))

	t.Run("the page loads with no console errors", func(t *testing.T) {
		if errs := b.Errors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})

	t.Run("the graph renders one element per block", func(t *testing.T) {
		n := Eval[int](t, b, `document.querySelectorAll('#graph .block').length`)
		if n != len(g.Blocks) || n < 5 {
			t.Errorf("%d blocks drawn, the program has %d", n, len(g.Blocks))
		}
	})

	t.Run("clicking a block scrolls to its first instruction", func(t *testing.T) {
		last := g.Blocks[len(g.Blocks)-1] // far from the top of the listing
		slot := g.Start(last)
		sel := fmt.Sprintf(`#graph .block[data-block="%d"] rect`, last.ID)
		if Eval[int](t, b, `window.sentryReport.selected()`) == slot {
			t.Fatalf("slot %d is selected before the click", slot)
		}
		b.Do(t, "click block",
			chromedp.ScrollIntoView(chromedp.CSS(`#graph`)),
			chromedp.Click(chromedp.CSS(sel)))
		// The row exists (the listing draws only what is in view), is
		// highlighted, and lies inside the listing's visible area.
		b.WaitFor(t, fmt.Sprintf(`(function () {
			var r = document.querySelector('#disasm-rows .row[data-slot="%d"]');
			if (!r) return false;
			var a = r.getBoundingClientRect(), d = document.getElementById('disasm').getBoundingClientRect();
			return r.classList.contains('hl') && a.top >= d.top && a.bottom <= d.bottom;
		})()`, slot))
		if got := Eval[int](t, b, `window.sentryReport.selected()`); got != slot {
			t.Errorf("after the click the selected slot is %d, want %d", got, slot)
		}
	})

	t.Run("a jump link in the listing leads to its target and back", func(t *testing.T) {
		target := Eval[int](t, b, `(function () {
			var a = document.querySelector('#disasm-rows .row a.slot');
			if (!a) return -1;
			a.click();
			return +a.dataset.slot;
		})()`)
		selected := Eval[int](t, b, `window.sentryReport.selected()`)
		if target < 0 || selected != target {
			t.Errorf("followed a jump link to %d, selected %d", target, selected)
		}
	})
}

func TestHostileNameIsInertInBrowser(t *testing.T) {
	p := &program.Program{Source: program.SourceSensor, Name: HostileName, Insns: Synthetic(40)}
	b := Browser(t)
	b.Open(t, writeFile(t, input(t, p, nil)))
	pwned := Eval[bool](t, b, `window.pwned !== undefined`)
	shown := Eval[string](t, b, `document.getElementById('prog-name').textContent`)
	imgs := Eval[int](t, b, `document.querySelectorAll('img').length`)
	if pwned {
		t.Error("the payload in the program name ran")
	}
	if imgs != 0 {
		t.Errorf("the name made %d <img> elements", imgs)
	}
	if want := `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">\u{202e}evil`; shown != want {
		t.Errorf("name shown as %q, want the inert text %q", shown, want)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// BenchmarkOpenHTMLReport100k: opening the HTML report of a
// 100,000-instruction program in chromium until the graph and the listing
// are drawn (target ≤ 3 s), beside opening the kernel-form text listing of
// the same program (baseline, the same run).
func BenchmarkOpenHTMLReport100k(b *testing.B) {
	p := &program.Program{Source: program.SourceRaw, Name: "big", Insns: Synthetic(100_000)}
	path := writeFile(b, input(b, p, nil))
	br := Browser(b)
	b.ResetTimer()
	for b.Loop() {
		br.Open(b, path)
	}
	b.StopTimer()
	if errs := br.Errors(); len(errs) > 0 {
		b.Fatalf("console errors: %v", errs)
	}
}

func BenchmarkOpenTextListing100k(b *testing.B) {
	p := &program.Program{Source: program.SourceRaw, Name: "big", Insns: Synthetic(100_000)}
	in := input(b, p, nil)
	var text strings.Builder
	for _, ins := range in.Insns {
		fmt.Fprintf(&text, "%d: %s\n", ins.Index, ins)
	}
	path := filepath.Join(b.TempDir(), "listing.txt")
	if err := os.WriteFile(path, []byte(text.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	br := Browser(b)
	b.ResetTimer()
	for b.Loop() {
		br.Do(b, "open listing", chromedp.Navigate("file://"+path))
		br.WaitFor(b, `document.readyState === 'complete' && document.body.innerText.length > 0`)
	}
}
