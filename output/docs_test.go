package output

import (
	"os"
	"regexp"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestEventsDocExamplesMatchTheSchema keeps docs/EVENTS.md honest: every
// JSON example in it must validate, and there must be one of every
// registered kind.
func TestEventsDocExamplesMatchTheSchema(t *testing.T) {
	doc, err := os.ReadFile(testutils.Root() + "/docs/EVENTS.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)\n```").FindAllSubmatch(doc, -1)
	kinds := map[string]bool{}
	for _, b := range blocks {
		validate(t, b[1])
		kinds[string(regexp.MustCompile(`"event":"([a-z_]+)"`).FindSubmatch(b[1])[1])] = true
	}
	for _, s := range Kinds() {
		if !kinds[string(s.Kind)] {
			t.Errorf("docs/EVENTS.md has no example of %s", s.Kind)
		}
	}
}
