package matcherscache

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

func TestCache(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c, err := New(2, "cortex_ingester", reg)
	if err != nil {
		t.Fatal(err)
	}
	re := func(v string) *prompb.LabelMatcher {
		return &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "job", Value: v}
	}
	eq := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	first, err := c.FromProm([]*prompb.LabelMatcher{eq, re("a.*")})
	if err != nil || len(first) != 2 || first[1].String() != `job=~"a.*"` {
		t.Fatalf("decoded %v, %v", first, err)
	}
	again, _ := c.FromProm([]*prompb.LabelMatcher{eq, re("a.*")})
	if again[1] != first[1] {
		t.Fatal("the regular expression was compiled again")
	}
	// Matcher sets share the cache.
	sets, err := c.FromMatcherSets([]*client.MatcherSet{{Matchers: []*client.LabelMatcher{{Type: client.LabelMatcher_RE, Name: "job", Value: "a.*"}}}, {}})
	if err != nil || len(sets) != 1 || sets[0][0] != first[1] {
		t.Fatalf("matcher sets %v, %v: want the cached matcher, empty sets left out", sets, err)
	}
	// Two more expressions evict the least recently used.
	for _, v := range []string{"b.*", "c.*"} {
		if _, err := c.FromProm([]*prompb.LabelMatcher{re(v)}); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP cortex_ingester_matchers_cache_evicted_total Total number of items evicted from the cache
# TYPE cortex_ingester_matchers_cache_evicted_total counter
cortex_ingester_matchers_cache_evicted_total 1
# HELP cortex_ingester_matchers_cache_hits_total Total number of cache hits for series matchers
# TYPE cortex_ingester_matchers_cache_hits_total counter
cortex_ingester_matchers_cache_hits_total 2
# HELP cortex_ingester_matchers_cache_items Total number of cached items
# TYPE cortex_ingester_matchers_cache_items gauge
cortex_ingester_matchers_cache_items 2
# HELP cortex_ingester_matchers_cache_max_items Maximum number of items that can be cached
# TYPE cortex_ingester_matchers_cache_max_items gauge
cortex_ingester_matchers_cache_max_items 2
# HELP cortex_ingester_matchers_cache_requests_total Total number of cache requests for series matchers
# TYPE cortex_ingester_matchers_cache_requests_total counter
cortex_ingester_matchers_cache_requests_total 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FromProm([]*prompb.LabelMatcher{re("(")}); err == nil || !strings.Contains(err.Error(), `label matcher job=~"("`) {
		t.Fatalf("a bad expression: %v, want the decoder's error", err)
	}
	if c, err := New(0, "cortex_ingester", nil); c != nil || err != nil {
		t.Fatalf("0 items: %v, %v; want no cache", c, err)
	}
	var none *Cache
	if ms, err := none.FromProm([]*prompb.LabelMatcher{re("a")}); err != nil || len(ms) != 1 {
		t.Fatalf("nil cache: %v, %v", ms, err)
	}
}
