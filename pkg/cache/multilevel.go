package cache

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// MultiLevelConfig is Cortex's -<cache>.multilevel.* block: how a cache of
// several backends ("inmemory,memcached") writes to its levels and fills
// the faster ones with what the slower ones held.
type MultiLevelConfig struct {
	MaxAsyncConcurrency int `yaml:"max_async_concurrency"`
	MaxAsyncBufferSize  int `yaml:"max_async_buffer_size"`
	MaxBackfillItems    int `yaml:"max_backfill_items"`
}

// RegisterFlagsWithPrefix registers -<prefix>max-async-concurrency and its
// siblings with Cortex's defaults; prefix ends with a dot.
func (c *MultiLevelConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.IntVar(&c.MaxAsyncConcurrency, prefix+"max-async-concurrency", 3, "The maximum number of concurrent asynchronous operations can occur when backfilling cache items.")
	f.IntVar(&c.MaxAsyncBufferSize, prefix+"max-async-buffer-size", 10000, "The maximum number of enqueued asynchronous operations allowed when backfilling cache items.")
	f.IntVar(&c.MaxBackfillItems, prefix+"max-backfill-items", 10000, "The maximum number of items to backfill per asynchronous operation.")
}

// Validate checks the block registered under prefix (ending with a dot).
func (c *MultiLevelConfig) Validate(prefix string) error {
	switch {
	case c.MaxAsyncConcurrency <= 0:
		return fmt.Errorf("-%smax-async-concurrency must be positive", prefix)
	case c.MaxAsyncBufferSize <= 0:
		return fmt.Errorf("-%smax-async-buffer-size must be positive", prefix)
	case c.MaxBackfillItems <= 0:
		return fmt.Errorf("-%smax-backfill-items must be positive", prefix)
	}
	return nil
}

// MultiLevel is a Cache over levels tried in order, as Cortex's multi-level
// caches: a read asks each level for the keys the previous ones missed,
// and writes what a level found back to the level before it, in the
// background; a write goes to every level in the background. Background
// operations run -max-async-concurrency at a time; past
// -max-async-buffer-size waiting ones, more are dropped and counted.
type MultiLevel struct {
	name        string
	levels      []Cache
	cfg         MultiLevelConfig
	backfillTTL time.Duration
	slots       chan struct{}
	pending     atomic.Int64

	fetchDuration, backfillDuration prometheus.Histogram
	backfillDropped, storeDropped   prometheus.Counter
}

// NewMultiLevel returns the cache of levels, the only level itself when
// there is one. Backfilled items are kept for backfillTTL (0: until
// evicted). item ("chunks_cache", "metadata_cache", "index_cache") names
// its metrics, Cortex's cortex_store_multilevel_<item>_*.
func NewMultiLevel(name, item string, cfg MultiLevelConfig, backfillTTL time.Duration, reg prometheus.Registerer, levels ...Cache) Cache {
	if len(levels) == 1 {
		return levels[0]
	}
	f := promauto.With(reg)
	buckets := []float64{0.01, 0.1, 0.3, 0.6, 1, 3, 6, 10, 15, 20, 25, 30, 40, 50, 60, 90}
	return &MultiLevel{
		name:        name,
		levels:      levels,
		cfg:         cfg,
		backfillTTL: backfillTTL,
		slots:       make(chan struct{}, max(cfg.MaxAsyncConcurrency, 1)),
		fetchDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_store_multilevel_" + item + "_fetch_duration_seconds",
			Help:    "Histogram to track latency to fetch items from multi level " + item,
			Buckets: buckets,
		}),
		backfillDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_store_multilevel_" + item + "_backfill_duration_seconds",
			Help:    "Histogram to track latency to backfill items from multi level " + item,
			Buckets: buckets,
		}),
		backfillDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_store_multilevel_" + item + "_backfill_dropped_items_total",
			Help: "Total number of items dropped due to async buffer full when backfilling multilevel " + item,
		}),
		storeDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_store_multilevel_" + item + "_store_dropped_items_total",
			Help: "Total number of items dropped due to async buffer full when storing multilevel " + item,
		}),
	}
}

// Name implements Cache.
func (m *MultiLevel) Name() string { return m.name }

// Stop stops the levels that work in the background (Redis).
func (m *MultiLevel) Stop() {
	for _, c := range m.levels {
		if s, ok := c.(interface{ Stop() }); ok {
			s.Stop()
		}
	}
}

// async runs op in the background, or reports that the buffer is full.
func (m *MultiLevel) async(op func()) bool {
	if m.pending.Add(1) > int64(m.cfg.MaxAsyncBufferSize) {
		m.pending.Add(-1)
		return false
	}
	go func() {
		defer m.pending.Add(-1)
		m.slots <- struct{}{}
		defer func() { <-m.slots }()
		op()
	}()
	return true
}

// Store implements Cache: every level, in the background.
func (m *MultiLevel) Store(items map[string][]byte, ttl time.Duration) {
	for _, c := range m.levels {
		if !m.async(func() { c.Store(items, ttl) }) {
			m.storeDropped.Add(float64(len(items)))
		}
	}
}

// Fetch implements Cache.
func (m *MultiLevel) Fetch(ctx context.Context, keys []string) map[string][]byte {
	start := time.Now()
	defer func() { m.fetchDuration.Observe(time.Since(start).Seconds()) }()
	hits := map[string][]byte{}
	missing := keys
	backfill := make([]map[string][]byte, len(m.levels)) // by level to fill
	for i, c := range m.levels {
		if ctx.Err() != nil || len(missing) == 0 {
			break
		}
		found := c.Fetch(ctx, missing)
		if len(found) == 0 {
			continue
		}
		if i > 0 {
			// Found here, missed by the level before: fill that one.
			backfill[i-1] = found
		}
		still := make([]string, 0, len(missing)-len(found))
		for _, k := range missing {
			if v, ok := found[k]; ok {
				hits[k] = v
			} else {
				still = append(still, k)
			}
		}
		missing = still
	}
	for i, items := range backfill {
		if len(items) == 0 {
			continue
		}
		if len(items) > m.cfg.MaxBackfillItems {
			trimmed := make(map[string][]byte, m.cfg.MaxBackfillItems)
			for k, v := range items {
				if len(trimmed) == m.cfg.MaxBackfillItems {
					break
				}
				trimmed[k] = v
			}
			m.backfillDropped.Add(float64(len(items) - len(trimmed)))
			items = trimmed
		}
		if !m.async(func() {
			start := time.Now()
			m.levels[i].Store(items, m.backfillTTL)
			m.backfillDuration.Observe(time.Since(start).Seconds())
		}) {
			m.backfillDropped.Add(float64(len(items)))
		}
	}
	return hits
}
