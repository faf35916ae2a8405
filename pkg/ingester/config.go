package ingester

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/cortex-tls/cortex/pkg/ingester/postingscache"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
)

// Config configures the ingester: its place in the ring (-ingester.*,
// -ring.*, -distributor.replication-factor) and its storage
// (-blocks-storage.tsdb.*), with Cortex's flag and YAML names.
type Config struct {
	LifecyclerConfig ring.LifecyclerConfig `yaml:"lifecycler"`
	// RingDetailedMetricsEnabled is -ring.detailed-metrics-enabled, kept
	// in the lifecycler's ring block in Cortex's file: the ring clients'
	// per-member token and ownership metrics.
	RingDetailedMetricsEnabled bool `yaml:"ring_detailed_metrics_enabled"`
	// TSDB comes from the root config's blocks_storage.tsdb block, as in
	// Cortex; its flags are registered there.
	TSDB TSDBConfig `yaml:"-"`

	RateUpdatePeriod time.Duration `yaml:"rate_update_period"`
	// EnableRegexMatcherLimits checks a query's unoptimized regular
	// expressions against the tenant's regex limits before reading.
	EnableRegexMatcherLimits bool `yaml:"enable_regex_matcher_limits"`
	// EnableMatcherOptimization checks low-selectivity matchers on the
	// series the others select instead of looking up their postings.
	EnableMatcherOptimization bool `yaml:"enable_matcher_optimization"`
	// DisableChunkTrimming sends QueryStreamChunks' chunks whole; when
	// false, chunks reaching outside the queried range are cut to it.
	DisableChunkTrimming   bool          `yaml:"disable_chunk_trimming"`
	MetadataRetainPeriod   time.Duration `yaml:"metadata_retain_period"`
	TSDBConfigUpdatePeriod time.Duration `yaml:"user_tsdb_configs_update_period"`

	ActiveSeriesMetricsEnabled      bool          `yaml:"active_series_metrics_enabled"`
	ActiveSeriesMetricsUpdatePeriod time.Duration `yaml:"active_series_metrics_update_period"`
	ActiveSeriesMetricsIdleTimeout  time.Duration `yaml:"active_series_metrics_idle_timeout"`

	// ActiveQueriedSeriesMetrics* estimate the distinct series each
	// tenant's queries returned (see activeQueriedSeries).
	ActiveQueriedSeriesMetricsEnabled        bool          `yaml:"active_queried_series_metrics_enabled"`
	ActiveQueriedSeriesMetricsUpdatePeriod   time.Duration `yaml:"active_queried_series_metrics_update_period"`
	ActiveQueriedSeriesMetricsWindowDuration time.Duration `yaml:"active_queried_series_metrics_window_duration"`
	ActiveQueriedSeriesMetricsSampleRate     float64       `yaml:"active_queried_series_metrics_sample_rate"`
	ActiveQueriedSeriesMetricsWindows        DurationList  `yaml:"active_queried_series_metrics_windows"`

	MatchersCacheMaxItems int `yaml:"matchers_cache_max_items"`

	// TokensGeneratorStrategy is Cortex's
	// lifecycler.tokens_generator_strategy: random, the only one built.
	TokensGeneratorStrategy string `yaml:"tokens_generator_strategy"`

	// QueryProtection refuses queries while the heap is nearly full:
	// -ingester.query-protection.rejection.threshold.heap-utilization.
	QueryProtection queryprotection.Config `yaml:"query_protection"`

	// InstanceLimits are -ingester.instance-limits.*, the defaults of the
	// runtime configuration's ingester_limits.
	InstanceLimits InstanceLimits `yaml:"instance_limits"`

	// Limiter applies the per-tenant series and metadata limits.
	Limiter LimiterConfig `yaml:",inline"`
	// VerifySignatures refuses pushes without a matching signature: the
	// process's -distributor.sign-write-requests.
	VerifySignatures bool `yaml:"-"`
	// StreamSigningKeys, any of which may sign a PushStream, refuse an
	// unsigned one: the process's -distributor.sign-write-requests-keys
	// with -distributor.sign-write-requests.
	StreamSigningKeys []string `yaml:"-"`
}

// TSDBConfig configures each tenant's TSDB.
type TSDBConfig struct {
	Dir                                string        `yaml:"dir"`
	BlockRanges                        DurationList  `yaml:"block_ranges_period"`
	Retention                          time.Duration `yaml:"retention_period"`
	HeadCompactionInterval             time.Duration `yaml:"head_compaction_interval"`
	HeadCompactionConcurrency          int           `yaml:"head_compaction_concurrency"`
	HeadCompactionIdleTimeout          time.Duration `yaml:"head_compaction_idle_timeout"`
	StripeSize                         int           `yaml:"stripe_size"`
	WALCompressionEnabled              bool          `yaml:"wal_compression_enabled"`
	WALSegmentSizeBytes                int           `yaml:"wal_segment_size_bytes"`
	MaxTSDBOpeningConcurrencyOnStartup int           `yaml:"max_tsdb_opening_concurrency_on_startup"`
	OutOfOrderCapMax                   int64         `yaml:"out_of_order_cap_max"`
	MemorySnapshotOnShutdown           bool          `yaml:"memory_snapshot_on_shutdown"`
	ShipInterval                       time.Duration `yaml:"ship_interval"`
	ShipConcurrency                    int           `yaml:"ship_concurrency"`
	FlushBlocksOnShutdown              bool          `yaml:"flush_blocks_on_shutdown"`
	HeadChunksWriteBufferSize          int           `yaml:"head_chunks_write_buffer_size_bytes"`
	HeadChunksWriteQueueSize           int           `yaml:"head_chunks_write_queue_size"`
	WALCompressionType                 string        `yaml:"wal_compression_type"`
	CloseIdleTSDBTimeout               time.Duration `yaml:"close_idle_tsdb_timeout"`
	// PostingsCache is -blocks-storage.expanded_postings_cache.*.
	PostingsCache postingscache.Config `yaml:"expanded_postings_cache"`
}

// RegisterFlags registers the ingester's flags. The ring's KV store default
// (-ring.store) is dskit's, "consul", unless the caller set
// LifecyclerConfig.RingConfig.KVStore.Store beforehand.
func (c *Config) RegisterFlags(f *flag.FlagSet, logger *slog.Logger) {
	c.LifecyclerConfig.RegisterFlags(f, kitlog.New(logger))
	f.BoolVar(&c.RingDetailedMetricsEnabled, "ring.detailed-metrics-enabled", true, "Export each ingester's token count (cortex_ring_tokens_owned) and share of the ring (cortex_ring_member_ownership_percent) from the ingester ring's clients. Disabling them removes two series per ingester.")
	f.DurationVar(&c.RateUpdatePeriod, "ingester.rate-update-period", 15*time.Second, "Period at which each tenant's ingestion rate (reported by the UserStats call) is updated.")
	f.BoolVar(&c.DisableChunkTrimming, "ingester.disable-chunk-trimming", true, "Send the chunks of a query's series whole, as the TSDB holds them, rather than re-encoding those reaching outside the queried range; the querier drops the samples outside it. When false, as in Cortex, the ingester trims, re-encoding at least the head's open chunk of every series on every query.")
	f.BoolVar(&c.EnableMatcherOptimization, "ingester.enable-matcher-optimization", false, "Enable optimization of label matchers when query chunks. When enabled, matchers with low selectivity such as =~.+ are applied lazily during series scanning instead of being used for postings matching.")
	f.BoolVar(&c.EnableRegexMatcherLimits, "ingester.enable-regex-matcher-limits", false, "Enable regex matcher limits and metrics collection for unoptimized regex queries. When enabled, the ingester will track pattern length, label cardinality, and total value length for unoptimized regex matchers, and refuse queries over the tenant's -validation.max-regex-pattern-length, -validation.max-label-cardinality-for-unoptimized-regex and -validation.max-total-label-value-length-for-unoptimized-regex.")
	f.BoolVar(&c.ActiveSeriesMetricsEnabled, "ingester.active-series-metrics-enabled", true, "Track the series each tenant pushed samples to within -ingester.active-series-metrics-idle-timeout, exported as cortex_ingester_active_series and cortex_ingester_active_native_histogram_series.")
	f.DurationVar(&c.ActiveSeriesMetricsUpdatePeriod, "ingester.active-series-metrics-update-period", time.Minute, "How often the active series metrics are updated.")
	f.StringVar(&c.TokensGeneratorStrategy, "ingester.tokens-generator-strategy", "random", "How a new ingester's ring tokens are chosen: random, dskit's random token generator, the only strategy built (Cortex's minimize-spread is not).")
	f.IntVar(&c.MatchersCacheMaxItems, "ingester.matchers-cache-max-items", 0, "Maximum number of regular-expression matchers of read calls kept compiled, least recently used first out (cortex_ingester_matchers_cache_*). 0 to disable.")
	f.DurationVar(&c.ActiveSeriesMetricsIdleTimeout, "ingester.active-series-metrics-idle-timeout", 10*time.Minute, "How long after its last pushed sample a series stops counting as active.")
	f.BoolVar(&c.ActiveQueriedSeriesMetricsEnabled, "ingester.active-queried-series-metrics-enabled", false, "Estimate the distinct series each tenant's queries returned within each of -ingester.active-queried-series-metrics-windows with HyperLogLog sketches, exported as cortex_ingester_active_queried_series{user,window}.")
	f.DurationVar(&c.ActiveQueriedSeriesMetricsUpdatePeriod, "ingester.active-queried-series-metrics-update-period", time.Minute, "How often the active queried series metrics are updated.")
	f.DurationVar(&c.ActiveQueriedSeriesMetricsWindowDuration, "ingester.active-queried-series-metrics-window-duration", 15*time.Minute, "Duration of each sub-window of active queried series tracking, one sketch each: the windows' estimates drop series a sub-window at a time.")
	f.Float64Var(&c.ActiveQueriedSeriesMetricsSampleRate, "ingester.active-queried-series-metrics-sample-rate", 1.0, "Share of queries whose series are tracked for the active queried series metrics, in (0, 1]: 1 tracks every query, 0.1 one in ten.")
	c.ActiveQueriedSeriesMetricsWindows = DurationList{2 * time.Hour}
	f.Var(&c.ActiveQueriedSeriesMetricsWindows, "ingester.active-queried-series-metrics-windows", "Comma-separated time windows of the active queried series metrics, each at least -ingester.active-queried-series-metrics-window-duration: one cortex_ingester_active_queried_series series per tenant and window.")
	f.DurationVar(&c.MetadataRetainPeriod, "ingester.metadata-retain-period", 10*time.Minute, "How long metric metadata is kept in memory after it was last received.")
	c.QueryProtection.RegisterFlagsWithPrefix(f, "ingester.", "ingester")
	c.QueryProtection.RegisterCPUFlagWithPrefix(f, "ingester.", "ingester")
	c.InstanceLimits.RegisterFlagsWithPrefix(f, "ingester.")
	c.Limiter.RegisterFlags(f)
	f.DurationVar(&c.TSDBConfigUpdatePeriod, "ingester.user-tsdb-configs-update-period", 15*time.Second, "Period at which per-tenant limits that shape a TSDB (out-of-order window, max exemplars) are re-read from the runtime configuration and applied to open TSDBs.")
}

// RegisterFlags registers the -blocks-storage.tsdb.* flags.
func (c *TSDBConfig) RegisterFlags(f *flag.FlagSet) {
	if len(c.BlockRanges) == 0 {
		c.BlockRanges = DurationList{2 * time.Hour}
	}
	f.StringVar(&c.Dir, "blocks-storage.tsdb.dir", "./tsdb/", "Directory holding one TSDB (write-ahead log and blocks) per tenant. Only its <tenant>/ subdirectories are ever written or opened.")
	f.Var(&c.BlockRanges, "blocks-storage.tsdb.block-ranges-period", "Comma-separated TSDB block ranges: the head is cut into blocks of the first range, and blocks are compacted up to the last.")
	f.DurationVar(&c.Retention, "blocks-storage.tsdb.retention-period", 6*time.Hour, "How long blocks are kept on the ingester's disk before deletion. With no long-term storage configured, this bounds how far back queries reach.")
	f.DurationVar(&c.HeadCompactionInterval, "blocks-storage.tsdb.head-compaction-interval", time.Minute, "How often each TSDB head is checked for compaction into a block (only done when the head spans more than 1.5 times the first block range).")
	f.IntVar(&c.HeadCompactionConcurrency, "blocks-storage.tsdb.head-compaction-concurrency", 5, "Maximum number of tenants whose heads are compacted at the same time.")
	f.DurationVar(&c.HeadCompactionIdleTimeout, "blocks-storage.tsdb.head-compaction-idle-timeout", time.Hour, "A head that received no samples for this long is compacted into a block, freeing its memory. 0 disables.")
	f.IntVar(&c.StripeSize, "blocks-storage.tsdb.stripe-size", 16384, "Size of the TSDB's series hash map, a power of two. Smaller uses less memory per tenant; larger scales better with many series.")
	f.BoolVar(&c.WALCompressionEnabled, "blocks-storage.tsdb.wal-compression-enabled", false, "Compress the write-ahead log with snappy (-blocks-storage.tsdb.wal-compression-type, when set, takes precedence).")
	f.StringVar(&c.WALCompressionType, "blocks-storage.tsdb.wal-compression-type", "", "Compression of the write-ahead log's records: snappy, zstd, or empty for none (or snappy with -blocks-storage.tsdb.wal-compression-enabled). A WAL written with one type is read back under any other.")
	f.DurationVar(&c.CloseIdleTSDBTimeout, "blocks-storage.tsdb.close-idle-tsdb-timeout", 0, "A tenant's TSDB that received no samples for this long, whose head is compacted and whose blocks are all shipped, is closed and its local directory deleted (checked every -blocks-storage.tsdb.head-compaction-interval; only with shipping on). Set it at least as long as -querier.query-ingesters-within, or queries miss the data meanwhile. 0 or less disables.")
	f.IntVar(&c.HeadChunksWriteBufferSize, "blocks-storage.tsdb.head-chunks-write-buffer-size-bytes", chunks.DefaultWriteBufferSize, "Write buffer of each tenant's head chunks file (memory-mapped full head chunks), a multiple of 1024 between 64KiB and 8MiB. Smaller saves memory with many tenants at the cost of more disk writes.")
	f.IntVar(&c.HeadChunksWriteQueueSize, "blocks-storage.tsdb.head-chunks-write-queue-size", chunks.DefaultWriteQueueSize, "Size of each tenant's in-memory queue of full head chunks waiting to be written to disk, so appends do not wait on the write; 0 writes them synchronously.")
	f.IntVar(&c.WALSegmentSizeBytes, "blocks-storage.tsdb.wal-segment-size-bytes", 128<<20, "Size of a write-ahead log segment file.")
	f.IntVar(&c.MaxTSDBOpeningConcurrencyOnStartup, "blocks-storage.tsdb.max-tsdb-opening-concurrency-on-startup", 10, "Maximum number of tenants whose TSDBs are opened (and write-ahead logs replayed) at the same time on startup.")
	f.Int64Var(&c.OutOfOrderCapMax, "blocks-storage.tsdb.out-of-order-cap-max", 32, "Maximum samples per out-of-order chunk.")
	f.BoolVar(&c.MemorySnapshotOnShutdown, "blocks-storage.tsdb.memory-snapshot-on-shutdown", false, "Snapshot in-memory chunks on clean shutdown so the next start replays less of the write-ahead log.")
	f.DurationVar(&c.ShipInterval, "blocks-storage.tsdb.ship-interval", time.Minute, "How often new TSDB blocks are looked for and uploaded to the long-term storage bucket. 0 disables shipping: blocks then stay local and are deleted by retention alone.")
	f.IntVar(&c.ShipConcurrency, "blocks-storage.tsdb.ship-concurrency", 10, "Maximum number of tenants whose blocks are uploaded at the same time.")
	c.PostingsCache.RegisterFlagsWithPrefix("blocks-storage.", f)
	f.BoolVar(&c.FlushBlocksOnShutdown, "blocks-storage.tsdb.flush-blocks-on-shutdown", false, "On shutdown, compact every TSDB head into blocks and upload them. If false, the head stays in the write-ahead log and is replayed on the next start.")
}

// Validate checks the TSDB configuration.
func (c *TSDBConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("-blocks-storage.tsdb.dir must not be empty")
	}
	if len(c.BlockRanges) == 0 {
		return errors.New("-blocks-storage.tsdb.block-ranges-period must list at least one range")
	}
	for i, r := range c.BlockRanges {
		if r <= 0 || r%time.Millisecond != 0 {
			return fmt.Errorf("-blocks-storage.tsdb.block-ranges-period: range %s must be a positive whole number of milliseconds", r)
		}
		if i > 0 && r%c.BlockRanges[i-1] != 0 {
			return fmt.Errorf("-blocks-storage.tsdb.block-ranges-period: range %s must be a multiple of the previous one, %s", r, c.BlockRanges[i-1])
		}
	}
	if c.Retention > 0 && c.Retention < c.BlockRanges[0] {
		return fmt.Errorf("-blocks-storage.tsdb.retention-period (%s) must be at least the first block range (%s)", c.Retention, c.BlockRanges[0])
	}
	if c.StripeSize <= 1 || c.StripeSize&(c.StripeSize-1) != 0 {
		return fmt.Errorf("-blocks-storage.tsdb.stripe-size %d must be a power of two greater than 1", c.StripeSize)
	}
	if c.HeadCompactionInterval <= 0 || c.HeadCompactionInterval > 15*time.Minute {
		return fmt.Errorf("-blocks-storage.tsdb.head-compaction-interval %s must be greater than 0 and at most 15m", c.HeadCompactionInterval)
	}
	if c.ShipInterval < 0 {
		return fmt.Errorf("-blocks-storage.tsdb.ship-interval %s must not be negative (0 disables shipping)", c.ShipInterval)
	}
	if c.ShipInterval > 0 && c.ShipConcurrency < 1 {
		return fmt.Errorf("-blocks-storage.tsdb.ship-concurrency %d must be at least 1", c.ShipConcurrency)
	}
	if b := c.HeadChunksWriteBufferSize; b < chunks.MinWriteBufferSize || b > chunks.MaxWriteBufferSize || b%1024 != 0 {
		return fmt.Errorf("-blocks-storage.tsdb.head-chunks-write-buffer-size-bytes %d must be a multiple of 1024 between %d and %d", b, chunks.MinWriteBufferSize, chunks.MaxWriteBufferSize)
	}
	if c.HeadChunksWriteQueueSize < 0 {
		return fmt.Errorf("-blocks-storage.tsdb.head-chunks-write-queue-size %d must not be negative (0 writes synchronously)", c.HeadChunksWriteQueueSize)
	}
	switch c.WALCompressionType {
	case "", string(compression.Snappy), string(compression.Zstd):
	default:
		return fmt.Errorf("-blocks-storage.tsdb.wal-compression-type %q: the supported types are snappy, zstd and empty (none)", c.WALCompressionType)
	}
	if c.HeadCompactionConcurrency < 1 || c.MaxTSDBOpeningConcurrencyOnStartup < 1 {
		return errors.New("-blocks-storage.tsdb.head-compaction-concurrency and -blocks-storage.tsdb.max-tsdb-opening-concurrency-on-startup must be at least 1")
	}
	return c.PostingsCache.Validate()
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.TSDB.Validate(); err != nil {
		return err
	}
	if err := c.QueryProtection.Validate("ingester."); err != nil {
		return err
	}
	if err := c.InstanceLimits.Validate(); err != nil {
		return err
	}
	if c.TokensGeneratorStrategy != "random" {
		return fmt.Errorf("-ingester.tokens-generator-strategy=%q (ingester.lifecycler.tokens_generator_strategy): only random is built here; Cortex's minimize-spread is not", c.TokensGeneratorStrategy)
	}
	if c.MatchersCacheMaxItems < 0 {
		return fmt.Errorf("-ingester.matchers-cache-max-items must not be negative (0 disables the cache), got %d", c.MatchersCacheMaxItems)
	}
	if c.ActiveSeriesMetricsEnabled && (c.ActiveSeriesMetricsUpdatePeriod <= 0 || c.ActiveSeriesMetricsIdleTimeout <= 0) {
		return errors.New("-ingester.active-series-metrics-update-period and -ingester.active-series-metrics-idle-timeout must be greater than 0")
	}
	if err := c.validateActiveQueriedSeries(); err != nil {
		return err
	}
	if c.RateUpdatePeriod <= 0 || c.TSDBConfigUpdatePeriod <= 0 || c.MetadataRetainPeriod <= 0 {
		return errors.New("-ingester.rate-update-period, -ingester.user-tsdb-configs-update-period and -ingester.metadata-retain-period must be greater than 0")
	}
	return c.LifecyclerConfig.Validate()
}

// validateActiveQueriedSeries checks the
// -ingester.active-queried-series-metrics-* flags when enabled, as Cortex.
func (c *Config) validateActiveQueriedSeries() error {
	if !c.ActiveQueriedSeriesMetricsEnabled {
		return nil
	}
	if c.ActiveQueriedSeriesMetricsUpdatePeriod <= 0 {
		return fmt.Errorf("-ingester.active-queried-series-metrics-update-period must be greater than 0, got %s", c.ActiveQueriedSeriesMetricsUpdatePeriod)
	}
	if c.ActiveQueriedSeriesMetricsWindowDuration <= 0 {
		return fmt.Errorf("-ingester.active-queried-series-metrics-window-duration must be greater than 0, got %s", c.ActiveQueriedSeriesMetricsWindowDuration)
	}
	if r := c.ActiveQueriedSeriesMetricsSampleRate; !(r > 0 && r <= 1) {
		return fmt.Errorf("-ingester.active-queried-series-metrics-sample-rate must be greater than 0 and at most 1, got %v", r)
	}
	if len(c.ActiveQueriedSeriesMetricsWindows) == 0 {
		return errors.New("-ingester.active-queried-series-metrics-windows must list at least one window when -ingester.active-queried-series-metrics-enabled is true")
	}
	for _, w := range c.ActiveQueriedSeriesMetricsWindows {
		if w < c.ActiveQueriedSeriesMetricsWindowDuration {
			return fmt.Errorf("-ingester.active-queried-series-metrics-windows: window %s must be at least -ingester.active-queried-series-metrics-window-duration (%s)", w, c.ActiveQueriedSeriesMetricsWindowDuration)
		}
	}
	return nil
}

// DurationList is a comma-separated list of durations, as Cortex's
// -blocks-storage.tsdb.block-ranges-period.
type DurationList []time.Duration

// String implements flag.Value.
func (d *DurationList) String() string {
	s := make([]string, len(*d))
	for i, v := range *d {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

// Set implements flag.Value.
func (d *DurationList) Set(s string) error {
	var out DurationList
	for _, p := range strings.Split(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// UnmarshalYAML accepts a list of durations or a comma-separated string.
func (d *DurationList) UnmarshalYAML(unmarshal func(any) error) error {
	var list []string
	if err := unmarshal(&list); err != nil {
		var s string
		if err := unmarshal(&s); err != nil {
			return err
		}
		return d.Set(s)
	}
	return d.Set(strings.Join(list, ","))
}

// MarshalYAML writes the list as durations.
func (d DurationList) MarshalYAML() (any, error) {
	s := make([]string, len(d))
	for i, v := range d {
		s[i] = v.String()
	}
	return s, nil
}

// walCompression is the WAL's compression type: the type flag's, else
// snappy when the older switch is on.
func (c *TSDBConfig) walCompression() compression.Type {
	if c.WALCompressionType != "" {
		return compression.Type(c.WALCompressionType)
	}
	if c.WALCompressionEnabled {
		return compression.Snappy
	}
	return compression.None
}

func (d DurationList) toMilliseconds() []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = v.Milliseconds()
	}
	return out
}
