package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// indexCache caches what a Select computes from a block's local index.
// The index file is mapped in memory, so reading it costs no I/O; what
// costs is computing. BenchmarkSelectIndexCache (10,000 series, 2 cores
// shared with other work, medians of 3) splits a Select's index work:
//
//	matchers (1000 series)    expand postings   cached copy   read series   cached copy
//	instance=~"host-01.*"     0.56 ms           0.024 ms      1.4 ms        0.53 ms
//	job!~"job-[1-9][0-9]"     0.56 ms           0.014 ms      0.94 ms       0.70 ms
//	job="job-7" (100 series)  0.012 ms          0.0013 ms     0.14 ms       0.077 ms
//
// Expanding postings for regular expressions and negative matchers (each
// value of the label tested, postings lists merged or subtracted) is 25 to
// 40 times dearer than decoding a cached list of a few bytes per series:
// cached as ExpandedPostings, by block and matcher set. A series' labels
// and chunk references cost about as much to decode from a cached copy as
// from the mapped index (both build the label strings), within 2x and the
// noise of a whole Select, while a copy per series would hold far more
// memory than postings: Series items are accepted in -enabled-items for
// Cortex's configurations but not cached.
type indexCache struct {
	c   cache.Cache
	ttl time.Duration // 0: until evicted
	m   *indexCacheMetrics
}

// remoteIndexCacheTTL is Cortex's expiry of index cache items in memcached
// and redis.
const remoteIndexCacheTTL = 24 * time.Hour

type indexCacheMetrics struct {
	requests, hits, added, overflowed *prometheus.CounterVec
	evicted                           *prometheus.CounterVec
}

func newIndexCacheMetrics(reg prometheus.Registerer, inMemory bool) *indexCacheMetrics {
	f := promauto.With(reg)
	m := &indexCacheMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_index_cache_requests_total",
			Help: "Total number of items requests to the cache.",
		}, []string{"item_type"}),
		hits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_index_cache_hits_total",
			Help: "Total number of items requests to the cache that were a hit.",
		}, []string{"item_type"}),
		added: f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_index_cache_items_added_total",
			Help: "Total number of items that were added to the index cache.",
		}, []string{"item_type"}),
	}
	if inMemory {
		m.overflowed = f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_index_cache_items_overflowed_total",
			Help: "Total number of items that could not be added to the cache due to being too big.",
		}, []string{"item_type"})
		m.evicted = f.NewCounterVec(prometheus.CounterOpts{
			Name: "thanos_store_index_cache_items_evicted_total",
			Help: "Total number of items that were evicted from the index cache.",
		}, []string{"item_type"})
	}
	for _, it := range []string{itemExpandedPostings} {
		m.requests.WithLabelValues(it)
		m.hits.WithLabelValues(it)
		m.added.WithLabelValues(it)
	}
	return m
}

// newIndexCache returns the index cache of cfg, nil for none or when the
// enabled items leave nothing to cache: a multi-level cache over the
// backends listed that cache ExpandedPostings.
func newIndexCache(cfg IndexCacheConfig, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (*indexCache, error) {
	bs, err := backends(indexCachePrefix+".backend", cfg.Backend)
	if err != nil || len(bs) == 0 {
		return nil, err
	}
	ic := &indexCache{}
	var (
		levels   []cache.Cache
		inMemory *cache.InMemory
	)
	for _, backend := range bs {
		switch backend {
		case CacheBackendInMemory:
			if !cachesItem(cfg.InMemory.EnabledItems) {
				continue
			}
			inMemory = cache.NewInMemory("index-cache", int64(min(cfg.InMemory.MaxSizeBytes, 1<<62)), defaultMaxItemSize)
			levels = append(levels, inMemory)
		case CacheBackendMemcached:
			if !cachesItem(cfg.Memcached.EnabledItems) {
				continue
			}
			c, err := newMemcached("index-cache", indexCachePrefix+".memcached", cfg.Memcached.MemcachedConfig, tls, logger, reg)
			if err != nil {
				return nil, err
			}
			levels = append(levels, c)
			// Items in memcached expire as Cortex's do.
			ic.ttl = remoteIndexCacheTTL
		case CacheBackendRedis:
			if !cachesItem(cfg.Redis.EnabledItems) {
				continue
			}
			c, err := newRedis("index-cache", indexCachePrefix+".redis", cfg.Redis.RedisConfig, tls, logger, reg)
			if err != nil {
				return nil, err
			}
			levels = append(levels, c)
			// Items in redis expire as Cortex's do.
			ic.ttl = remoteIndexCacheTTL
		}
	}
	if len(levels) == 0 {
		return nil, nil
	}
	ic.m = newIndexCacheMetrics(reg, inMemory != nil)
	if inMemory != nil {
		registerInMemoryIndexCacheMetrics(inMemory, int64(min(cfg.InMemory.MaxSizeBytes, 1<<62)), ic.m, reg)
	}
	itemReg := prometheus.WrapRegistererWith(prometheus.Labels{"item_type": itemExpandedPostings}, reg)
	ic.c = cache.NewMultiLevel("index-cache", "index_cache", cfg.MultiLevel, ic.ttl, itemReg, levels...)
	return ic, nil
}

// cachesItem reports whether a level's enabled items include
// ExpandedPostings, the only item type cached here (empty: all).
func cachesItem(items []string) bool {
	return len(items) == 0 || slices.Contains(items, itemExpandedPostings)
}

// registerInMemoryIndexCacheMetrics registers the in-memory index cache's
// own metrics, Thanos'.
func registerInMemoryIndexCacheMetrics(c *cache.InMemory, size int64, m *indexCacheMetrics, reg prometheus.Registerer) {
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "thanos_store_index_cache_max_size_bytes",
		Help: "Maximum number of bytes to be held in the index cache.",
	}).Set(float64(size))
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "thanos_store_index_cache_max_item_size_bytes",
		Help: "Maximum number of bytes for single entry to be held in the index cache.",
	}).Set(float64(c.MaxItemSize()))
	// ExpandedPostings is the only item type held, so the cache's own
	// counts are its.
	itemLabel := prometheus.Labels{"item_type": itemExpandedPostings}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "thanos_store_index_cache_items",
		Help:        "Current number of items in the index cache.",
		ConstLabels: itemLabel,
	}, func() float64 { return float64(c.Len()) })
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "thanos_store_index_cache_items_size_bytes",
		Help:        "Current byte size of items in the index cache.",
		ConstLabels: itemLabel,
	}, func() float64 { return float64(c.Size()) })
	c.OnEvict(func(key string, _ int64) { m.evicted.WithLabelValues(itemTypeOf(key)).Inc() })
}

// itemTypeOf is the item type of a cache key: its first field.
func itemTypeOf(key string) string {
	it, _, _ := strings.Cut(key, ":")
	return it
}

// expandedPostingsKey names a block's postings for ms, in any order.
func expandedPostingsKey(blockKey string, ms []*labels.Matcher) string {
	strs := make([]string, len(ms))
	for i, m := range ms {
		strs[i] = m.String()
	}
	slices.Sort(strs)
	return itemExpandedPostings + ":" + blockKey + ":" + strings.Join(strs, ",")
}

func (ic *indexCache) fetchExpandedPostings(ctx context.Context, key string) ([]storage.SeriesRef, bool) {
	ic.m.requests.WithLabelValues(itemExpandedPostings).Inc()
	v, ok := ic.c.Fetch(ctx, []string{key})[key]
	if !ok {
		return nil, false
	}
	refs, err := decodePostings(v)
	if err != nil {
		return nil, false
	}
	ic.m.hits.WithLabelValues(itemExpandedPostings).Inc()
	return refs, true
}

func (ic *indexCache) storeExpandedPostings(key string, refs []storage.SeriesRef) {
	v := encodePostings(refs)
	if c, ok := ic.c.(*cache.InMemory); ok {
		if !c.Set(key, v, ic.ttl) {
			ic.m.overflowed.WithLabelValues(itemExpandedPostings).Inc()
			return
		}
	} else {
		ic.c.Store(map[string][]byte{key: v}, ic.ttl)
	}
	ic.m.added.WithLabelValues(itemExpandedPostings).Inc()
}

// encodePostings writes sorted references as uvarint deltas after their
// count: a few bytes per series rather than eight.
func encodePostings(refs []storage.SeriesRef) []byte {
	buf := binary.AppendUvarint(make([]byte, 0, 4+2*len(refs)), uint64(len(refs)))
	var prev storage.SeriesRef
	for _, r := range refs {
		buf = binary.AppendUvarint(buf, uint64(r-prev))
		prev = r
	}
	return buf
}

var errCorruptPostings = errors.New("corrupt cached postings")

func decodePostings(b []byte) ([]storage.SeriesRef, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errCorruptPostings
	}
	b = b[k:]
	refs := make([]storage.SeriesRef, 0, n)
	var prev uint64
	for range n {
		d, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errCorruptPostings
		}
		b = b[k:]
		prev += d
		refs = append(refs, storage.SeriesRef(prev))
	}
	if len(b) != 0 {
		return nil, errCorruptPostings
	}
	return refs, nil
}
