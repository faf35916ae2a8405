package ingester

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// With -ingester.matchers-cache-max-items, the reads' regular expressions
// are compiled once, and the answers are those without the cache.
func TestMatchersCache(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.MatchersCacheMaxItems = 10
	h := startHarness(t, cfg, newTestLimits(t, nil))
	h.mustPush("team-a", floats(series("up", "job", "api"), float64(base), 1), floats(series("up", "job", "db"), float64(base), 1))
	re := &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "job", Value: "a.*"}
	for range 2 {
		if got := h.query("team-a", base-1, base+1, re); len(got) != 1 || labelsString(got[0].Labels) != `{__name__="up", job="api"}` {
			t.Fatalf("query with the cache: %v", got)
		}
	}
	values, err := h.conn.LabelValues(ctxFor("team-a"), &client.LabelValuesRequest{Name: "job", EndMs: base + 1, MatcherSets: []*client.MatcherSet{{Matchers: []*client.LabelMatcher{{Type: client.LabelMatcher_RE, Name: "job", Value: "a.*"}}}}})
	if err != nil || strings.Join(values.Values, ",") != "api" {
		t.Fatalf("label values with the cache: %v, %v", values, err)
	}
	want := `
# HELP cortex_ingester_matchers_cache_hits_total Total number of cache hits for series matchers
# TYPE cortex_ingester_matchers_cache_hits_total counter
cortex_ingester_matchers_cache_hits_total 2
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "cortex_ingester_matchers_cache_hits_total"); err != nil {
		t.Fatal(err)
	}
	cfg.MatchersCacheMaxItems = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-ingester.matchers-cache-max-items must not be negative") {
		t.Fatalf("negative: %v", err)
	}
}
