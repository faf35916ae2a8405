package storegateway

import (
	"errors"
	"flag"
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
	f.DurationVar(&c.ConsistencyDelay, "blocks-storage.bucket-store.consistency-delay", 0, "Minimum age of a block before a querier requires it in the store-gateways' answer. Queriers also allow three -blocks-storage.bucket-store.sync-interval for store-gateways to load new blocks.")
	c.BucketIndex.RegisterFlags(f)
	c.IndexCache.RegisterFlags(f)
	c.ChunksCache.RegisterFlags(f)
	c.MetadataCache.RegisterFlags(f)
	c.ChunkFetchConcurrency = defaultChunkFetchConcurrency
}

const defaultChunkFetchConcurrency = 8

// Validate checks the settings a BucketStore cannot run without.
func (c *Config) Validate() error {
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
	if err := c.BucketIndex.Validate(); err != nil {
		return err
	}
	return c.validateCaches()
}
