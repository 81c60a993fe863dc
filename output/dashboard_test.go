package output

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGrafanaDashboardQueriesOnlyExportedMetrics reads every query of the
// Grafana dashboard in deploy/grafana and checks that each metric it names
// is in the agent's registry (after every recording path has run once, so
// that labelled metrics exist), and that every ebpf_sentry metric has a
// panel.
func TestGrafanaDashboardQueriesOnlyExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/ebpf-sentry.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	m := NewMetrics()
	m.LoadSeen("kprobe")
	m.RuleMatched("r", "block")
	m.Enforcement(ResultDenied, "block")
	m.CaptureLoss("ringbuf_full", 1)
	m.SinkDrop("file", "queue_full", 1)
	m.SinkSent("file", 1)
	m.ProcessingLatency(time.Millisecond)
	m.countEvent(KindProgLoad)
	m.sinkQueue("file", func() float64 { return 0 })
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}

	// Identifiers followed by "{" or "[", or standing alone, that are not
	// PromQL functions or keywords.
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promql := map[string]bool{"sum": true, "by": true, "rate": true, "increase": true, "topk": true, "max": true,
		"histogram_quantile": true, "le": true, "label_values": true, "instance": true}
	queried := map[string]bool{}
	check := func(where, expr string) {
		// Drop label matchers, legends and $variables before looking for names.
		expr = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|\([a-z_, ]*\)\s*\(`).ReplaceAllStringFunc(expr, func(s string) string {
			if strings.HasPrefix(s, "(") {
				return "("
			}
			return ""
		})
		expr = regexp.MustCompile(`\b[0-9][0-9.]*(e[0-9]+)?\b`).ReplaceAllString(expr, "") // numbers such as 1e6
		for _, id := range ident.FindAllString(expr, -1) {
			if promql[id] {
				continue
			}
			name := id
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(id, suf); ok && exported[base] {
					name = base
				}
			}
			queried[name] = true
			if !exported[name] {
				t.Errorf("%s queries %s, which the agent does not export", where, id)
			}
		}
	}
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
			n++
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && strings.Contains(q, "(") {
			check("variable", q)
		}
	}
	if n == 0 {
		t.Fatal("the dashboard has no queries")
	}
	for name := range exported {
		if strings.HasPrefix(name, "ebpf_sentry_") && !queried[name] {
			t.Errorf("metric %s has no panel", name)
		}
	}
	t.Logf("%d queries over %d metrics: %v", n, len(queried), slices.Sorted(func(yield func(string) bool) {
		for k := range queried {
			if !yield(k) {
				return
			}
		}
	}))
}
