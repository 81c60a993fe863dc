package sensor

import (
	"errors"
	"testing"
	"time"
)

// FuzzAssemble feeds arbitrary samples to the record parser and the
// assembler: malformed ones must be rejected with ErrRecord, never panic.
func FuzzAssemble(f *testing.F) {
	insns := genInsns(600)
	for _, r := range loadRecords(7, 1, insns) {
		f.Add(r)
	}
	f.Add(encChunk(7, 5, insns[:16], false))
	f.Fuzz(func(t *testing.T, b []byte) {
		a := newAssembler()
		for _, rec := range loadRecords(7, 1, insns)[:1] {
			r, _ := parseRecord(rec)
			a.add(r, time.Now())
		}
		r, err := parseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		a.add(r, time.Now())
		a.expire(time.Now().Add(time.Hour))
	})
}
