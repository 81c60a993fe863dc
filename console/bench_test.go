package console

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ebpf-sentry/ebpf-sentry/internal/browsertest"
)

// BenchmarkFeedLatency: from a blocked load's event entering the output
// pipeline to its row being drawn in the console's feed in chromium (the
// page polls on animation frames, ~16 ms). ns/op is the mean; p50-ms and
// max-ms are reported beside it.
func BenchmarkFeedLatency(b *testing.B) {
	_, p, url, token := start(b)
	br := browsertest.New(b)
	br.Do(b, "open", chromedp.Navigate(url+"/?token="+token))
	br.WaitFor(b, `document.getElementById('status').textContent === 'live'`)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("lat_%d", i)
		t0 := time.Now()
		p.Emit(blockedLoad(name))
		br.WaitFor(b, fmt.Sprintf(`Array.prototype.some.call(document.querySelectorAll('#feed tr.block'), function (r) { return r.textContent.indexOf(%q) >= 0; })`, name))
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
