// Package compactor is Cortex's compactor for the blocks storage: per
// tenant, it merges the blocks ingesters ship into larger ones (vertical
// compaction keeps one copy of each sample the replication factor wrote
// several times), marks the merged blocks for deletion and deletes them
// after a delay, applies the retention period, keeps each tenant's
// bucket index up to date, and deletes the tenants marked for deletion.
// With sharding, compactors split the tenants on a ring.
//
// It is written on Prometheus' tsdb compactor and objstore rather than
// Thanos' pkg/compact, which does not compile against this module's
// Prometheus; planning follows Thanos' tsdb-based planner.
package compactor

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/shardring"
)

// Config is the compactor's configuration, with Cortex's flag names,
// defaults and YAML keys (block "compactor").
type Config struct {
	BlockRanges           DurationList  `yaml:"block_ranges"`
	DataDir               string        `yaml:"data_dir"`
	CompactionInterval    time.Duration `yaml:"compaction_interval"`
	CompactionRetries     int           `yaml:"compaction_retries"`
	CompactionConcurrency int           `yaml:"compaction_concurrency"`
	CleanupInterval       time.Duration `yaml:"cleanup_interval"`
	CleanupConcurrency    int           `yaml:"cleanup_concurrency"`
	DeletionDelay         time.Duration `yaml:"deletion_delay"`
	TenantCleanupDelay    time.Duration `yaml:"tenant_cleanup_delay"`

	// ConsistencyDelay keeps blocks younger than this (by their ULID's
	// time, when the block was cut) out of compaction, so that a bucket
	// that lists objects late is not compacted half seen.
	ConsistencyDelay time.Duration `yaml:"consistency_delay"`
	// BlockSyncConcurrency is how many meta.json files and deletion marks
	// a compaction's planning reads at once.
	BlockSyncConcurrency int `yaml:"block_sync_concurrency"`
	// BlockDeletionMarksMigrationEnabled copies, at a tenant's first
	// cleanup, the deletion and no-compact marks in its block folders to
	// the global markers location.
	BlockDeletionMarksMigrationEnabled bool `yaml:"block_deletion_marks_migration_enabled"`
	// CachingBucketEnabled and CleanerCachingBucketEnabled read the bucket
	// through the metadata cache (-blocks-storage.bucket-store.metadata-cache.*)
	// for the compaction and for the cleanup.
	CachingBucketEnabled        bool `yaml:"caching_bucket_enabled"`
	CleanerCachingBucketEnabled bool `yaml:"cleaner_caching_bucket_enabled"`
	// MetaSyncConcurrency is how many meta.json files and deletion marks
	// the cleanup's update of a tenant's bucket index reads at once.
	MetaSyncConcurrency int `yaml:"meta_sync_concurrency"`
	// BlocksFetchConcurrency is how many source blocks of a compaction
	// download at once; BlockFilesConcurrency how many files of one block
	// download or upload at once.
	BlocksFetchConcurrency int `yaml:"blocks_fetch_concurrency"`
	BlockFilesConcurrency  int `yaml:"block_files_concurrency"`

	// AcceptMalformedIndex compacts blocks whose index has series with
	// unsorted label names (written by Prometheus 2.8.0 and older).
	AcceptMalformedIndex bool `yaml:"accept_malformed_index"`
	// SkipBlocksWithOutOfOrderChunksEnabled marks a source block whose
	// index has out-of-order chunks no-compact, and compacts the others,
	// rather than failing the tenant's compaction at every run.
	SkipBlocksWithOutOfOrderChunksEnabled bool `yaml:"skip_blocks_with_out_of_order_chunks_enabled"`

	// EnabledTenants, when not empty, are the only tenants compacted and
	// cleaned up; DisabledTenants are never.
	EnabledTenants  flagext.StringSliceCSV `yaml:"enabled_tenants"`
	DisabledTenants flagext.StringSliceCSV `yaml:"disabled_tenants"`

	// ShardingEnabled shards the tenants over the compactors of the
	// -compactor.ring.* ring: each compacts and cleans up the tenants it
	// owns.
	ShardingEnabled bool       `yaml:"sharding_enabled"`
	ShardingRing    RingConfig `yaml:"sharding_ring"`
	// ShardingStrategy is default (each tenant has one compactor of the
	// whole ring) or shuffle-sharding (each tenant's compactor is taken
	// from its shuffle shard of -compactor.tenant-shard-size compactors).
	ShardingStrategy string `yaml:"sharding_strategy"`

	// CompactionStrategy is default (each range's blocks merged into one
	// block) or partitioning (a range's blocks merged into as many blocks
	// as the tenant's -compactor.partition-* limits need, each holding a
	// share of the series, compacted by the compactors of the tenant's
	// shuffle shard together).
	CompactionStrategy string `yaml:"compaction_strategy"`
	// ShardingPlannerDelay is the partitioning strategy's wait between
	// claiming a partition and checking the claim still stands.
	ShardingPlannerDelay time.Duration `yaml:"sharding_planner_delay"`
	// CompactionVisitMarkerTimeout is the age at which a partition's
	// visit marker is stale, and another compactor may take the
	// partition; CompactionVisitMarkerFileUpdateInterval how often a
	// compacting compactor refreshes it.
	CompactionVisitMarkerTimeout            time.Duration `yaml:"compaction_visit_marker_timeout"`
	CompactionVisitMarkerFileUpdateInterval time.Duration `yaml:"compaction_visit_marker_file_update_interval"`
	// CleanerVisitMarkerTimeout and CleanerVisitMarkerFileUpdateInterval
	// are the same for the tenant cleanup's visit marker, which keeps two
	// compactors from cleaning one tenant up at once.
	CleanerVisitMarkerTimeout            time.Duration `yaml:"cleaner_visit_marker_timeout"`
	CleanerVisitMarkerFileUpdateInterval time.Duration `yaml:"cleaner_visit_marker_file_update_interval"`
}

// RingConfig is the compactor ring: the ring settings every sharding
// ring has, and Cortex's compactor-only ones.
type RingConfig struct {
	shardring.Config `yaml:",inline"`
	// AutoForgetDelay is how long a compactor may go without a heartbeat
	// before the others remove it from the ring, so that its tenants go
	// to the others; 0 never removes it.
	AutoForgetDelay time.Duration `yaml:"auto_forget_delay"`
	// UnregisterOnShutdown takes the compactor out of the ring when it
	// stops; false leaves it, and its tenants, to be taken back by its
	// restart.
	UnregisterOnShutdown bool `yaml:"unregister_on_shutdown"`
	// WaitActiveInstanceTimeout bounds the wait, at startup, for this
	// compactor to show ACTIVE in the ring.
	WaitActiveInstanceTimeout time.Duration `yaml:"wait_active_instance_timeout"`
}

// MemberConfig is the ring membership's configuration, with the
// compactor's settings applied.
func (c RingConfig) MemberConfig() shardring.Config {
	out := c.Config
	forget := c.AutoForgetDelay
	out.AutoForgetDelay = &forget
	out.KeepInstanceInTheRingOnShutdown = out.KeepInstanceInTheRingOnShutdown || !c.UnregisterOnShutdown
	out.WaitActiveTimeout = c.WaitActiveInstanceTimeout
	return out
}

// Ring settings, as Cortex's compactor ring.
const (
	// RingName and RingKey name the ring in logs, metrics and the KV store.
	RingName = "compactor"
	RingKey  = "compactor"
	// RingFlagPrefix is the ring's flag prefix.
	RingFlagPrefix = "compactor.ring"
	ringNumTokens  = 512
)

// RegisterFlags registers the compactor's flags on f.
func (cfg *Config) RegisterFlags(f *flag.FlagSet) {
	cfg.BlockRanges = DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	f.Var(&cfg.BlockRanges, "compactor.block-ranges", "List of compaction time ranges.")
	f.StringVar(&cfg.DataDir, "compactor.data-dir", "./data", "Data directory in which to cache blocks and process compactions")
	f.DurationVar(&cfg.CompactionInterval, "compactor.compaction-interval", time.Hour, "The frequency at which the compaction runs")
	f.IntVar(&cfg.CompactionRetries, "compactor.compaction-retries", 3, "How many times to retry a failed compaction within a single compaction run.")
	f.IntVar(&cfg.CompactionConcurrency, "compactor.compaction-concurrency", 1, "Max number of concurrent compactions running.")
	f.DurationVar(&cfg.CleanupInterval, "compactor.cleanup-interval", 15*time.Minute, "How frequently compactor should run blocks cleanup and maintenance, as well as update the bucket index.")
	f.IntVar(&cfg.CleanupConcurrency, "compactor.cleanup-concurrency", 20, "Max number of tenants for which blocks cleanup and maintenance should run concurrently.")
	f.DurationVar(&cfg.DeletionDelay, "compactor.deletion-delay", 12*time.Hour, "Time before a block marked for deletion is deleted from bucket. "+
		"If not 0, blocks will be marked for deletion and compactor component will permanently delete blocks marked for deletion from the bucket. "+
		"If 0, blocks will be deleted straight away. Note that deleting blocks immediately can cause query failures.")
	f.DurationVar(&cfg.TenantCleanupDelay, "compactor.tenant-cleanup-delay", 6*time.Hour, "For tenants marked for deletion, this is time between deleting of last block, and doing final cleanup (marker files, debug files) of the tenant.")
	f.BoolVar(&cfg.ShardingEnabled, "compactor.sharding-enabled", false, "Shard tenants across multiple compactor instances. Sharding is required if you run multiple compactor instances, in order to coordinate compactions and avoid race conditions leading to the same tenant blocks simultaneously compacted by different instances.")
	cfg.ShardingRing.RegisterFlags(RingFlagPrefix, shardring.Defaults{
		HeartbeatPeriod:          5 * time.Second,
		HeartbeatTimeout:         time.Minute,
		WaitStabilityMinDuration: time.Minute,
		WaitStabilityMaxDuration: 5 * time.Minute,
		NumTokens:                ringNumTokens,
	}, f)
	f.DurationVar(&cfg.ShardingRing.AutoForgetDelay, "compactor.auto-forget-delay", 2*cfg.ShardingRing.HeartbeatTimeout, "Time since last heartbeat before compactor will be removed from ring. 0 to disable")
	f.BoolVar(&cfg.ShardingRing.UnregisterOnShutdown, RingFlagPrefix+".unregister-on-shutdown", true, "Unregister the compactor during shutdown if true.")
	f.DurationVar(&cfg.ShardingRing.WaitActiveInstanceTimeout, RingFlagPrefix+".wait-active-instance-timeout", 10*time.Minute, "Timeout for waiting on compactor to become ACTIVE in the ring.")
	f.StringVar(&cfg.ShardingStrategy, "compactor.sharding-strategy", shardring.StrategyDefault, fmt.Sprintf("The sharding strategy to use. Supported values are: %s, %s.", shardring.StrategyDefault, shardring.StrategyShuffle))
	f.StringVar(&cfg.CompactionStrategy, "compactor.compaction-strategy", CompactionStrategyDefault, fmt.Sprintf("The compaction strategy to use. Supported values are: %s, %s.", CompactionStrategyDefault, CompactionStrategyPartitioning))
	f.DurationVar(&cfg.CompactionVisitMarkerTimeout, "compactor.compaction-visit-marker-timeout", 10*time.Minute, "How long compaction visit marker file should be considered as expired and able to be picked up by compactor again.")
	f.DurationVar(&cfg.CompactionVisitMarkerFileUpdateInterval, "compactor.compaction-visit-marker-file-update-interval", time.Minute, "How frequently compaction visit marker file should be updated duration compaction.")
	f.DurationVar(&cfg.CleanerVisitMarkerTimeout, "compactor.cleaner-visit-marker-timeout", 10*time.Minute, "How long cleaner visit marker file should be considered as expired and able to be picked up by cleaner again. The value should be smaller than -compactor.cleanup-interval")
	f.DurationVar(&cfg.CleanerVisitMarkerFileUpdateInterval, "compactor.cleaner-visit-marker-file-update-interval", 5*time.Minute, "How frequently cleaner visit marker file should be updated when cleaning user.")
	f.DurationVar(&cfg.ShardingPlannerDelay, "compactor.sharding-planner-delay", 10*time.Second, "How long shuffle sharding planner would wait before running planning code. This delay would prevent double compaction when two compactors claimed same partition in grouper at same time.")
	f.DurationVar(&cfg.ConsistencyDelay, "compactor.consistency-delay", 0, "Minimum age of fresh (non-compacted) blocks before they are being processed.")
	f.IntVar(&cfg.BlockSyncConcurrency, "compactor.block-sync-concurrency", 20, "Number of Go routines to use when syncing block index and chunks files from the long term storage: the meta.json files and deletion marks a compaction's planning reads at once.")
	f.BoolVar(&cfg.BlockDeletionMarksMigrationEnabled, "compactor.block-deletion-marks-migration-enabled", false, "When enabled, at compactor startup the bucket will be scanned and all found deletion marks inside the block location will be copied to the markers global location too. This option can (and should) be safely disabled as soon as the compactor has successfully run at least once.")
	f.BoolVar(&cfg.CachingBucketEnabled, "compactor.caching-bucket-enabled", false, "When enabled, caching bucket will be used for compactor, except cleaner service, which serves as the source of truth for block status")
	f.BoolVar(&cfg.CleanerCachingBucketEnabled, "compactor.cleaner-caching-bucket-enabled", false, "When enabled, caching bucket will be used for cleaner")
	f.IntVar(&cfg.MetaSyncConcurrency, "compactor.meta-sync-concurrency", 20, "Number of Go routines to use when syncing block meta files from the long term storage.")
	f.IntVar(&cfg.BlockFilesConcurrency, "compactor.block-files-concurrency", 10, "Number of goroutines to use when fetching/uploading block files from object storage.")
	f.IntVar(&cfg.BlocksFetchConcurrency, "compactor.blocks-fetch-concurrency", 3, "Number of goroutines to use when fetching blocks from object storage when compacting.")
	f.BoolVar(&cfg.AcceptMalformedIndex, "compactor.accept-malformed-index", false, "When enabled, index verification will ignore out of order label names.")
	f.BoolVar(&cfg.SkipBlocksWithOutOfOrderChunksEnabled, "compactor.skip-blocks-with-out-of-order-chunks-enabled", false, "When enabled, mark blocks containing index with out-of-order chunks for no compact instead of halting the compaction.")
	f.Var(&cfg.EnabledTenants, "compactor.enabled-tenants", "Comma separated list of tenants that can be compacted. If specified, only these tenants will be compacted by compactor, otherwise all tenants can be compacted. Subject to sharding.")
	f.Var(&cfg.DisabledTenants, "compactor.disabled-tenants", "Comma separated list of tenants that cannot be compacted by this compactor. If specified, and compactor would normally pick given tenant for compaction (via -compactor.enabled-tenants or sharding), it will be ignored instead.")
}

// Validate checks the configuration, naming the flag at fault.
func (cfg *Config) Validate() error {
	if len(cfg.BlockRanges) == 0 {
		return errors.New("-compactor.block-ranges: at least one range is needed")
	}
	for i, r := range cfg.BlockRanges {
		if r <= 0 || r%time.Millisecond != 0 {
			return fmt.Errorf("-compactor.block-ranges: range %s must be a positive whole number of milliseconds", r)
		}
		if i > 0 {
			prev := cfg.BlockRanges[i-1]
			// Blocks of one range must tile the next one exactly, or a
			// larger block could never be assembled from smaller ones.
			if r <= prev || r%prev != 0 {
				return fmt.Errorf("-compactor.block-ranges: range %s must be a multiple of, and larger than, the previous range %s", r, prev)
			}
		}
	}
	if cfg.DataDir == "" {
		return errors.New("-compactor.data-dir must not be empty")
	}
	if cfg.CompactionInterval <= 0 {
		return fmt.Errorf("-compactor.compaction-interval must be positive, got %s", cfg.CompactionInterval)
	}
	if cfg.CompactionRetries < 0 {
		return fmt.Errorf("-compactor.compaction-retries must not be negative, got %d", cfg.CompactionRetries)
	}
	if cfg.CompactionConcurrency < 1 {
		return fmt.Errorf("-compactor.compaction-concurrency must be at least 1, got %d", cfg.CompactionConcurrency)
	}
	if cfg.CleanupInterval <= 0 {
		return fmt.Errorf("-compactor.cleanup-interval must be positive, got %s", cfg.CleanupInterval)
	}
	if cfg.CleanupConcurrency < 1 {
		return fmt.Errorf("-compactor.cleanup-concurrency must be at least 1, got %d", cfg.CleanupConcurrency)
	}
	if cfg.DeletionDelay < 0 {
		return fmt.Errorf("-compactor.deletion-delay must not be negative, got %s", cfg.DeletionDelay)
	}
	if cfg.TenantCleanupDelay < 0 {
		return fmt.Errorf("-compactor.tenant-cleanup-delay must not be negative, got %s", cfg.TenantCleanupDelay)
	}
	if cfg.ConsistencyDelay < 0 {
		return fmt.Errorf("-compactor.consistency-delay must not be negative, got %s", cfg.ConsistencyDelay)
	}
	for name, v := range map[string]int{
		"-compactor.meta-sync-concurrency":    cfg.MetaSyncConcurrency,
		"-compactor.block-sync-concurrency":   cfg.BlockSyncConcurrency,
		"-compactor.block-files-concurrency":  cfg.BlockFilesConcurrency,
		"-compactor.blocks-fetch-concurrency": cfg.BlocksFetchConcurrency,
	} {
		if v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", name, v)
		}
	}
	if err := shardring.ValidateStrategy("compactor.sharding-strategy", cfg.ShardingStrategy); err != nil {
		return err
	}
	switch cfg.CompactionStrategy {
	case CompactionStrategyDefault:
	case CompactionStrategyPartitioning:
		// Cortex runs the partitioning strategy only on shuffle-sharded
		// compactors (and ignores it otherwise): said here rather than
		// ignored.
		if !cfg.ShardingEnabled || cfg.ShardingStrategy != shardring.StrategyShuffle {
			return fmt.Errorf("-compactor.compaction-strategy=%s needs -compactor.sharding-enabled=true and -compactor.sharding-strategy=%s", CompactionStrategyPartitioning, shardring.StrategyShuffle)
		}
	default:
		return fmt.Errorf("-compactor.compaction-strategy: unknown strategy %q; supported: %s, %s", cfg.CompactionStrategy, CompactionStrategyDefault, CompactionStrategyPartitioning)
	}
	for name, v := range map[string]time.Duration{
		"-compactor.compaction-visit-marker-timeout":              cfg.CompactionVisitMarkerTimeout,
		"-compactor.compaction-visit-marker-file-update-interval": cfg.CompactionVisitMarkerFileUpdateInterval,
		"-compactor.cleaner-visit-marker-timeout":                 cfg.CleanerVisitMarkerTimeout,
		"-compactor.cleaner-visit-marker-file-update-interval":    cfg.CleanerVisitMarkerFileUpdateInterval,
	} {
		if v <= 0 {
			return fmt.Errorf("%s must be positive, got %s", name, v)
		}
	}
	if cfg.ShardingPlannerDelay < 0 {
		return fmt.Errorf("-compactor.sharding-planner-delay must not be negative, got %s", cfg.ShardingPlannerDelay)
	}
	if cfg.ShardingEnabled {
		if err := cfg.ShardingRing.Validate(); err != nil {
			return fmt.Errorf("-compactor.sharding-enabled: %w", err)
		}
		if cfg.ShardingRing.AutoForgetDelay < 0 {
			return fmt.Errorf("-compactor.auto-forget-delay must not be negative (0 disables it), got %s", cfg.ShardingRing.AutoForgetDelay)
		}
		if cfg.ShardingRing.WaitActiveInstanceTimeout <= 0 {
			return fmt.Errorf("-compactor.ring.wait-active-instance-timeout must be positive, got %s", cfg.ShardingRing.WaitActiveInstanceTimeout)
		}
	}
	return nil
}

// DurationList is a comma-separated list of durations on the command line
// ("2h0m0s,12h0m0s,24h0m0s") and a YAML list of durations, as Cortex's.
type DurationList []time.Duration

// String implements flag.Value.
func (d *DurationList) String() string {
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (d *DurationList) Set(s string) error {
	var list DurationList
	for _, p := range strings.Split(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		list = append(list, v)
	}
	*d = list
	return nil
}

// UnmarshalYAML takes a list of durations ("2h", "12h").
func (d *DurationList) UnmarshalYAML(n *yaml.Node) error {
	var strs []string
	if err := n.Decode(&strs); err != nil {
		return err
	}
	list := make(DurationList, 0, len(strs))
	for _, s := range strs {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		list = append(list, v)
	}
	*d = list
	return nil
}

// MarshalYAML writes the list as durations.
func (d DurationList) MarshalYAML() (any, error) {
	strs := make([]string, len(d))
	for i, v := range d {
		strs[i] = v.String()
	}
	return strs, nil
}

// ToMilliseconds returns the ranges in milliseconds, the TSDB's unit.
func (d DurationList) ToMilliseconds() []int64 {
	ms := make([]int64, len(d))
	for i, v := range d {
		ms[i] = v.Milliseconds()
	}
	return ms
}
