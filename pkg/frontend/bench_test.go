package frontend

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkMovingDashboard refreshes a 6-hour dashboard panel whose range
// moves on one step (a minute) per refresh, as Grafana does, over 200
// series, with the results cache off and on. With it on, each refresh asks
// the querier only for the new step.
func BenchmarkMovingDashboard(b *testing.B) {
	var load strings.Builder
	load.WriteString("load 1m\n")
	for i := range 200 {
		fmt.Fprintf(&load, "  http_requests_total{instance=\"%d\", job=\"api\"} 0+%dx2000\n", i, i%7+1)
	}
	for _, cache := range []bool{false, true} {
		b.Run(fmt.Sprintf("cache=%v", cache), func(b *testing.B) {
			api := newPromAPIWith(b, load.String())
			cfg := defaultConfig()
			cfg.CacheResults = cache
			h := newHarness(b, cfg, api, 2)
			const hour, min = 3600.0, 60.0
			start := 2 * hour
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				from := start + float64(i%1000)*min // stays within the loaded data
				code, body := h.get(context.Background(), "t1", "/prometheus/api/v1/query_range",
					rangeParams(`sum by (instance) (rate(http_requests_total[5m]))`, from, from+6*hour, min))
				if code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			}
			b.ReportMetric(float64(api.calls.Load())/float64(b.N), "querier-calls/op")
		})
	}
}
