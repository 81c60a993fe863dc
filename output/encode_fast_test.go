package output

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// sameEncoding fails t unless Marshal (appendEvent where it applies) and
// encoding/json give the same bytes, or both an error; it reports whether
// appendEvent took the event.
func sameEncoding(t testing.TB, ev *Event) bool {
	t.Helper()
	want, wantErr := marshalJSON(ev)
	got, gotErr := Marshal(ev)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("encoding/json error %v, Marshal error %v", wantErr, gotErr)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("Marshal differs from encoding/json at byte %d:\n got: %.300q\nwant: %.300q", i, got[i:], want[i:])
	}
	_, fast := appendEvent(nil, ev)
	return fast
}

// TestAppendEventMatchesJSONOnRealPrograms builds prog_load events from
// every program of the test objects (testdata/*.bpf.o: real analysis
// reports, disassembly, strings, maps, kfuncs), stamped as the pipeline
// stamps them, in every instruction mode, with and without a verdict,
// and checks the fast encoding against encoding/json byte for byte.
func TestAppendEventMatchesJSONOnRealPrograms(t *testing.T) {
	objs, err := filepath.Glob("../testdata/*.bpf.o")
	if err != nil || len(objs) == 0 {
		t.Fatalf("no test objects: %v", err)
	}
	uid, gid := uint32(1000), uint32(0)
	verdicts := []*Verdict{nil, {Action: "none"}, {Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{
		{ID: "r1", Action: "block", Severity: "high", Tags: []string{"t1", "<t&2>"}, Why: "calls \"bpf_probe_write_user\"\n"},
		{ID: "r2", Action: "alert"}}}}
	events := 0
	for _, obj := range objs {
		progs, err := program.FromELF(obj)
		if err != nil {
			t.Logf("%s: %v (skipped: not every test object parses alone)", obj, err)
			continue
		}
		for i, p := range progs {
			p.Loader = &program.Loader{PID: 4242, TID: 4243, PPID: 1, UID: uid, GID: gid, Comm: "loader\x01",
				Exe: "/usr/bin/lo\u2028ader", ExeInode: 123456, ExeDev: 8<<20 | 1, ExeSHA256: strings.Repeat("ab", 32), CgroupID: 77}
			p.Kernel = &program.Kernel{ID: uint32(i + 1), Tag: "0011223344556677"}
			rep := analysis.Analyze(p, nil)
			insns, _ := insn.Decode(p.Insns)
			text := KernelText(nil, insns)
			for _, mode := range []InsnMode{InsnModeAuto, InsnModeBoth, InsnModeRaw, InsnModeNone, InsnModeText} {
				for vi, v := range verdicts {
					in := ProgLoad{Time: time.Date(2026, 12, 2, 20, 0, 0, 123456789, time.UTC), Program: p, Report: rep,
						Outcome: NewOutcome(ResultLoaded, 0), Verdict: v, Disasm: text, InsnHash: 0xdeadbeef,
						Cgroup: "/system.slice/docker-" + strings.Repeat("a", 64) + ".scope"}
					if vi == 2 {
						in.Outcome = NewOutcome(ResultKilled, 1)
						in.Report = nil
					}
					ev := NewProgLoad(in, InsnOptions{Mode: mode, Max: 100 * vi})
					ev.SchemaVersion, ev.Seq, ev.ID, ev.Host = SchemaVersion, uint64(events+1), fmt.Sprintf("inst-%d", events+1), "host-1"
					if events > 0 {
						ev.PrevHash = strings.Repeat("0f", 32)
					}
					if !sameEncoding(t, ev) {
						t.Fatalf("%s %s: a prog_load event was not taken by appendEvent", obj, p.Name)
					}
					events++
				}
			}
		}
	}
	if events < 100 {
		t.Fatalf("only %d events built from the test objects", events)
	}
	t.Logf("%d events", events)
}

// fastSections are the Event fields appendEvent encodes; any other section
// set sends the event to encoding/json.
var fastSections = map[string]bool{"Loader": true, "Prog": true, "Outcome": true, "Analysis": true, "Verdict": true,
	"Instructions": true, "ViaLoader": true, "Provenance": true}

// TestAppendEventMatchesJSONOnRandomEvents fills every field of every
// type an event holds, by reflection, with random values (escapes,
// invalid UTF-8, U+2028, nil and empty slices, extreme numbers, odd time
// zones): a field added to any of them, and not to appendEvent, fails
// here. Events with a section appendEvent does not encode must still
// encode as before (through encoding/json).
func TestAppendEventMatchesJSONOnRandomEvents(t *testing.T) {
	r := rand.New(rand.NewSource(14))
	fast := 0
	const n = 20000
	for i := range n {
		ev := randomEvent(r, nil, i%10 != 0)
		if sameEncoding(t, ev) {
			fast++
		}
	}
	if fast < n/2 {
		t.Fatalf("appendEvent took %d of %d random events", fast, n)
	}
	t.Logf("appendEvent took %d of %d random events", fast, n)
}

// TestAppendEventRefusesOtherSections: every Event section but the
// prog_load ones, and a provenance with a token, go to encoding/json.
func TestAppendEventRefusesOtherSections(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	typ := reflect.TypeFor[Event]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.Pointer || fastSections[f.Name] {
			continue
		}
		ev := randomEvent(r, nil, true)
		v := reflect.New(f.Type.Elem())
		fill(r, v.Elem(), nil, 0)
		reflect.ValueOf(ev).Elem().Field(i).Set(v)
		if sameEncoding(t, ev) {
			t.Errorf("appendEvent encoded an event with %s set", f.Name)
		}
	}
	ev := randomEvent(r, nil, true)
	ev.Provenance = &program.Provenance{Inherited: &program.Inherited{From: &program.Provenance{Token: &program.Token{Mount: "/sys/fs/bpf"}}}}
	if sameEncoding(t, ev) {
		t.Error("appendEvent encoded a provenance with a token")
	}
}

// FuzzAppendEventMatchesJSON compares the two encoders on random events
// whose strings include the fuzzer's.
func FuzzAppendEventMatchesJSON(f *testing.F) {
	f.Add(int64(1), "plain", int64(0))
	f.Add(int64(2), "\xff\u2028\x00\"\\<>&", int64(-1))
	f.Add(int64(3), "é世\U0001F600\x7f", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, seed int64, s string, num int64) {
		r := rand.New(rand.NewSource(seed))
		ev := randomEvent(r, &fuzzInput{s: s, n: num}, true)
		sameEncoding(t, ev)
	})
}

type fuzzInput struct {
	s string
	n int64
}

var randomStrings = []string{"", "a", "plain text", "<&>", `"quoted\"`, "back\\slash", "\x00\x01\x1f\x7f",
	"\b\f\n\r\t", "\u2028\u2029", "\xff\xfe bad", "trunc\xe2\x80", "héllo 世界", "\U0001F600", "\xed\xa0\x80",
	"r0 = *(u64 *)(r1 +8)", "0x00000000deadbeef"}

var randomZones = []*time.Location{time.UTC, time.FixedZone("A", 5*3600+1800), time.FixedZone("B", -(23*3600 + 59*60 + 59)),
	time.FixedZone("C", 24*3600), time.FixedZone("D", -24*3600), time.FixedZone("E", 45), time.FixedZone("F", 100*3600)}

// randomEvent is an event with every field filled at random; only the
// sections appendEvent encodes unless all.
func randomEvent(r *rand.Rand, in *fuzzInput, onlyFast bool) *Event {
	ev := &Event{}
	v := reflect.ValueOf(ev).Elem()
	fill(r, v, in, 0)
	if onlyFast {
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.Type.Kind() == reflect.Pointer && !fastSections[f.Name] {
				v.Field(i).SetZero()
			}
		}
		if r.Intn(4) != 0 {
			for p := ev.Provenance; p != nil; {
				p.Token = nil
				if p.Inherited == nil {
					break
				}
				p = p.Inherited.From
			}
		}
	}
	return ev
}

// fill sets v to random values, by reflection, so that it covers fields
// added later too.
func fill(r *rand.Rand, v reflect.Value, in *fuzzInput, depth int) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		var t time.Time
		switch r.Intn(16) {
		case 0:
			t = time.Time{}
		case 1:
			t = time.Date(10000+r.Intn(5), 1, 1, 0, 0, 0, 0, time.UTC) // encoding/json refuses it
		case 2:
			t = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)
		default:
			t = time.Unix(r.Int63n(1<<36)-1<<35, r.Int63n(1e9))
		}
		zones := randomZones[:3] // encoding/json refuses the others' offsets
		if r.Intn(8) == 0 {
			zones = randomZones
		}
		v.Set(reflect.ValueOf(t.In(zones[r.Intn(len(zones))])))
		return
	}
	switch v.Kind() {
	case reflect.String:
		s := randomStrings[r.Intn(len(randomStrings))]
		switch k := r.Intn(6); {
		case k == 0:
			b := make([]byte, r.Intn(12))
			r.Read(b)
			s = string(b)
		case k == 1 && in != nil:
			s = in.s
		case k == 2:
			s += randomStrings[r.Intn(len(randomStrings))]
		}
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(r.Intn(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		switch r.Intn(5) {
		case 0:
		case 1:
			n = math.MinInt64
		case 2:
			n = math.MaxInt64
		case 3:
			if in != nil {
				n = in.n
			}
		default:
			n = r.Int63n(2000) - 1000
		}
		v.SetInt(n) // truncated to the field's width
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var n uint64
		switch r.Intn(4) {
		case 0:
		case 1:
			n = math.MaxUint64
		default:
			n = uint64(r.Int63n(100000))
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(r.Float64() * 1000)
	case reflect.Map, reflect.Interface:
		v.SetZero() // none in the sections appendEvent encodes
	case reflect.Pointer:
		if depth > 4 || r.Intn(4) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(r, p.Elem(), in, depth+1)
		v.Set(p)
	case reflect.Slice:
		switch r.Intn(5) {
		case 0:
			v.SetZero()
			return
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		n := 1 + r.Intn(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(r, s.Index(i), in, depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i), in, depth+1)
			}
		}
	default:
		panic(fmt.Sprintf("fill: %s (%s) needs a case", v.Type(), v.Kind()))
	}
}

// BenchmarkMarshalProgLoad10 encodes a prog_load of a 10-instruction
// program as the agent's default emits it (--event-insns auto, allowed:
// raw only), with appendEvent (fast) and with encoding/json (json).
func BenchmarkMarshalProgLoad10(b *testing.B) {
	p := benchProgram(10)
	uid := uint32(0)
	p.Loader = &program.Loader{PID: 4242, TID: 4242, PPID: 1, UID: uid, Comm: "bpfload", Exe: "/usr/local/bin/bpfload",
		ExeInode: 1234567, ExeDev: 8<<20 | 1, ExeSHA256: strings.Repeat("ab", 32), CgroupID: 7}
	rep := analysis.Analyze(p, nil)
	ev := NewProgLoad(ProgLoad{Time: time.Now(), Program: p, Report: rep, Outcome: NewOutcome(ResultLoaded, 0),
		Verdict: &Verdict{Action: "none"}, InsnHash: 0x1234}, InsnOptions{Mode: InsnModeAuto, Max: DefaultInsnMax})
	ev.SchemaVersion, ev.Seq, ev.ID, ev.Host, ev.PrevHash = SchemaVersion, 99, "abcd-99", "host", strings.Repeat("0f", 32)
	for _, c := range []struct {
		name string
		f    func(*Event) ([]byte, error)
	}{{"fast", Marshal}, {"json", marshalJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
