package main

import (
	"bytes"
	"testing"
)

// Saved events given to `allowlist approve --events` give entries or an
// error naming the line, never a panic, and every entry has a fingerprint
// that was written in the event.
func FuzzApproveEvents(f *testing.F) {
	f.Add([]byte(`{"event":"prog_load","prog":{"name":"x","type":{"id":5,"name":"tracepoint"},"insn_hash":"0x00000000000000bb","kernel":{"id":3,"tag":"0123456789abcdef"}},"loader":{"exe":"/tmp/x"},"verdict":{"action":"block"}}` + "\n"))
	f.Add([]byte(`{"event":"sensor_started"}` + "\n\n" + `{"event":"prog_load","prog":{"insn_hash":"0x1"}}`))
	f.Add([]byte(`{"ebpf_sentry":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, blocked := range []bool{false, true} {
			es, err := readEventEntries("fuzz.json", bytes.NewReader(data), blocked)
			if err != nil {
				continue
			}
			for _, e := range es {
				if !bytes.Contains(bytes.ToLower(data), []byte("insn_hash")) {
					t.Fatalf("entry %+v from input without an insn_hash", e)
				}
			}
		}
	})
}
