package output

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain ASCII is kept as is", "handle_execve", "handle_execve"},
		{"a newline cannot forge a second log line", "a\nb", `a\x0ab`},
		{"a terminal escape sequence is defused", "\x1b[2J", `\x1b[2J`},
		{"invalid UTF-8 bytes become hex escapes", "\xff\xfeok", `\xff\xfeok`},
		{"a backslash is doubled so escapes stay unambiguous", `a\x41`, `a\\x41`},
		{"valid non-ASCII text is kept", "Grüße", "Grüße"},
		{"a bidi override cannot reorder what the analyst reads", "txt\u202egpj.exe", `txt\u{202e}gpj.exe`},
		{"a zero-width space is made visible", "a\u200bb", `a\u{200b}b`},
		{"DEL is escaped", "a\x7f", `a\x7f`},
		{"a NUL inside the string is escaped", "a\x00b", `a\x00b`},
		{"a truncated multi-byte sequence at the end is escaped", "ab\xe2\x82", `ab\xe2\x82`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCString(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"stops at the first NUL", []byte("bash\x00\x00junk"), "bash"},
		{"takes all 16 bytes when there is no NUL", []byte("0123456789abcdef"), "0123456789abcdef"},
		{"an empty array is the empty string", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CString(tt.in); got != tt.want {
				t.Errorf("CString(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestProgLoadEscapesEveryUntrustedString(t *testing.T) {
	ev := NewProgLoad(ProgLoad{Program: sampleProgram(4), Report: sampleReport(), Disasm: []string{"r0 = 1\x1b", "exit"}}, InsnOptions{Mode: InsnModeText})
	b, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b) {
		t.Fatalf("event is not valid UTF-8: %q", b)
	}
	// JSON escapes control characters itself (\u001b); after our escaping
	// none may be left for it to escape, so syslog and text sinks are safe too.
	if strings.Contains(string(b), `\u00`) || strings.Contains(string(b), "\ufffd") {
		t.Errorf("a raw control character or invalid byte reached the encoder: %s", b)
	}
	if got, want := ev.Prog.Name, `evil\x0a\x1b[2J\xff\xfe\u{202e}`; got != want {
		t.Errorf("prog name = %q, want %q", got, want)
	}
	if got, want := ev.Loader.Comm, "0123456789abcdef"; got != want {
		t.Errorf("comm = %q, want %q", got, want)
	}
	// analysis.String.Text is already escaped by the analysis package: its
	// backslashes stay single, anything still raw is escaped.
	if got, want := ev.Analysis.Strings[0].Text, `pass\x0a`; got != want {
		t.Errorf("pre-escaped string = %q, want %q", got, want)
	}
	if got, want := ev.Analysis.Strings[1].Text, `raw\x01ctl`; got != want {
		t.Errorf("raw string = %q, want %q", got, want)
	}
}

func TestInstructionCaps(t *testing.T) {
	const slots = 10
	tests := []struct {
		name          string
		opt           InsnOptions
		wantText      int // lines shown, -1: no text
		wantRaw       int // slots shown, -1: no raw
		wantTruncated bool
	}{
		{"mode none carries no instructions", InsnOptions{Mode: InsnModeNone, Max: 3}, -1, -1, false},
		{"no cap shows everything", InsnOptions{Mode: InsnModeBoth}, slots, slots, false},
		{"a cap above the size shows everything", InsnOptions{Mode: InsnModeBoth, Max: slots}, slots, slots, false},
		{"a cap below the size says it truncated", InsnOptions{Mode: InsnModeBoth, Max: 3}, 3, 3, true},
		{"text only", InsnOptions{Mode: InsnModeText, Max: 4}, 4, -1, true},
		{"raw only", InsnOptions{Mode: InsnModeRaw, Max: 4}, -1, 4, true},
	}
	p := sampleProgram(slots)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := NewProgLoad(ProgLoad{Program: p, Disasm: disasmLines(slots)}, tt.opt)
			ins := ev.Instructions
			if tt.wantText < 0 && tt.wantRaw < 0 {
				if ins != nil {
					t.Fatalf("instructions present: %+v", ins)
				}
				return
			}
			if ins.Truncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", ins.Truncated, tt.wantTruncated)
			}
			if tt.wantText >= 0 {
				if ins.Text == nil || len(ins.Text.Lines) != tt.wantText || ins.Text.Shown != tt.wantText || ins.Text.Total != slots {
					t.Errorf("text = %+v, want %d of %d lines", ins.Text, tt.wantText, slots)
				}
			} else if ins.Text != nil {
				t.Errorf("unexpected text form")
			}
			if tt.wantRaw >= 0 {
				raw, err := base64.StdEncoding.DecodeString(ins.Raw.Base64)
				if err != nil {
					t.Fatal(err)
				}
				if string(raw) != string(p.Insns[:tt.wantRaw*8]) || ins.Raw.Shown != tt.wantRaw || ins.Raw.Total != slots {
					t.Errorf("raw = %d bytes, shown %d of %d; want the first %d slots of %d", len(raw), ins.Raw.Shown, ins.Raw.Total, tt.wantRaw, slots)
				}
			} else if ins.Raw != nil {
				t.Errorf("unexpected raw form")
			}
		})
	}
}

// With --event-insns auto (the default) an event carries the disassembly
// text only when a person will read it, and the raw instructions always.
func TestAutoInsnsCarryTextOnlyForFlaggedLoads(t *testing.T) {
	const slots = 6
	allowed := func() ProgLoad {
		return ProgLoad{Program: sampleProgram(slots), Disasm: disasmLines(slots),
			Outcome: NewOutcome(ResultLoaded, 0), Verdict: &Verdict{Action: "allow"}}
	}
	tests := []struct {
		name     string
		edit     func(*ProgLoad)
		wantText bool
	}{
		{"an allowed, whole load carries raw only", func(*ProgLoad) {}, false},
		{"an allowed load the kernel refused carries raw only", func(in *ProgLoad) { in.Outcome = NewOutcome(ResultFailed, 22) }, false},
		{"the rules engine's none is allow", func(in *ProgLoad) { in.Verdict.Action = "none" }, false},
		{"an alert carries text", func(in *ProgLoad) {
			in.Verdict = &Verdict{Action: "alert", Rules: []RuleMatch{{ID: "r", Action: "alert"}}}
		}, true},
		{"a block carries text", func(in *ProgLoad) {
			in.Verdict = &Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{{ID: "r", Action: "block"}}}
			in.Outcome = NewOutcome(ResultKilled, 0)
		}, true},
		{"a matched rule carries text whatever the action", func(in *ProgLoad) { in.Verdict.Rules = []RuleMatch{{ID: "r", Action: "alert"}} }, true},
		{"an unknown verdict carries text", func(in *ProgLoad) { in.Verdict.Action = "unknown" }, true},
		{"no verdict at all carries text", func(in *ProgLoad) { in.Verdict = nil }, true},
		{"a loader killed by someone else carries text", func(in *ProgLoad) {
			in.Outcome = NewOutcome(ResultKilled, 0)
			in.Outcome.KilledByOther = true
		}, true},
		{"a denied load carries text", func(in *ProgLoad) { in.Outcome = NewOutcome(ResultDenied, 1) }, true},
		{"a corrupted load carries text", func(in *ProgLoad) { in.Outcome = NewOutcome(ResultCorrupted, 0) }, true},
		{"a loaded copy that differs from the judged one carries text", func(in *ProgLoad) { in.Outcome.JudgedCopyDiffers = true }, true},
		{"an incomplete capture carries text", func(in *ProgLoad) { in.Incomplete = true }, true},
		{"a truncated capture carries text", func(in *ProgLoad) { in.Program.InsnCnt = slots + 10 }, true},
		{"a lost header carries text", func(in *ProgLoad) { in.Program.Loader.Unknown = []string{"uid", "gid"} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := allowed()
			tt.edit(&in)
			if got := Flagged(in); got != tt.wantText {
				t.Errorf("Flagged = %v, want %v", got, tt.wantText)
			}
			ins := NewProgLoad(in, InsnOptions{Mode: InsnModeAuto, Max: DefaultInsnMax}).Instructions
			if ins == nil || ins.Raw == nil || ins.Raw.Shown != slots || ins.Raw.Total != slots {
				t.Fatalf("raw form missing or short: %+v", ins)
			}
			if (ins.Text != nil) != tt.wantText {
				t.Fatalf("text form present = %v, want %v", ins.Text != nil, tt.wantText)
			}
			if tt.wantText && (ins.Text.Shown != slots || ins.Text.Lines[slots-1] != "exit") {
				t.Errorf("text = %+v, want all %d lines", ins.Text, slots)
			}
		})
	}
	// The explicit modes do not depend on the load.
	for _, mode := range []InsnMode{InsnModeText, InsnModeRaw, InsnModeBoth, InsnModeNone} {
		want := mode == InsnModeText || mode == InsnModeBoth
		if text, _ := (InsnOptions{Mode: mode}).Forms(allowed()); text != want {
			t.Errorf("mode %s on an allowed load: text %v, want %v", mode, text, want)
		}
	}
	if m, err := ParseInsnMode("auto"); err != nil || m != InsnModeAuto {
		t.Errorf(`ParseInsnMode("auto") = %q, %v`, m, err)
	}
	if d := DefaultOptions().Insns; d != string(InsnModeAuto) {
		t.Errorf("default --event-insns %q, want auto", d)
	}
}

func TestProgLoadNamesTypesAndErrno(t *testing.T) {
	ev := NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(ResultDenied, 1)}, InsnOptions{})
	b, _ := Marshal(ev)
	var m struct {
		Prog struct {
			Type, ExpectedAttachType struct {
				ID   uint32
				Name string
			}
		}
		Outcome Outcome
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// BPF_PROG_TYPE_TRACEPOINT = 5 and BPF_TRACE_RAW_TP = 23 in uapi/linux/bpf.h.
	if ev.Prog.Type != (Enum{5, "tracepoint"}) || ev.Prog.ExpectedAttachType != (Enum{23, "trace_raw_tp"}) {
		t.Errorf("types = %+v / %+v", ev.Prog.Type, ev.Prog.ExpectedAttachType)
	}
	// 0 means "not set" for a tracepoint, though it is also cgroup_inet_ingress.
	for _, tt := range []struct {
		progType uint32
		want     string
	}{{5, ""}, {8, "cgroup_inet_ingress"}} {
		p := &program.Program{Type: tt.progType}
		if got := NewProgLoad(ProgLoad{Program: p}, InsnOptions{}).Prog.ExpectedAttachType.Name; got != tt.want {
			t.Errorf("attach type 0 of prog type %d is named %q, want %q", tt.progType, got, tt.want)
		}
	}
	if m.Outcome.Result != ResultDenied || m.Outcome.Errno != 1 || m.Outcome.Error != "operation not permitted" {
		t.Errorf("outcome = %+v", m.Outcome)
	}
}

func programWithType(t uint32) program.Program { return program.Program{Name: "p", Type: t} }

func TestKernelTextPrefixesEachInstructionWithItsSlot(t *testing.T) {
	// r1 = 0x100000002 ll (two slots), r0 = 0, call 14, exit.
	raw := []byte{
		0x18, 0x01, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
		0xb7, 0x00, 0, 0, 0, 0, 0, 0,
		0x85, 0x00, 0, 0, 14, 0, 0, 0,
		0x95, 0, 0, 0, 0, 0, 0, 0,
	}
	insns, problems := insn.Decode(raw)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	got := KernelText(nil, insns)
	// Helper 14 is bpf_get_current_pid_tgid in include/uapi/linux/bpf.h;
	// the verifier log prints calls as "call NAME#ID".
	want := []string{"0: (18) r1 = 0x100000002", "2: (b7) r0 = 0", "3: (85) call bpf_get_current_pid_tgid#14", "4: (95) exit"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A load whose header was lost names the loader fields it does not know
// and carries no uid or gid at all, rather than uid 0 (root).
func TestLostHeaderLeavesUIDUnknownNotRoot(t *testing.T) {
	ev := NewProgLoad(ProgLoad{Program: &program.Program{Loader: &program.Loader{PID: 42, Unknown: program.HeaderFields}}}, InsnOptions{})
	b, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"uid":`) || strings.Contains(string(b), `"gid":`) || !strings.Contains(string(b), `"unknown":["tid","ppid","uid","gid","comm","exe","cgroup_id"]`) {
		t.Fatalf("loader of a lost header: %s", b)
	}
	root := NewProgLoad(ProgLoad{Program: &program.Program{Loader: &program.Loader{PID: 1}}}, InsnOptions{})
	if b, _ := Marshal(root); !strings.Contains(string(b), `"uid":0,"gid":0`) {
		t.Fatalf("a known root loader lost its uid: %s", b)
	}
}

// The raw form's encoder gives what base64.StdEncoding.EncodeToString gives,
// padding included, at every length.
func TestBase64StringIsStdEncoding(t *testing.T) {
	raw := make([]byte, 40_000)
	for i := range raw {
		raw[i] = byte(i*7 + i>>8)
	}
	for _, n := range []int{0, 1, 2, 3, 4, 8, 767, 768, 769, 1024, 8 * 4096, len(raw)} {
		if got, want := base64String(raw[:n]), base64.StdEncoding.EncodeToString(raw[:n]); got != want {
			t.Errorf("%d bytes: %.40q…, want %.40q…", n, got, want)
		}
	}
}
