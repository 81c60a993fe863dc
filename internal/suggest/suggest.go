// Package suggest finds the plausible intended word for a misspelt one, for
// "unknown X, did you mean Y?" messages in rules, the assembler and helper lookups.
package suggest

import "iter"

// maxLen bounds the words compared: only typos of short names are suggested,
// and hostile input cannot make a suggestion quadratic in its size.
const maxLen = 64

// Closest returns the candidate nearest to want by edit distance (ties go to
// the lexically smaller candidate, so the answer does not depend on map
// order), and false when none is close enough to be a typo: a third of the
// word may be wrong, but at least two edits are allowed so that short names
// still get suggestions.
func Closest(want string, candidates iter.Seq[string]) (string, bool) {
	if len(want) > maxLen {
		return "", false
	}
	best, bestD := "", -1
	for c := range candidates {
		if c == "" || len(c) > maxLen {
			continue
		}
		d := Distance(want, c)
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(want)/3) {
		return "", false
	}
	return best, true
}

// Distance is the Levenshtein distance between a and b, counted in bytes
// (the names compared are ASCII).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
