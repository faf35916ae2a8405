// Package matcherscache keeps the regular-expression matchers of recent
// read calls compiled, as Cortex's -<component>.matchers-cache-max-items
// does with Thanos' matchers cache: a dashboard's queries repeat the same
// expressions, and compiling one costs more than looking it up. Equality
// matchers cost nothing to build and are not cached, as in Thanos.
package matcherscache

import (
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// Cache is an LRU cache of matchers. The nil *Cache caches nothing.
type Cache struct {
	c                       *lru.Cache[string, *labels.Matcher]
	requests, hits, evicted prometheus.Counter
	items                   prometheus.Gauge
}

// New returns a cache of maxItems matchers, nil for none, with Cortex's
// <prefix>_matchers_cache_* metrics (prefix "cortex_ingester"). reg may be
// nil.
func New(maxItems int, prefix string, reg prometheus.Registerer) (*Cache, error) {
	if maxItems <= 0 {
		return nil, nil
	}
	mc := &Cache{
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_matchers_cache_requests_total", Help: "Total number of cache requests for series matchers"}),
		hits:     prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_matchers_cache_hits_total", Help: "Total number of cache hits for series matchers"}),
		evicted:  prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_matchers_cache_evicted_total", Help: "Total number of items evicted from the cache"}),
		items:    prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "_matchers_cache_items", Help: "Total number of cached items"}),
	}
	maxGauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "_matchers_cache_max_items", Help: "Maximum number of items that can be cached"})
	maxGauge.Set(float64(maxItems))
	if reg != nil {
		for _, c := range []prometheus.Collector{mc.requests, mc.hits, mc.evicted, mc.items, maxGauge} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	c, err := lru.NewWithEvict(maxItems, func(string, *labels.Matcher) { mc.evicted.Inc() })
	if err != nil {
		return nil, err
	}
	mc.c = c
	return mc, nil
}

// FromProm decodes a call's matchers, as client.FromPromMatchers, through
// the cache.
func (mc *Cache) FromProm(in []*prompb.LabelMatcher) ([]*labels.Matcher, error) {
	if mc == nil {
		return client.FromPromMatchers(in)
	}
	out := make([]*labels.Matcher, 0, len(in))
	for _, m := range in {
		lm, err := mc.get(int32(m.Type), m.Name, m.Value, func() (*labels.Matcher, error) {
			lm, err := client.FromPromMatchers([]*prompb.LabelMatcher{m})
			if err != nil {
				return nil, err
			}
			return lm[0], nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, lm)
	}
	return out, nil
}

// FromMatcherSets decodes a call's matcher sets, as
// client.FromMatcherSets, through the cache.
func (mc *Cache) FromMatcherSets(sets []*client.MatcherSet) ([][]*labels.Matcher, error) {
	if mc == nil {
		return client.FromMatcherSets(sets)
	}
	out := make([][]*labels.Matcher, 0, len(sets))
	for _, set := range sets {
		ms := make([]*labels.Matcher, 0, len(set.GetMatchers()))
		for _, m := range set.GetMatchers() {
			lm, err := mc.get(int32(m.GetType()), m.GetName(), m.GetValue(), func() (*labels.Matcher, error) {
				one, err := client.FromMatcherSets([]*client.MatcherSet{{Matchers: []*client.LabelMatcher{m}}})
				if err != nil {
					return nil, err
				}
				return one[0][0], nil
			})
			if err != nil {
				return nil, err
			}
			ms = append(ms, lm)
		}
		if len(ms) > 0 {
			out = append(out, ms)
		}
	}
	return out, nil
}

// get returns the matcher of (typ, name, value), from the cache when it is
// a regular expression, else built by build.
func (mc *Cache) get(typ int32, name, value string, build func() (*labels.Matcher, error)) (*labels.Matcher, error) {
	if t := prompb.LabelMatcher_Type(typ); t != prompb.LabelMatcher_RE && t != prompb.LabelMatcher_NRE {
		return build()
	}
	mc.requests.Inc()
	key := strconv.Itoa(int(typ)) + "\xff" + name + "\xff" + value
	if lm, ok := mc.c.Get(key); ok {
		mc.hits.Inc()
		return lm, nil
	}
	lm, err := build()
	if err != nil {
		return nil, err
	}
	mc.c.Add(key, lm)
	mc.items.Set(float64(mc.c.Len()))
	return lm, nil
}
