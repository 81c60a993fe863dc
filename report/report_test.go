package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/cfg"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// HostileName is a program name an attacker would choose to attack the
// analyst's browser: markup, a script, an event handler and a right-to-left
// override that would reverse the text after it.
const HostileName = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">\u202eevil"

type noKfuncs struct{}

func (noKfuncs) KfuncName(int32, int16) (string, bool) { return "", false }

// Synthetic builds a raw program of about n slots in units of 8: a
// conditional jump over a helper call, a map reference and a loop back.
func Synthetic(n int) []byte {
	var b []byte
	put := func(code, dst, src uint8, off int16, imm int32) {
		b = insn.Slot{Code: code, Dst: dst, Src: src, Off: off, Imm: imm}.Append(b)
	}
	for len(b)/insn.Size+8 <= n-2 {
		put(0xb7, 1, 0, 0, int32(len(b))) // r1 = K
		put(0x15, 1, 0, 2, 3)             // if r1 == 3 goto +2
		put(0x85, 0, 0, 0, 14)            // call bpf_get_current_pid_tgid
		put(0xb7, 0, 0, 0, 0)             // r0 = 0
		put(insn.OpLdImm64, 2, 1, 0, 3)   // r2 = map fd 3
		put(0, 0, 0, 0, 0)                //
		put(0x07, 1, 0, 0, 1)             // r1 += 1
		put(0x25, 1, 0, -8, 5)            // if r1 > 5 goto -8 (back to the unit's start)
	}
	put(0xb7, 0, 0, 0, 0)
	put(0x95, 0, 0, 0, 0)
	return b
}

// input prepares the report input of a program as inspect does.
func input(t testing.TB, p *program.Program, set *rules.Set) Input {
	t.Helper()
	r := analysis.Analyze(p, &analysis.Options{Kfuncs: noKfuncs{}})
	ins, _ := p.Decode()
	in := Input{Program: p, Analysis: r, Insns: ins, ProgTypeName: analysis.ProgTypeName(p.Type)}
	if set != nil {
		in.Verdicts = []rules.Verdict{rules.Evaluate(set, p, r)}
	}
	return in
}

func write(t testing.TB, in Input) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestHostileProgramNameIsInertText(t *testing.T) {
	p := &program.Program{Source: program.SourceSensor, Name: HostileName, Insns: Synthetic(40), License: HostileName}
	html := write(t, input(t, p, nil))
	for _, bad := range []string{"<script>window", "<img", "\u202e"} {
		if strings.Contains(html, bad) {
			t.Errorf("the report holds %q raw", bad)
		}
	}
	// The name is shown, escaped for HTML, with the override spelled out.
	if !strings.Contains(html, `<span id="prog-name" class="name">&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=&#34;window.pwned=2&#34;&gt;\u{202e}evil</span>`) {
		i := strings.Index(html, `id="prog-name"`)
		t.Errorf("name not shown as escaped text: %.200s", html[i:])
	}
	// Exactly our two script elements, and the executable one carries the
	// nonce the policy allows.
	if n := strings.Count(html, "<script"); n != 2 {
		t.Errorf("%d script elements, want 2 (data and code)", n)
	}
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(html)
	if m == nil || !strings.Contains(html, `<script nonce="`+m[1]+`">`) {
		t.Error("the script's nonce does not match the Content-Security-Policy")
	}
}

func TestReportLoadsNothingFromTheNetwork(t *testing.T) {
	progs, err := program.FromELF("../testdata/evasion.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	html := write(t, input(t, progs[0], set))
	if !strings.Contains(html, `content="default-src 'none';`) {
		t.Error("no Content-Security-Policy denying every source by default")
	}
	// No URL scheme, no protocol-relative reference, no CSS import or url().
	external := regexp.MustCompile(`(?i)\b(https?|wss?|ftp|file|data):|(src|href|action)\s*=\s*["']?[^"'#\s>]|@import|url\(`)
	if loc := external.FindStringIndex(html); loc != nil {
		t.Errorf("external reference %q in: %.120s", html[loc[0]:loc[1]], html[max(0, loc[0]-60):])
	}
}

func TestReportShowsVerdictFirstAndTheWholeGraph(t *testing.T) {
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
	html := write(t, in)
	order := []string{`id="verdict"`, `id="meta"`, `id="helpers"`, `id="maps"`, `id="strings"`, `id="graph"`, `id="disasm"`}
	last := -1
	for _, id := range order {
		i := strings.Index(html, id)
		if i < last {
			t.Errorf("%s comes before the section preceding it in %v", id, order)
		}
		last = i
	}
	if !strings.Contains(html, `<li id="rule-credential-files"><b class="rule">credential-files</b>`) {
		t.Error("the matching rule is not listed in the verdict")
	}
	var d struct {
		Text                 string
		Blocks, Edges, Marks [][]any
	}
	raw := html[strings.Index(html, `id="report-data">`)+len(`id="report-data">`):]
	raw = raw[:strings.Index(raw, "</script>")]
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatal(err)
	}
	g := cfg.Build(in.Insns, cfg.Options{})
	if len(d.Blocks) != len(g.Blocks) || len(d.Edges) != len(g.Edges) || len(strings.Split(d.Text, "\n")) != len(in.Insns) {
		t.Errorf("data holds %d blocks, %d edges, %d insns; the graph has %d, %d, %d",
			len(d.Blocks), len(d.Edges), len(strings.Split(d.Text, "\n")), len(g.Blocks), len(g.Edges), len(in.Insns))
	}
	if len(in.Verdicts[0].Hits) == 0 {
		t.Fatal("the test program matches no rule")
	}
}
