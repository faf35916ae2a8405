package storegateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics carries Cortex's store-gateway metric names, so that Cortex's
// dashboards and alerts read this bucket store unchanged.
type metrics struct {
	blocksLoaded      prometheus.Gauge
	blockLoads        prometheus.Counter
	blockLoadFailures prometheus.Counter
	blockDrops        prometheus.Counter
	blockDropFailures prometheus.Counter

	syncs        prometheus.Counter
	syncFailures prometheus.Counter
	lastSync     prometheus.Gauge
	tenants      prometheus.Gauge

	seriesFetchDuration prometheus.Histogram
	blocksQueried       prometheus.Summary
	chunkSizeBytes      prometheus.Histogram
	chunkRangeRequests  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		blocksLoaded: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_bucket_store_blocks_loaded",
			Help: "Number of currently loaded blocks.",
		}),
		blockLoads: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_block_loads_total",
			Help: "Total number of remote block loading attempts.",
		}),
		blockLoadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_block_load_failures_total",
			Help: "Total number of failed remote block loading attempts.",
		}),
		blockDrops: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_block_drops_total",
			Help: "Total number of local blocks that were dropped.",
		}),
		blockDropFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_block_drop_failures_total",
			Help: "Total number of local blocks that failed to be dropped.",
		}),
		syncs: f.NewCounter(prometheus.CounterOpts{
			Name:        "cortex_blocks_meta_syncs_total",
			Help:        "Total blocks metadata synchronization attempts",
			ConstLabels: prometheus.Labels{"component": "store-gateway"},
		}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{
			Name:        "cortex_blocks_meta_sync_failures_total",
			Help:        "Total blocks metadata synchronization failures",
			ConstLabels: prometheus.Labels{"component": "store-gateway"},
		}),
		lastSync: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_bucket_stores_blocks_last_successful_sync_timestamp_seconds",
			Help: "Unix timestamp of the last successful blocks sync.",
		}),
		tenants: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_bucket_stores_tenants_synced",
			Help: "Number of tenants synced.",
		}),
		seriesFetchDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_bucket_store_series_fetch_duration_seconds",
			Help:    "The time it takes to fetch series to respond to a request sent to a store gateway. It includes both the time to fetch it from the cache and from storage in case of cache misses.",
			Buckets: []float64{0.001, 0.01, 0.1, 0.3, 0.6, 1, 3, 6, 9, 20, 30, 60, 90, 120},
		}),
		blocksQueried: f.NewSummary(prometheus.SummaryOpts{
			Name: "cortex_bucket_store_series_blocks_queried",
			Help: "Number of blocks in a bucket store that were touched to satisfy a query.",
		}),
		chunkSizeBytes: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_bucket_store_chunk_size_bytes",
			Help:    "Size in bytes of the chunks for the single series, which is helpful to determine the chunk pool size.",
			Buckets: []float64{32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384},
		}),
		chunkRangeRequests: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_chunk_range_requests_total",
			Help: "Total number of byte-range requests made to the bucket to read chunks.",
		}),
	}
}
