package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// packTestSink is a sink whose pack settings are all pack needs (no
// connection, no spool).
func packTestSink(pack, packBytes int) *NATSSink {
	return &NATSSink{opt: NATSOptions{Subject: "p", Pack: pack, PackBytes: packBytes}, subjects: map[subjectKey]string{}}
}

func packRec(host string, kind Kind, i int, pad int) Record {
	id := fmt.Sprintf("i-%d", i)
	return Record{Host: host, Kind: kind, ID: id,
		JSON: []byte(fmt.Sprintf(`{"event":%q,"id":%q,"seq":%d,"pad":%q}`, kind, id, i, strings.Repeat("x", pad)))}
}

// unpackAll reads msgs as a consumer would and returns, per subject, the
// events' ids in order, checking each message's id against the wire format.
func unpackAll(t *testing.T, msgs []spoolMsg, s *NATSSink) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range msgs {
		nm := s.message(m)
		evs, err := NATSMessageEvents(nm.Header, nm.Data)
		if err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
		var ids []string
		for _, e := range evs {
			var ev struct{ ID string }
			if err := json.Unmarshal(e, &ev); err != nil {
				t.Fatalf("message %s: %v", m.ID, err)
			}
			ids = append(ids, ev.ID)
		}
		if len(evs) != m.events() {
			t.Fatalf("message %s: %d events, N says %d", m.ID, len(evs), m.events())
		}
		want := ids[0]
		if nm.Header.Get(NATSPackHeader) != "" {
			want = NATSPackID(ids)
		} else if len(evs) != 1 {
			t.Fatalf("message %s without the pack header holds %d events", m.ID, len(evs))
		}
		if got := nm.Header.Get("Nats-Msg-Id"); got != want || m.ID != want {
			t.Fatalf("message ids %q / %q, want %q", got, m.ID, want)
		}
		out[m.Subject] = append(out[m.Subject], ids...)
	}
	return out
}

// TestNATSPackGroupsBySubjectWithinItsLimits: one Send's records of two
// hosts and two kinds become packs per subject, at most Pack events and
// PackBytes bytes each, a lone event as a plain message, events of each
// subject in emission order, every event exactly once; the same records
// give the same messages (ids included), so a retried pack deduplicates.
func TestNATSPackGroupsBySubjectWithinItsLimits(t *testing.T) {
	var recs []Record
	for i := 0; i < 50; i++ {
		host, kind := "h1", KindProgLoad
		switch {
		case i%5 == 4:
			kind = KindHeartbeat
		case i%7 == 3:
			host = "h2"
		}
		recs = append(recs, packRec(host, kind, i, 0))
	}
	recs = append(recs, packRec("h3", KindProgLoad, 50, 0))   // alone on its subject
	recs = append(recs, packRec("h1", KindProgLoad, 51, 300)) // larger than PackBytes
	multiline := packRec("h1", KindProgLoad, 52, 0)           // not one line: alone
	multiline.JSON = append([]byte("{\n"), multiline.JSON[1:]...)
	recs = append(recs, multiline, packRec("h1", KindProgLoad, 53, 0))
	s := packTestSink(8, 256)
	msgs := s.pack(recs)
	again := s.pack(recs)
	for i := range msgs {
		if msgs[i].ID != again[i].ID || !bytes.Equal(msgs[i].Data, again[i].Data) {
			t.Fatalf("message %d differs between two packings of the same records", i)
		}
	}
	got := unpackAll(t, msgs, s)
	want := map[string][]string{}
	for _, r := range recs {
		sub := s.Subject(r.Host, r.Kind)
		want[sub] = append(want[sub], r.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events per subject\n got %v\nwant %v", got, want)
	}
	packs := 0
	for _, m := range msgs {
		if m.events() > 8 || m.N > 1 && len(m.Data) > 256 {
			t.Errorf("message %s: %d events, %d bytes: over the limits", m.ID, m.events(), len(m.Data))
		}
		if m.N > 1 {
			packs++
		}
		if m.N != 0 && (m.Subject == "p.h3.prog_load" || bytes.Contains(m.Data, []byte(strings.Repeat("x", 300))) || bytes.Contains(m.Data, []byte("{\n"))) {
			t.Errorf("message %s should be a single event", m.ID)
		}
	}
	if packs == 0 || len(msgs) >= len(recs) {
		t.Errorf("%d messages (%d packs) for %d records", len(msgs), packs, len(recs))
	}
	// Pack 1 is the single-event format throughout.
	for _, m := range packTestSink(1, 256).pack(recs) {
		if m.N != 0 {
			t.Fatalf("Pack 1 made a pack %s", m.ID)
		}
	}
}

func TestNATSMessageEventsRefusesMalformedPacks(t *testing.T) {
	h := nats.Header{}
	h.Set(NATSPackHeader, NATSPackVersion)
	for _, data := range []string{"", "{}", "{}\n\n", "{}\nx\n", "{\n"} {
		if _, err := NATSMessageEvents(h, []byte(data)); err == nil {
			t.Errorf("pack %q accepted", data)
		}
	}
	h.Set(NATSPackHeader, "2")
	if _, err := NATSMessageEvents(h, []byte("{}\n{}\n")); err == nil || !strings.Contains(err.Error(), `"2"`) {
		t.Errorf("version 2: %v", err)
	}
	evs, err := NATSMessageEvents(nats.Header{}, []byte(`{"a":1}`))
	if err != nil || len(evs) != 1 || string(evs[0]) != `{"a":1}` {
		t.Errorf("single event: %q %v", evs, err)
	}
}

// TestSpoolKeepsPacksWholeAndCountsTheirEvents: packs and single events
// appended to the spool come back as they went in, across a reopen, and Len
// counts events, not records.
func TestSpoolKeepsPacksWholeAndCountsTheirEvents(t *testing.T) {
	s := packTestSink(4, 1<<10)
	var recs []Record
	for i := 0; i < 10; i++ {
		recs = append(recs, packRec("h", KindProgLoad, i, 0))
	}
	recs = append(recs, packRec("h", KindHeartbeat, 10, 0))
	msgs := s.pack(recs) // 4+4+2 prog_load events in packs, one heartbeat alone
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	dir := t.TempDir()
	sp, _, err := openSpool(dir, 1<<20, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sp.Append(msgs); n != len(msgs) || err != nil {
		t.Fatal(n, err)
	}
	if sp.Len() != len(recs) {
		t.Fatalf("Len %d, want %d events", sp.Len(), len(recs))
	}
	sp.Close()
	sp, lost, err := openSpool(dir, 1<<20, 1<<20, false)
	if err != nil || lost != 0 {
		t.Fatal(err, lost)
	}
	defer sp.Close()
	if sp.Len() != len(recs) {
		t.Fatalf("after reopen Len %d, want %d events", sp.Len(), len(recs))
	}
	ents, err := sp.Peek(10)
	if err != nil || len(ents) != len(msgs) {
		t.Fatal(len(ents), err)
	}
	for i, e := range ents {
		if e.ID != msgs[i].ID || e.N != msgs[i].N || e.Subject != msgs[i].Subject || !bytes.Equal(e.Data, msgs[i].Data) {
			t.Fatalf("entry %d: %+v, want %+v", i, e.spoolMsg, msgs[i])
		}
	}
	if got := spoolEventIDs(t, ents); len(got) != len(recs) || got[0] != "i-0" || got[9] != "i-9" {
		t.Fatalf("spooled events %q", got)
	}
	if err := sp.Commit(ents[1], ents[0].events()+ents[1].events()); err != nil {
		t.Fatal(err)
	}
	if sp.Len() != 3 {
		t.Fatalf("after committing two packs of 4, Len %d, want 3", sp.Len())
	}
}
