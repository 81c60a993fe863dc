package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ebpf-sentry/ebpf-sentry/cfg"
	"github.com/ebpf-sentry/ebpf-sentry/internal/browsertest"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// Open loads a local file and waits for the report's script to be ready.
func Open(t testing.TB, b *browsertest.Browser, path string) {
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
	b := browsertest.New(t)
	Open(t, b, writeFile(t, in))

	t.Run("the page loads with no console errors", func(t *testing.T) {
		if errs := b.Errors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})

	t.Run("the graph renders one element per block", func(t *testing.T) {
		n := browsertest.Eval[int](t, b, `document.querySelectorAll('#graph .block').length`)
		if n != len(g.Blocks) || n < 5 {
			t.Errorf("%d blocks drawn, the program has %d", n, len(g.Blocks))
		}
	})

	t.Run("clicking a block scrolls to its first instruction", func(t *testing.T) {
		last := g.Blocks[len(g.Blocks)-1] // far from the top of the listing
		slot := g.Start(last)
		sel := fmt.Sprintf(`#graph .block[data-block="%d"] rect`, last.ID)
		if browsertest.Eval[int](t, b, `window.sentryReport.selected()`) == slot {
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
		if got := browsertest.Eval[int](t, b, `window.sentryReport.selected()`); got != slot {
			t.Errorf("after the click the selected slot is %d, want %d", got, slot)
		}
	})

	t.Run("a jump link in the listing leads to its target and back", func(t *testing.T) {
		target := browsertest.Eval[int](t, b, `(function () {
			var a = document.querySelector('#disasm-rows .row a.slot');
			if (!a) return -1;
			a.click();
			return +a.dataset.slot;
		})()`)
		selected := browsertest.Eval[int](t, b, `window.sentryReport.selected()`)
		if target < 0 || selected != target {
			t.Errorf("followed a jump link to %d, selected %d", target, selected)
		}
	})
}

func TestHostileNameIsInertInBrowser(t *testing.T) {
	p := &program.Program{Source: program.SourceSensor, Name: HostileName, Insns: Synthetic(40)}
	b := browsertest.New(t)
	Open(t, b, writeFile(t, input(t, p, nil)))
	pwned := browsertest.Eval[bool](t, b, `window.pwned !== undefined`)
	shown := browsertest.Eval[string](t, b, `document.getElementById('prog-name').textContent`)
	imgs := browsertest.Eval[int](t, b, `document.querySelectorAll('img').length`)
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
	br := browsertest.New(b)
	b.ResetTimer()
	for b.Loop() {
		Open(b, br, path)
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
	br := browsertest.New(b)
	b.ResetTimer()
	for b.Loop() {
		br.Do(b, "open listing", chromedp.Navigate("file://"+path))
		br.WaitFor(b, `document.readyState === 'complete' && document.body.innerText.length > 0`)
	}
}
