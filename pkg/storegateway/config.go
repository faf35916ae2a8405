package storegateway

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"
)

// Config is the part of Cortex's -blocks-storage.bucket-store.* block that
// the bucket store reads; names and defaults are Cortex's.
type Config struct {
	SyncDir              string        `yaml:"sync_dir"`
	SyncInterval         time.Duration `yaml:"sync_interval"`
	MetaSyncConcurrency  int           `yaml:"meta_sync_concurrency"`
	BlockSyncConcurrency int           `yaml:"block_sync_concurrency"`
	// ChunkFetchConcurrency bounds the parallel range requests of one
	// block's Select. Not a Cortex setting, so neither a flag nor YAML.
	ChunkFetchConcurrency    int           `yaml:"-"`
	IgnoreDeletionMarksDelay time.Duration `yaml:"ignore_deletion_mark_delay"`
	// ConsistencyDelay is how long after their upload blocks are not
	// required in a querier's answer (store-gateways may not have loaded
	// them yet); a querier also allows three sync intervals on top.
	ConsistencyDelay time.Duration     `yaml:"consistency_delay"`
	BucketIndex      BucketIndexConfig `yaml:"bucket_index"`
	// BucketStoreType is Cortex 1.21's choice of block format: tsdb, the
	// only one built (Parquet blocks are not).
	BucketStoreType string `yaml:"bucket_store_type"`

	// TenantSyncConcurrency is how many tenants a sync works on at once.
	TenantSyncConcurrency int `yaml:"tenant_sync_concurrency"`
	// IgnoreBlocksWithin leaves unloaded the blocks whose samples start
	// within this long of now: queriers read those from the ingesters
	// (-querier.query-store-after). 0: none.
	IgnoreBlocksWithin time.Duration `yaml:"ignore_blocks_within"`
	// IgnoreBlocksBefore leaves unloaded the blocks whose samples all end
	// longer ago than this. 0: none.
	IgnoreBlocksBefore time.Duration `yaml:"ignore_blocks_before"`
	// BlockDiscoveryStrategy is how blocks are found in the bucket when the
	// bucket index is not used.
	BlockDiscoveryStrategy string `yaml:"block_discovery_strategy"`

	// MaxConcurrent bounds the Series calls running at once; more wait.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxInflightRequests refuses Series calls past this many, running or
	// waiting. 0: no bound.
	MaxInflightRequests int `yaml:"max_inflight_requests"`
	// SeriesBatchSize is how many series' chunks a block's Select reads
	// from the bucket at a time.
	SeriesBatchSize int `yaml:"series_batch_size"`
	// MaxChunkPoolBytes bounds the chunk buffers held by open queriers,
	// over every tenant. 0: no bound.
	MaxChunkPoolBytes uint64 `yaml:"max_chunk_pool_bytes"`
	// MatchersCacheMaxItems is how many regular-expression matchers of
	// recent calls are kept compiled. 0: none.
	MatchersCacheMaxItems int `yaml:"matchers_cache_max_items"`

	TokenBucketBytesLimiter TokenBucketBytesLimiterConfig `yaml:"token_bucket_bytes_limiter"`

	// IndexHeaderLazyLoadingEnabled opens a block's local index only when
	// a query needs it, rather than at load; with
	// IndexHeaderLazyLoadingIdleTimeout > 0 it is closed again once no
	// query used it for that long. Prometheus has no index-header, so the
	// whole index is what is opened and mapped.
	IndexHeaderLazyLoadingEnabled     bool          `yaml:"index_header_lazy_loading_enabled"`
	IndexHeaderLazyLoadingIdleTimeout time.Duration `yaml:"index_header_lazy_loading_idle_timeout"`

	// LazyExpandedPostingsEnabled checks the matchers that would merge
	// more postings lists than LazyExpandedPostingGroupMaxKeySeriesRatio
	// times the series the query can return on the series' labels instead.
	LazyExpandedPostingsEnabled               bool    `yaml:"lazy_expanded_postings_enabled"`
	LazyExpandedPostingGroupMaxKeySeriesRatio float64 `yaml:"lazy_expanded_posting_group_max_key_series_ratio"`

	IndexCache    IndexCacheConfig    `yaml:"index_cache"`
	ChunksCache   ChunksCacheConfig   `yaml:"chunks_cache"`
	MetadataCache MetadataCacheConfig `yaml:"metadata_cache"`
}

// RegisterFlags registers Cortex's flags for the bucket store.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.SyncDir, "blocks-storage.bucket-store.sync-dir", "tsdb-sync", "Directory to store synchronized TSDB index headers.")
	f.DurationVar(&c.SyncInterval, "blocks-storage.bucket-store.sync-interval", 15*time.Minute, "How frequently to scan the bucket, or to refresh the bucket index (if enabled), in order to look for changes (new blocks shipped by ingesters and blocks deleted by retention or compaction).")
	f.IntVar(&c.MetaSyncConcurrency, "blocks-storage.bucket-store.meta-sync-concurrency", 20, "Number of Go routines to use when syncing block meta files from object storage per tenant.")
	f.IntVar(&c.BlockSyncConcurrency, "blocks-storage.bucket-store.block-sync-concurrency", 20, "Maximum number of concurrent blocks syncing per tenant.")
	f.DurationVar(&c.IgnoreDeletionMarksDelay, "blocks-storage.bucket-store.ignore-deletion-marks-delay", 6*time.Hour, "Duration after which the blocks marked for deletion will be filtered out while fetching blocks. The idea of ignore-deletion-marks-delay is to ignore blocks that are marked for deletion with some delay. This ensures store can still serve blocks that are meant to be deleted but do not have a replacement yet.")
	f.StringVar(&c.BucketStoreType, "blocks-storage.bucket-store.bucket-store-type", "tsdb", "Type of bucket store to use: tsdb, Prometheus TSDB blocks, the only type built here (Cortex's parquet is not).")
	f.DurationVar(&c.ConsistencyDelay, "blocks-storage.bucket-store.consistency-delay", 0, "Minimum age of a block before a querier requires it in the store-gateways' answer. Queriers also allow three -blocks-storage.bucket-store.sync-interval for store-gateways to load new blocks.")
	c.BucketIndex.RegisterFlags(f)
	f.IntVar(&c.TenantSyncConcurrency, "blocks-storage.bucket-store.tenant-sync-concurrency", 10, "Maximum number of concurrent tenants syncing blocks.")
	f.DurationVar(&c.IgnoreBlocksWithin, "blocks-storage.bucket-store.ignore-blocks-within", 0, "The blocks created since `now() - ignore_blocks_within` will not be synced. This should be used together with `-querier.query-store-after` to filter out the blocks that are too new to be queried. A reasonable value for this flag would be `-querier.query-store-after - blocks-storage.bucket-store.bucket-index.max-stale-period` to give some buffer. 0 to disable.")
	f.DurationVar(&c.IgnoreBlocksBefore, "blocks-storage.bucket-store.ignore-blocks-before", 0, "The blocks created before `now() - ignore_blocks_before` will not be synced. 0 to disable.")
	f.StringVar(&c.BlockDiscoveryStrategy, "blocks-storage.bucket-store.block-discovery-strategy", DiscoveryConcurrent, "One of concurrent, recursive, bucket_index. When set to concurrent, stores will concurrently issue one call per directory to discover active blocks in the bucket. The recursive strategy iterates through all objects in the bucket, recursively traversing into each directory. This avoids N+1 calls at the expense of having slower bucket iterations. bucket_index strategy can be used in Compactor only and utilizes the existing bucket index to fetch block IDs to sync. With -blocks-storage.bucket-store.bucket-index.enabled, the store-gateway reads the bucket index whatever this says.")
	f.IntVar(&c.MaxConcurrent, "blocks-storage.bucket-store.max-concurrent", 100, "Max number of concurrent queries to execute against the long-term storage. The limit is shared across all tenants.")
	f.IntVar(&c.MaxInflightRequests, "blocks-storage.bucket-store.max-inflight-requests", 0, "Max number of inflight queries to execute against the long-term storage. The limit is shared across all tenants. 0 to disable.")
	f.IntVar(&c.SeriesBatchSize, "blocks-storage.bucket-store.series-batch-size", 10000, "Controls how many series to fetch per batch in Store Gateway. Default value is 10000.")
	f.Uint64Var(&c.MaxChunkPoolBytes, "blocks-storage.bucket-store.max-chunk-pool-bytes", 2<<30, "Max size - in bytes - of a chunks pool, used to reduce memory allocations. The pool is shared across all tenants. 0 to disable the limit.")
	f.IntVar(&c.MatchersCacheMaxItems, "blocks-storage.bucket-store.matchers-cache-max-items", 0, "Maximum number of entries in the regex matchers cache. 0 to disable.")
	c.TokenBucketBytesLimiter.RegisterFlags(f)
	f.BoolVar(&c.LazyExpandedPostingsEnabled, "blocks-storage.bucket-store.lazy-expanded-postings-enabled", false, "If true, Store Gateway will estimate postings size and try to lazily expand postings if it downloads less data than expanding all postings. Here the index is local: a matcher whose postings would cost more to merge is checked on the series' labels instead.")
	f.Float64Var(&c.LazyExpandedPostingGroupMaxKeySeriesRatio, "blocks-storage.bucket-store.lazy-expanded-posting-group-max-key-series-ratio", 100, "Mark posting group as lazy if it fetches more keys than R * max series the query should fetch. With R set to 100, a posting group which fetches 100K keys will be marked as lazy if the current query only fetches 1000 series. This config is only valid if lazy expanded posting is enabled. 0 disables the limit.")
	f.BoolVar(&c.IndexHeaderLazyLoadingEnabled, "blocks-storage.bucket-store.index-header-lazy-loading-enabled", false, "If enabled, store-gateway will lazily memory-map an index-header only once required by a query. Here the index-header is the block's whole local index.")
	f.DurationVar(&c.IndexHeaderLazyLoadingIdleTimeout, "blocks-storage.bucket-store.index-header-lazy-loading-idle-timeout", 20*time.Minute, "If index-header lazy loading is enabled and this setting is > 0, the store-gateway will release memory-mapped index-headers after 'idle timeout' inactivity.")
	c.IndexCache.RegisterFlags(f)
	c.ChunksCache.RegisterFlags(f)
	c.MetadataCache.RegisterFlags(f)
	c.ChunkFetchConcurrency = defaultChunkFetchConcurrency
}

const defaultChunkFetchConcurrency = 8

// The values of -blocks-storage.bucket-store.block-discovery-strategy,
// Cortex's.
const (
	// DiscoveryConcurrent lists a tenant's block folders, then reads each
	// block's files concurrently.
	DiscoveryConcurrent = "concurrent"
	// DiscoveryRecursive lists every object of the tenant in one
	// recursive listing, and reads only the files it found.
	DiscoveryRecursive = "recursive"
	// DiscoveryBucketIndex reads the bucket index, as
	// -blocks-storage.bucket-store.bucket-index.enabled does.
	DiscoveryBucketIndex = "bucket_index"
)

var discoveryStrategies = []string{DiscoveryConcurrent, DiscoveryRecursive, DiscoveryBucketIndex}

// Validate checks the settings a BucketStore cannot run without.
func (c *Config) Validate() error {
	if c.BucketStoreType != "tsdb" && c.BucketStoreType != "" { // "": built by code, not flags
		return fmt.Errorf("-blocks-storage.bucket-store.bucket-store-type=%q (blocks_storage.bucket_store.bucket_store_type): only tsdb is built here; Parquet blocks are not", c.BucketStoreType)
	}
	if c.SyncDir == "" {
		return errors.New("-blocks-storage.bucket-store.sync-dir must not be empty")
	}
	if c.MetaSyncConcurrency <= 0 {
		return errors.New("-blocks-storage.bucket-store.meta-sync-concurrency must be positive")
	}
	if c.BlockSyncConcurrency <= 0 {
		return errors.New("-blocks-storage.bucket-store.block-sync-concurrency must be positive")
	}
	if c.IgnoreDeletionMarksDelay < 0 {
		return errors.New("-blocks-storage.bucket-store.ignore-deletion-marks-delay must not be negative")
	}
	if c.ConsistencyDelay < 0 {
		return errors.New("-blocks-storage.bucket-store.consistency-delay must not be negative")
	}
	if c.TenantSyncConcurrency <= 0 {
		return errors.New("-blocks-storage.bucket-store.tenant-sync-concurrency must be positive")
	}
	if c.IgnoreBlocksWithin < 0 {
		return errors.New("-blocks-storage.bucket-store.ignore-blocks-within must not be negative")
	}
	if c.IgnoreBlocksBefore < 0 {
		return errors.New("-blocks-storage.bucket-store.ignore-blocks-before must not be negative")
	}
	if !slices.Contains(discoveryStrategies, c.BlockDiscoveryStrategy) {
		return fmt.Errorf("-blocks-storage.bucket-store.block-discovery-strategy: invalid block discovery strategy %q (supported: concurrent, recursive, bucket_index)", c.BlockDiscoveryStrategy)
	}
	if c.BlockDiscoveryStrategy == DiscoveryBucketIndex && !c.BucketIndex.Enabled {
		// Cortex's ErrInvalidBucketIndexBlockDiscoveryStrategy.
		return errors.New("-blocks-storage.bucket-store.block-discovery-strategy: bucket index block discovery strategy can only be enabled when bucket index is enabled (-blocks-storage.bucket-store.bucket-index.enabled)")
	}
	switch {
	case c.MaxConcurrent <= 0:
		return errors.New("-blocks-storage.bucket-store.max-concurrent must be positive")
	case c.MaxInflightRequests < 0:
		return errors.New("-blocks-storage.bucket-store.max-inflight-requests must not be negative (0 disables the limit)")
	case c.SeriesBatchSize <= 0:
		return errors.New("-blocks-storage.bucket-store.series-batch-size must be positive")
	case c.IndexHeaderLazyLoadingIdleTimeout < 0:
		return errors.New("-blocks-storage.bucket-store.index-header-lazy-loading-idle-timeout must not be negative (0 keeps loaded indexes open)")
	case c.LazyExpandedPostingGroupMaxKeySeriesRatio < 0:
		return errors.New("-blocks-storage.bucket-store.lazy-expanded-posting-group-max-key-series-ratio must not be negative (0 disables the limit)")
	case c.MatchersCacheMaxItems < 0:
		return errors.New("-blocks-storage.bucket-store.matchers-cache-max-items must not be negative (0 disables the cache)")
	}
	if err := c.TokenBucketBytesLimiter.Validate(); err != nil {
		return err
	}
	if err := c.BucketIndex.Validate(); err != nil {
		return err
	}
	return c.validateCaches()
}
