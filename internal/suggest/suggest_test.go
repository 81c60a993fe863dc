package suggest

import (
	"slices"
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{"identical words are zero apart", "probe_read", "probe_read", 0},
		{"two swapped letters are two edits", "probe_raed", "probe_read", 2},
		{"a missing letter is one edit", "map_lookup_elm", "map_lookup_elem", 1},
		{"an empty word is as far as the other is long", "", "exit", 4},
		{"kitten to sitting is three edits", "kitten", "sitting", 3},
		{"flaw to lawn drops one letter and adds another", "flaw", "lawn", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Distance(tt.a, tt.b); got != tt.want {
				t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := Distance(tt.b, tt.a); got != tt.want {
				t.Errorf("Distance(%q, %q) = %d, want %d (symmetry)", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

func TestClosest(t *testing.T) {
	words := []string{"helpers", "helpers_only", "helpers_any", "prog_name", "prog_type"}
	tests := []struct {
		name   string
		want   string
		expect string
		ok     bool
	}{
		{"a typo finds the intended key", "helpres", "helpers", true},
		{"a close key wins over a far one", "prog_typ", "prog_type", true},
		{"a word far from every candidate gets no suggestion", "strings", "", false},
		{"an over-long word gets no suggestion", strings.Repeat("a", 65), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Closest(tt.want, slices.Values(words))
			if got != tt.expect || ok != tt.ok {
				t.Errorf("Closest(%q) = %q, %v; want %q, %v", tt.want, got, ok, tt.expect, tt.ok)
			}
		})
	}
	t.Run("ties go to the lexically smaller candidate whatever the order", func(t *testing.T) {
		a, _ := Closest("ab", slices.Values([]string{"ac", "aa"}))
		b, _ := Closest("ab", slices.Values([]string{"aa", "ac"}))
		if a != "aa" || b != "aa" {
			t.Errorf("ties resolved to %q and %q, want aa both times", a, b)
		}
	})
}
