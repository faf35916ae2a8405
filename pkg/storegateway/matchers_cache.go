package storegateway

import (
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// matchersCache keeps the regular-expression matchers of recent calls
// compiled (-blocks-storage.bucket-store.matchers-cache-max-items): a
// dashboard's queries repeat the same expressions, and compiling one costs
// more than looking it up. Equality matchers cost nothing to build and are
// not cached, as in Thanos. The nil *matchersCache caches nothing.
type matchersCache struct {
	c                       *lru.Cache[string, *labels.Matcher]
	requests, hits, evicted prometheus.Counter
	items                   prometheus.Gauge
}

// newMatchersCache returns a cache of maxItems matchers, nil for none,
// with Cortex's cortex_storegateway_matchers_cache_* metrics.
func newMatchersCache(maxItems int, reg prometheus.Registerer) (*matchersCache, error) {
	if maxItems <= 0 {
		return nil, nil
	}
	f := promauto.With(reg)
	mc := &matchersCache{
		requests: f.NewCounter(prometheus.CounterOpts{Name: "cortex_storegateway_matchers_cache_requests_total", Help: "Total number of cache requests for series matchers"}),
		hits:     f.NewCounter(prometheus.CounterOpts{Name: "cortex_storegateway_matchers_cache_hits_total", Help: "Total number of cache hits for series matchers"}),
		evicted:  f.NewCounter(prometheus.CounterOpts{Name: "cortex_storegateway_matchers_cache_evicted_total", Help: "Total number of items evicted from the cache"}),
		items:    f.NewGauge(prometheus.GaugeOpts{Name: "cortex_storegateway_matchers_cache_items", Help: "Total number of cached items"}),
	}
	f.NewGauge(prometheus.GaugeOpts{Name: "cortex_storegateway_matchers_cache_max_items", Help: "Maximum number of items that can be cached"}).Set(float64(maxItems))
	c, err := lru.NewWithEvict(maxItems, func(string, *labels.Matcher) { mc.evicted.Inc() })
	if err != nil {
		return nil, err
	}
	mc.c = c
	return mc, nil
}

// fromProm decodes a Series call's matchers, as client.FromPromMatchers,
// through the cache.
func (mc *matchersCache) fromProm(in []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	if mc == nil {
		return client.FromPromMatchers(in)
	}
	out := make([]*labels.Matcher, 0, len(in))
	for _, m := range in {
		if m.Type != prompb.LabelMatcher_RE && m.Type != prompb.LabelMatcher_NRE {
			lm, err := client.FromPromMatchers([]*prompb.LabelMatcher{m})
			if err != nil {
				return nil, err
			}
			out = append(out, lm[0])
			continue
		}
		mc.requests.Inc()
		key := strconv.Itoa(int(m.Type)) + "\xff" + m.Name + "\xff" + m.Value
		if lm, ok := mc.c.Get(key); ok {
			mc.hits.Inc()
			out = append(out, lm)
			continue
		}
		lm, err := client.FromPromMatchers([]*prompb.LabelMatcher{m})
		if err != nil {
			return nil, err
		}
		mc.c.Add(key, lm[0])
		mc.items.Set(float64(mc.c.Len()))
		out = append(out, lm[0])
	}
	return out, nil
}
