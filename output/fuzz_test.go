package output

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// FuzzEscape checks Escape's promises on arbitrary input: valid UTF-8, no
// non-printable rune left, plain input unchanged, and distinct inputs never
// collide (escaping is injective).
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "a\nb", "\xff", `\x41`, "\u202e", "0123456789abcdef"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ea := Escape(a)
		if !utf8.ValidString(ea) {
			t.Fatalf("Escape(%q) = %q is not valid UTF-8", a, ea)
		}
		for _, r := range ea {
			if !unicode.IsPrint(r) {
				t.Fatalf("Escape(%q) = %q keeps non-printable %U", a, ea, r)
			}
		}
		if isPlain(a) && ea != a {
			t.Fatalf("plain %q changed to %q", a, ea)
		}
		if a != b && ea == Escape(b) {
			t.Fatalf("Escape(%q) == Escape(%q) == %q", a, b, ea)
		}
		if eu := escapeUnprintable(a); !utf8.ValidString(eu) || strings.ContainsFunc(eu, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Fatalf("escapeUnprintable(%q) = %q is unsafe", a, eu)
		}
	})
}

// FuzzOctetCounting frames arbitrary records the way the TCP syslog sink
// does and parses the stream back as a receiver would (RFC 6587 3.4.1):
// every record that fits must come back whole, in order, and the others
// must be exactly the ones over the limit.
func FuzzOctetCounting(f *testing.F) {
	f.Add([]byte(`{"a":1}`), []byte(""), []byte(strings.Repeat("x", 200)), 100)
	f.Add([]byte("9 digits"), []byte("\n"), []byte("1 2 3"), 5)
	f.Fuzz(func(t *testing.T, a, b, c []byte, max int) {
		if max < 1 || max > 1<<16 {
			return
		}
		s, err := NewSyslogSink(SyslogOptions{Network: "tcp", Addr: "x:1", Hostname: "h", MaxMessage: max})
		if err != nil {
			t.Fatal(err)
		}
		var recs []Record
		var want []string
		for _, j := range [][]byte{a, b, c} {
			r := Record{Kind: KindLoss, JSON: j}
			msg := string(s.appendMessage(nil, r))
			if len(msg) <= max {
				want = append(want, msg)
			}
			recs = append(recs, r)
		}
		stream, sent, tooLarge := s.appendFramed([]byte("prefix"), recs)
		if sent != len(want) || (tooLarge != nil) != (sent < len(recs)) {
			t.Fatalf("framed %d (err %v), want %d of %d", sent, tooLarge, len(want), len(recs))
		}
		rest := strings.TrimPrefix(string(stream), "prefix")
		for i, w := range want {
			sp := strings.IndexByte(rest, ' ')
			if sp <= 0 {
				t.Fatalf("message %d: no length in %q", i, rest)
			}
			n, err := strconv.Atoi(rest[:sp])
			if err != nil || n < 0 || sp+1+n > len(rest) {
				t.Fatalf("message %d: bad length %q", i, rest[:sp])
			}
			if got := rest[sp+1 : sp+1+n]; got != w {
				t.Fatalf("message %d = %q, want %q", i, got, w)
			}
			rest = rest[sp+1+n:]
		}
		if rest != "" {
			t.Fatalf("trailing bytes %q", rest)
		}
	})
}

// FuzzParseNATSURLs checks that every accepted server list yields URLs that
// parse back to themselves and carry no credentials.
func FuzzParseNATSURLs(f *testing.F) {
	for _, s := range []string{"nats://a:1", "nats://a:1,b:2", "nats://a:1,nats://b:2", "nats://u:p@a:1", "nats://[::1]:4222", "nats://a", "nats://,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		urls, err := ParseNATSURLs(spec)
		if err != nil {
			return
		}
		if len(urls) == 0 {
			t.Fatalf("%q: no error and no URL", spec)
		}
		for _, u := range urls {
			again, err := ParseNATSURLs(u)
			if err != nil || len(again) != 1 || again[0] != u {
				t.Fatalf("%q gave %q, which parses to %v, %v", spec, u, again, err)
			}
			if strings.Contains(u, "@") {
				t.Fatalf("%q kept credentials: %q", spec, u)
			}
		}
	})
}

// FuzzNATSMessageEvents: any message a consumer reads from the stream is
// either split into JSON-object lines or refused with an error, never a
// panic; the lines put back together are the message.
func FuzzNATSMessageEvents(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n{\"b\":2}\n", "{}\n", "", "\n", "{}", "{\n}\n", "x\n"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data string, pack bool) {
		h := nats.Header{}
		if pack {
			h.Set(NATSPackHeader, NATSPackVersion)
		}
		evs, err := NATSMessageEvents(h, []byte(data))
		if err != nil {
			return
		}
		if !pack {
			if len(evs) != 1 || string(evs[0]) != data {
				t.Fatalf("single event changed: %q", evs)
			}
			return
		}
		var joined []byte
		for _, e := range evs {
			if len(e) < 2 || e[0] != '{' || e[len(e)-1] != '}' || bytes.IndexByte(e, '\n') >= 0 {
				t.Fatalf("bad line %q", e)
			}
			joined = append(append(joined, e...), '\n')
		}
		if string(joined) != data {
			t.Fatalf("lines %q do not make %q", evs, data)
		}
	})
}
