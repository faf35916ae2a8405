package postingscache

import (
	"container/list"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
)

const (
	// seedCount is the number of invalidation seeds shared by the tenants
	// of an ingester, 8 bytes each (16 MiB), as in Cortex. Names hashing
	// to the same seed invalidate each other's entries, nothing worse.
	seedCount = 2 * 1024 * 1024

	// PurgeInterval is how often the ingester drops expired entries of
	// tenants that stopped querying (Cortex's expire interval); a lookup
	// drops them as it goes.
	PurgeInterval = 5 * time.Minute
)

var (
	// The ULIDs Prometheus gives its head readers: tsdb.RangeHead (what
	// queries read) and tsdb.Head.
	rangeHeadULID = ulid.MustParse("0000000000XXXXXXXRANGEHEAD")
	headULID      = ulid.MustParse("0000000000XXXXXXXXXXXXHEAD")
)

func isHead(id ulid.ULID) bool { return id == rangeHeadULID || id == headULID }

type postingsFunc func(ctx context.Context, ix tsdb.IndexReader, ms ...*labels.Matcher) (index.Postings, error)

// Factory makes the tenants' caches of one ingester, which share its
// metrics and invalidation seeds.
type Factory struct {
	cfg     Config
	seeds   []atomic.Uint64
	metrics *metrics

	// now and postings are time.Now and tsdb.PostingsForMatchers, but for
	// tests.
	now      func() time.Time
	postings postingsFunc
}

// NewFactory returns the factory of cfg's caches, nil when neither is
// enabled, registering Cortex's cortex_ingester_expanded_postings_*
// metrics with reg (which may be nil).
func NewFactory(cfg Config, reg prometheus.Registerer) (*Factory, error) {
	if !cfg.Head.Enabled && !cfg.Blocks.Enabled {
		return nil, nil
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Factory{cfg: cfg, seeds: make([]atomic.Uint64, seedCount), metrics: m, now: time.Now, postings: tsdb.PostingsForMatchers}, nil
}

// NewCache returns a tenant's cache; nil from a nil factory.
func (f *Factory) NewCache(tenant string) *Cache {
	if f == nil {
		return nil
	}
	return &Cache{
		f:      f,
		tenant: tenant,
		head:   newFIFOCache(f.cfg.Head, "head", f.metrics, f.now),
		blocks: newFIFOCache(f.cfg.Blocks, "block", f.metrics, f.now),
	}
}

// Cache is one tenant's postings cache, for its head and its blocks.
type Cache struct {
	f            *Factory
	tenant       string
	head, blocks *fifoCache
}

// enabledFor reports whether the block's queries go through the cache.
func (c *Cache) enabledFor(id ulid.ULID) bool {
	if isHead(id) {
		return c.head.cfg.Enabled
	}
	return c.blocks.cfg.Enabled
}

// ExpireSeries invalidates the head entries of the series' metric: called
// when a series is created or deleted.
func (c *Cache) ExpireSeries(ls labels.Labels) {
	if name := ls.Get(model.MetricNameLabel); name != "" {
		c.f.seeds[c.seedIndex(name)].Add(1)
	}
}

func (c *Cache) seedIndex(name string) uint64 {
	return (fnv1a(fnv1a(fnvOffset, c.tenant), name)) % uint64(len(c.f.seeds))
}

// PurgeExpired drops the entries past their TTL.
func (c *Cache) PurgeExpired() {
	c.head.purge()
	c.blocks.purge()
}

// PostingsForMatchers is tsdb.PostingsForMatchers through the cache of
// the block blockID names.
func (c *Cache) PostingsForMatchers(ctx context.Context, blockID ulid.ULID, ix tsdb.IndexReader, ms ...*labels.Matcher) (index.Postings, error) {
	fc := c.blocks
	var seed uint64
	if isHead(blockID) {
		fc = c.head
		if fc.cfg.Enabled {
			name, ok := metricName(ms)
			if !ok {
				c.f.metrics.nonCacheable.WithLabelValues(fc.name).Inc()
				return c.f.postings(ctx, ix, ms...)
			}
			// Read before the lookup, so a series created during it
			// bumps the seed after: the next query misses.
			seed = c.f.seeds[c.seedIndex(name)].Load()
		}
	}
	if !fc.cfg.Enabled {
		return c.f.postings(ctx, ix, ms...)
	}
	c.f.metrics.requests.WithLabelValues(fc.name).Inc()
	e := fc.get(cacheKey(seed, blockID, ms), func() ([]storage.SeriesRef, error) {
		// The lookup serves every caller waiting for it, so no caller's
		// context may cancel it: -fetch-timeout bounds it instead.
		fetchCtx := context.Background()
		if fc.cfg.FetchTimeout > 0 {
			var cancel context.CancelFunc
			fetchCtx, cancel = context.WithTimeout(fetchCtx, fc.cfg.FetchTimeout)
			defer cancel()
		}
		p, err := c.f.postings(fetchCtx, ix, ms...)
		if err != nil {
			return nil, err
		}
		return index.ExpandPostings(p)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.done:
	}
	if e.err != nil {
		return nil, e.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Readers never modify the list: every query shares it.
	return index.NewListPostings(e.refs), nil
}

func metricName(ms []*labels.Matcher) (string, bool) {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value, true
		}
	}
	return "", false
}

// cacheKey identifies a lookup: the seed, the block and the matchers in a
// canonical order, each string length-prefixed so that no two sets of
// matchers share a key (Cortex's separators let label values containing
// them collide).
func cacheKey(seed uint64, blockID ulid.ULID, ms []*labels.Matcher) string {
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b *labels.Matcher) int {
		if a.Type != b.Type {
			return int(a.Type) - int(b.Type)
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	size := binary.MaxVarintLen64 + len(blockID)
	for _, m := range sorted {
		size += 1 + 2*binary.MaxVarintLen64 + len(m.Name) + len(m.Value)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, seed)
	b = append(b, blockID[:]...)
	for _, m := range sorted {
		b = append(b, byte(m.Type))
		b = binary.AppendUvarint(b, uint64(len(m.Name)))
		b = append(b, m.Name...)
		b = binary.AppendUvarint(b, uint64(len(m.Value)))
		b = append(b, m.Value...)
	}
	return string(b)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	// A separator, so that ("ab", "c") and ("a", "bc") differ.
	h ^= 0xff
	h *= fnvPrime
	return h
}

// entryOverhead is what an entry costs beyond its references and key:
// the entry, its channel, list element and map slot, 290 bytes measured
// with runtime.MemStats over 100,000 entries. Cortex counts only the
// references and the key, which lets small entries take several times
// max-bytes.
const entryOverhead = 290

// fifoCache holds the postings of lookups, oldest first out, within
// MaxBytes and for TTL.
type fifoCache struct {
	cfg  CacheConfig
	name string // the metrics' cache label: head or block
	m    *metrics
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	order   list.List // of *entry with a successful lookup, oldest first
	bytes   int64
}

// entry is a lookup, in flight until done is closed; its other fields are
// set before.
type entry struct {
	key     string
	done    chan struct{}
	refs    []storage.SeriesRef
	err     error
	created time.Time
	size    int64
	elem    *list.Element // nil while in flight
}

func newFIFOCache(cfg CacheConfig, name string, m *metrics, now func() time.Time) *fifoCache {
	return &fifoCache{cfg: cfg, name: name, m: m, now: now, entries: map[string]*entry{}}
}

// get returns the entry of key, looking it up with fetch on a miss. A
// caller finding the lookup in flight shares it. Failed lookups are not
// kept (Cortex keeps them for the TTL): a timeout would otherwise fail
// every query of those matchers until it expires.
func (c *fifoCache) get(key string, fetch func() ([]storage.SeriesRef, error)) *entry {
	c.mu.Lock()
	e, ok := c.entries[key]
	reason := "miss"
	if ok && e.elem != nil && c.expired(e, c.now()) {
		c.remove(e)
		ok, reason = false, "expired"
	}
	if ok {
		c.mu.Unlock()
		c.m.hits.WithLabelValues(c.name).Inc()
		return e
	}
	e = &entry{key: key, done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()
	c.m.misses.WithLabelValues(c.name, reason).Inc()

	refs, err := fetch()

	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs, e.err = refs, err
	size := int64(len(refs))*8 + int64(len(key)) + entryOverhead
	switch {
	case err != nil || c.cfg.TTL <= 0:
		delete(c.entries, key)
	case size > c.cfg.MaxBytes:
		// Kept, it would evict everything else first, and then itself.
		delete(c.entries, key)
		c.m.evictions.WithLabelValues(c.name, "full").Inc()
	default:
		e.created = c.now()
		e.size = size
		e.elem = c.order.PushBack(e)
		c.bytes += e.size
		c.evict(false)
	}
	close(e.done)
	return e
}

func (c *fifoCache) expired(e *entry, now time.Time) bool {
	return now.Sub(e.created) >= c.cfg.TTL
}

func (c *fifoCache) remove(e *entry) {
	c.order.Remove(e.elem)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// evict drops the oldest entries while the cache is over MaxBytes or they
// are past their TTL; with onlyExpired, only the latter.
func (c *fifoCache) evict(onlyExpired bool) {
	now := c.now()
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		e := front.Value.(*entry)
		var reason string
		switch {
		case !onlyExpired && c.bytes > c.cfg.MaxBytes:
			reason = "full"
		case c.expired(e, now):
			reason = "expired"
		default:
			return
		}
		c.remove(e)
		c.m.evictions.WithLabelValues(c.name, reason).Inc()
	}
}

func (c *fifoCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evict(true)
}

// size is the number of entries kept.
func (c *fifoCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

type metrics struct {
	requests, hits, misses, evictions, nonCacheable *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_expanded_postings_cache_requests_total",
			Help: "Total number of requests to the cache.",
		}, []string{"cache"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_expanded_postings_cache_hits_total",
			Help: "Total number of hit requests to the cache.",
		}, []string{"cache"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_expanded_postings_cache_miss_total",
			Help: "Total number of miss requests to the cache.",
		}, []string{"cache", "reason"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_expanded_postings_cache_evicts_total",
			Help: "Total number of evictions in the cache, by reason: full (over max-bytes) or expired (past the TTL).",
		}, []string{"cache", "reason"}),
		nonCacheable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_ingester_expanded_postings_non_cacheable_queries_total",
			Help: "Total number of non cacheable queries.",
		}, []string{"cache"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.hits, m.misses, m.evictions, m.nonCacheable} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
