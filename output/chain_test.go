package output

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
)

// verifyChain returns the index of the first line whose prev_hash is not
// the sha256 of the line before it (-1: the chain holds). field finds the
// hash in a decoded line.
func verifyChain(t *testing.T, lines [][]byte, field func(map[string]any) any) int {
	t.Helper()
	for i := 1; i < len(lines); i++ {
		var m map[string]any
		if err := json.Unmarshal(lines[i], &m); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(lines[i-1])
		if field(m) != hex.EncodeToString(sum[:]) {
			return i
		}
	}
	return -1
}

// Each event carries the hash of the one before it, so a consumer can tell
// that events were removed (or altered) even when seq was rewritten too;
// in the ECS shape the hash travels in ebpf_sentry.
func TestEventsFormAHashChain(t *testing.T) {
	for _, format := range []Format{FormatJSON, FormatECS} {
		t.Run(string(format), func(t *testing.T) {
			p := NewPipeline(Config{Host: "h", LossInterval: -1, Format: format})
			sink := &memSink{name: "mem"}
			p.Add(sink, QueueOptions{Size: 64})
			for i := range 10 {
				p.Emit(NewTamper(Tamper{What: TamperConfig, Detail: string(rune('a' + i))}))
			}
			if err := p.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			var lines [][]byte
			for _, r := range sink.recs {
				lines = append(lines, r.JSON)
			}
			if len(lines) != 10 {
				t.Fatalf("%d events delivered", len(lines))
			}
			field := func(m map[string]any) any { return m["prev_hash"] }
			if format == FormatECS {
				field = func(m map[string]any) any { return m["ebpf_sentry"].(map[string]any)["prev_hash"] }
			}
			var first map[string]any
			json.Unmarshal(lines[0], &first)
			if field(first) != nil {
				t.Errorf("the first event has a prev_hash: %v", field(first))
			}
			if i := verifyChain(t, lines, field); i >= 0 {
				t.Fatalf("chain broken at event %d as delivered", i)
			}
			if i := verifyChain(t, slices.Delete(slices.Clone(lines), 4, 5), field); i != 4 {
				t.Fatalf("an event removed: chain breaks at %d, want 4", i)
			}
		})
	}
}
