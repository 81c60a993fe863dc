package output

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func spoolMsgs(from, n int) []spoolMsg {
	var out []spoolMsg
	for i := from; i < from+n; i++ {
		out = append(out, spoolMsg{Subject: "s.h.prog_load", ID: fmt.Sprintf("id-%04d", i), Data: []byte(fmt.Sprintf(`{"seq":%04d}`, i))})
	}
	return out
}

func drainSpool(t *testing.T, s *spool, batch int) []string {
	t.Helper()
	var ids []string
	for s.Len() > 0 {
		ents, err := s.Peek(batch)
		if err != nil || len(ents) == 0 {
			t.Fatalf("peek with %d left: %v", s.Len(), err)
		}
		for _, e := range ents {
			ids = append(ids, e.ID)
		}
		if err := s.Commit(ents[len(ents)-1], len(ents)); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func TestSpoolKeepsOrderAcrossSegmentsAndReopen(t *testing.T) {
	dir := t.TempDir()
	// Segments of about four messages, so the test crosses several.
	seg := 4 * spoolRecordSize(spoolMsgs(0, 1)[0])
	s, lost, err := openSpool(dir, 1<<20, seg, true)
	if err != nil || lost != 0 {
		t.Fatal(err, lost)
	}
	if n, err := s.Append(spoolMsgs(0, 30)); n != 30 || err != nil {
		t.Fatalf("append: %d, %v", n, err)
	}
	// Deliver 10, then "crash" (close without anything else) and reopen.
	ents, err := s.Peek(10)
	if err != nil || len(ents) != 10 {
		t.Fatal(len(ents), err)
	}
	if err := s.Commit(ents[9], 10); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, lost, err = openSpool(dir, 1<<20, seg, true)
	if err != nil || lost != 0 {
		t.Fatal(err, lost)
	}
	if s.Len() != 20 {
		t.Fatalf("reopened spool holds %d messages, want 20", s.Len())
	}
	if n, err := s.Append(spoolMsgs(30, 5)); n != 5 || err != nil {
		t.Fatalf("append after reopen: %d, %v", n, err)
	}
	ids := drainSpool(t, s, 7)
	for i, id := range ids {
		if want := fmt.Sprintf("id-%04d", 10+i); id != want {
			t.Fatalf("message %d is %s, want %s (order broken)", i, id, want)
		}
	}
	if len(ids) != 25 {
		t.Fatalf("drained %d messages, want 25", len(ids))
	}
	if s.Size() != 0 {
		t.Errorf("empty spool still takes %d bytes", s.Size())
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 0 {
		t.Errorf("segments left after delivering everything: %v", segs)
	}
	s.Close()
}

func TestSpoolRefusesExactlyWhatExceedsItsSize(t *testing.T) {
	msgs := spoolMsgs(0, 10)
	size := spoolRecordSize(msgs[0])
	s, _, err := openSpool(t.TempDir(), 3*size+size/2, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Append(msgs)
	if n != 3 || err != errSpoolFull {
		t.Fatalf("append to a spool of 3.5 messages took %d (%v), want 3 and errSpoolFull", n, err)
	}
	ents, _ := s.Peek(10)
	if err := s.Commit(ents[len(ents)-1], len(ents)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Append(msgs[3:]); n != 3 || err != errSpoolFull {
		t.Fatalf("after delivering, append took %d (%v), want 3 again", n, err)
	}
}

func TestSpoolCutsATornRecordAtReopen(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpool(dir, 1<<20, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(spoolMsgs(0, 5)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	// A crash in the middle of writing a sixth record.
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := appendSpoolRecord(nil, spoolMsgs(5, 1)[0])
	f.Write(rec[:len(rec)-3])
	f.Close()
	s, lost, err := openSpool(dir, 1<<20, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if lost != 1 || s.Len() != 5 {
		t.Fatalf("reopen: %d messages, %d damaged; want 5 and 1", s.Len(), lost)
	}
	if _, err := s.Append(spoolMsgs(6, 1)); err != nil {
		t.Fatal(err)
	}
	ids := drainSpool(t, s, 100)
	if len(ids) != 6 || ids[5] != "id-0006" {
		t.Fatalf("after the cut: %v", ids)
	}
}
