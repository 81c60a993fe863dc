package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func signedLoader(id uint32) *program.Program {
	p := sampleProgram(2)
	p.Kernel = &program.Kernel{ID: id, Tag: "0123456789abcdef"}
	p.Provenance = &program.Provenance{Signed: true, SignaturePtr: 0x7f00, SignatureSize: 410,
		KeyringID: 0, Keyring: program.KeyringSystem, Verification: program.SigVerified}
	return p
}

func tokenProgram() *program.Program {
	p := sampleProgram(2)
	p.Provenance = &program.Provenance{ViaToken: true, TokenFD: 5, Token: &program.Token{
		Inode: 12, Dev: 40, UserNS: 4026532001,
		AllowedCmds:  program.Delegation{Any: true, Mask: 1<<37 - 1},
		AllowedProgs: program.Delegation{Mask: 1 << 2, Names: []string{"kprobe\x1b[31m"}},
		Mount:        "/sys/fs/bpf/tok\n", MountOptions: "rw,delegate_cmds=any",
		Creator: &program.TokenCreator{PID: 7, UID: 0, Comm: "creat\x00or", Exe: "/usr/bin/x\u202e"},
	}}
	return p
}

// stamped marshals ev after a pipeline stamped its envelope (id, seq, host).
func stamped(t *testing.T, ev *Event) []byte {
	t.Helper()
	p := NewPipeline(Config{Host: "h", LossInterval: -1})
	defer p.Close(t.Context())
	p.Emit(ev)
	b, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProvenanceEventsMatchTheSchemaAndAreEscaped(t *testing.T) {
	for name, prog := range map[string]*program.Program{
		"a signed load":       signedLoader(9),
		"a load via a token":  tokenProgram(),
		"a bogus signed load": {Source: program.SourceSensor, Provenance: &program.Provenance{Signed: true, SignaturePtr: 8, KeyringID: 2147483000, Keyring: program.KeyringUser, Verification: program.SigUnknown, VerifyErrno: 22}},
	} {
		t.Run(name, func(t *testing.T) {
			ev := NewProgLoad(ProgLoad{Program: prog, Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{})
			b := stamped(t, ev)
			validate(t, b)
			e, err := MarshalECS(ev)
			if err != nil {
				t.Fatal(err)
			}
			validateECS(t, e)
			var back struct {
				Provenance *program.Provenance `json:"provenance"`
			}
			if err := json.Unmarshal(b, &back); err != nil || back.Provenance == nil {
				t.Fatalf("no provenance in %s (%v)", b, err)
			}
			if tok := back.Provenance.Token; tok != nil {
				for _, s := range []string{tok.Mount, tok.Creator.Comm, tok.Creator.Exe, tok.AllowedProgs.Names[0]} {
					if strings.ContainsAny(s, "\x1b\n\x00\u202e") {
						t.Errorf("token text %q is not escaped", s)
					}
				}
			}
			if ev.Provenance == prog.Provenance || (prog.Provenance.Token != nil && ev.Provenance.Token == prog.Provenance.Token) {
				t.Error("the event shares the program's provenance instead of copying it")
			}
		})
	}
}

func TestInnerProgramInheritsItsLoadersProvenance(t *testing.T) {
	book := NewProvenanceBook(2)
	loader := NewProgLoad(ProgLoad{Program: signedLoader(41), Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{})
	book.Remember(loader)
	unsignedLoader := sampleProgram(2)
	unsignedLoader.Kernel = &program.Kernel{ID: 42, Tag: "fedcba9876543210"}
	book.Remember(NewProgLoad(ProgLoad{Program: unsignedLoader, Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{}))

	inner := NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{})
	book.Inherit(inner, 41, "0123456789abcdef", "__loader.prog")
	in := inner.Provenance.Inherited
	if in == nil || in.LoaderID != 41 || in.LoaderName != "__loader.prog" || in.From == nil {
		t.Fatalf("inherited %+v, want loader 41 with its provenance", in)
	}
	if !in.From.Signed || in.From.Keyring != program.KeyringSystem || !in.From.Verified() {
		t.Errorf("inherited %+v, want the loader's verified system-keyring signature", in.From)
	}
	if inner.Provenance.Signed {
		t.Error("the inner program itself was not signed")
	}
	validate(t, stamped(t, inner))

	other := NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{})
	book.Inherit(other, 42, "", "l2")
	if f := other.Provenance.Inherited.From; f == nil || f.Signed {
		t.Errorf("an unsigned loader's payload inherits %+v, want an unsigned provenance", f)
	}

	// A third loader evicts the oldest (Max 2): its payloads inherit nothing known.
	third := sampleProgram(2)
	third.Kernel = &program.Kernel{ID: 43}
	book.Remember(NewProgLoad(ProgLoad{Program: third, Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{}))
	late := NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{})
	book.Inherit(late, 41, "", "")
	if late.Provenance.Inherited.From != nil || book.Evicted != 1 {
		t.Errorf("evicted loader still known (%+v), evicted %d", late.Provenance.Inherited.From, book.Evicted)
	}
	unseen := NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{})
	book.Inherit(unseen, 999, "", "")
	if unseen.Provenance.Inherited == nil || unseen.Provenance.Inherited.From != nil {
		t.Errorf("a loader never seen: %+v, want loader id 999 without provenance", unseen.Provenance.Inherited)
	}
}
