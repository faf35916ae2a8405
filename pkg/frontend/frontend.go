// Package frontend is the query-frontend: it serves the Prometheus API,
// splits range queries by interval, caches their results, and queues every
// query per tenant for the querier workers that pull them over gRPC.
//
// It holds no series: it must not import pkg/querier or pkg/ingester, and
// reaches queriers only through the pkg/frontend/frontendpb stream.
package frontend

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	fairqueue "github.com/cortex-tls/cortex/pkg/scheduler/queue"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Config holds the query-frontend flags, with Cortex's names.
type Config struct {
	QuerierForgetDelay     time.Duration `yaml:"querier_forget_delay"`
	MaxRetries             int           `yaml:"max_retries"`
	SplitQueriesByInterval time.Duration `yaml:"split_queries_by_interval"`
	AlignQueriesWithStep   bool          `yaml:"align_queries_with_step"`
	CacheResults           bool          `yaml:"cache_results"`
	MaxCacheFreshness      time.Duration `yaml:"max_cache_freshness"`
	CacheMaxSizeBytes      int           `yaml:"cache_max_size_bytes"`
	CacheTTL               time.Duration `yaml:"cache_ttl"`

	// MaxShardsPerQuery is Cortex's dynamic_query_splits'
	// max_shards_per_query (splitInterval).
	MaxShardsPerQuery int `yaml:"max_shards_per_query"`
	// MaxFetchedDataDurationPerQuery is Cortex's dynamic_query_splits'
	// max_fetched_data_duration_per_query (splitInterval).
	MaxFetchedDataDurationPerQuery time.Duration `yaml:"max_fetched_data_duration_per_query"`
	// EnableDynamicVerticalSharding is Cortex's dynamic_query_splits'
	// enable_dynamic_vertical_sharding (splitInterval).
	EnableDynamicVerticalSharding bool `yaml:"enable_dynamic_vertical_sharding"`
	// CacheMaxSizeItems bounds the embedded cache's entries; CacheSize is
	// its deprecated name (-frontend.fifocache.size), which wins when set.
	CacheMaxSizeItems int `yaml:"cache_max_size_items"`
	CacheSize         int `yaml:"cache_size"`
	// EnableFifoCache puts the embedded cache in front of memcached.
	EnableFifoCache bool          `yaml:"enable_fifocache"`
	DefaultValidity time.Duration `yaml:"default_validity"`
	Compression     string        `yaml:"compression"`
	// CacheQueryableSamplesStats keeps the samples statistics of the
	// cached answers (samplestats.go).
	CacheQueryableSamplesStats bool `yaml:"cache_queryable_samples_stats"`
	// Writes to memcached happen on WriteBackGoroutines goroutines, at most
	// WriteBackBuffer of them waiting.
	WriteBackGoroutines int `yaml:"writeback_goroutines"`
	WriteBackBuffer     int `yaml:"writeback_buffer"`
	// ForwardHeaders are the client headers the queries and range queries
	// sent to the queriers carry, beside the tenant's.
	ForwardHeaders       flagext.StringSlice `yaml:"forward_headers_list"`
	LogQueriesLongerThan time.Duration       `yaml:"log_queries_longer_than"`
	// QueryStatsEnabled logs a "query stats" line per query, and
	// EnabledRulerQueryStatsLog for the rulers' queries too.
	QueryStatsEnabled         bool `yaml:"query_stats_enabled"`
	EnabledRulerQueryStatsLog bool `yaml:"enabled_ruler_query_stats_log"`
	// DownstreamURL sends the queries to a Prometheus-compatible API
	// instead of queueing them for queriers.
	DownstreamURL string          `yaml:"downstream_url"`
	MaxBodySize   int64           `yaml:"max_body_size"`
	Memcached     MemcachedConfig `yaml:"memcached"`
	Redis         RedisConfig     `yaml:"redis"`
	Scheduler     SchedulerConfig `yaml:",inline"`
}

// RegisterFlags registers the frontend's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.QuerierForgetDelay, "query-frontend.querier-forget-delay", 0, "If a querier disconnects, the query-frontend keeps it in the tenants' shards (-frontend.max-queriers-per-tenant) until the forget delay has passed, so that a querier restarting does not move the tenants' shards: their queries wait for it meanwhile. 0 forgets it at once.")
	f.IntVar(&c.MaxRetries, "querier.max-retries-per-request", 5, "Maximum number of times a query (or a part of a split query) is tried, on another querier when one fails or disconnects.")
	f.DurationVar(&c.SplitQueriesByInterval, "querier.split-queries-by-interval", 24*time.Hour, "Split range queries at multiples of this interval and run the parts in parallel. 0 disables splitting.")
	f.IntVar(&c.MaxShardsPerQuery, "querier.max-shards-per-query", 0, "Most queries one range query is split and sharded into: the split interval becomes the smallest multiple of -querier.split-queries-by-interval whose parts, times the query's vertical shards (-frontend.query-vertical-shard-size), are at most this many. 0 splits by the interval alone.")
	f.DurationVar(&c.MaxFetchedDataDurationPerQuery, "querier.max-fetched-data-duration-per-query", 0, "Most time all of one range query's split and shard queries read together, as Cortex estimates it: each selector reads the query's range once, plus its [range] or the lookback delta, and its subqueries' ranges, once per part; the limit is divided between the vertical shards. The split interval becomes the smallest multiple of -querier.split-queries-by-interval that keeps within it. 0 splits by the interval alone.")
	f.BoolVar(&c.EnableDynamicVerticalSharding, "querier.enable-dynamic-vertical-sharding", false, "[EXPERIMENTAL] Dynamically adjust vertical shard size to maximize the total combined number of query shards and splits: with -querier.max-shards-per-query or -querier.max-fetched-data-duration-per-query, a shardable range query runs as the vertical shards, from 1 to the tenant's -frontend.query-vertical-shard-size, and the split interval that together make the most queries within those limits (the fewer shards on a tie).")
	f.BoolVar(&c.AlignQueriesWithStep, "querier.align-querier-with-step", false, "Round the start and end of range queries down to a multiple of their step, which makes results cacheable across refreshes.")
	f.BoolVar(&c.CacheResults, "querier.cache-results", false, "Cache query results: the results of range queries, in the embedded in-memory cache (or memcached), per query, step and split interval, the sub-ranges already answered, so a moving dashboard range asks the queriers only for the new steps.")
	f.BoolVar(&c.CacheResults, "frontend.cache-results", false, "Another name of -querier.cache-results.")
	f.DurationVar(&c.MaxCacheFreshness, "frontend.max-cache-freshness", time.Minute, "Steps less than this long ago are never cached: recent data may still change.")
	f.IntVar(&c.CacheMaxSizeBytes, "frontend.fifocache.max-size-bytes", 100<<20, "Maximum size of the embedded results cache; the least recently used results are evicted beyond it.")
	f.DurationVar(&c.CacheTTL, "frontend.fifocache.duration", time.Hour, "How long a cached result is kept. 0: -frontend.default-validity, and with that 0 too, until evicted.")
	f.IntVar(&c.CacheMaxSizeItems, "frontend.fifocache.max-size-items", 0, "Maximum number of entries in the embedded results cache, beside its size in bytes; the least recently used are evicted beyond it. 0: no bound on entries.")
	f.IntVar(&c.CacheSize, "frontend.fifocache.size", 0, "Deprecated (use max-size-items or max-size-bytes instead): The number of entries to cache. When set, it replaces -frontend.fifocache.max-size-items.")
	f.BoolVar(&c.EnableFifoCache, "frontend.cache.enable-fifocache", false, "Enable in-memory cache: with memcached, the embedded cache is read first and memcached for what it lacks (whose answers fill the embedded cache). Without memcached the embedded cache is used anyway.")
	f.DurationVar(&c.DefaultValidity, "frontend.default-validity", 0, "The default validity of entries for caches unless overridden: the embedded cache's when -frontend.fifocache.duration is 0, memcached's when -frontend.memcached.expiration is 0.")
	f.StringVar(&c.Compression, "frontend.compression", "", "Use compression in results cache. Supported values are: 'snappy' and '' (disable compression).")
	f.BoolVar(&c.CacheQueryableSamplesStats, "frontend.cache-queryable-samples-stats", false, "Cache Statistics queryable samples on results cache: the queriers are asked every range query's per-step samples statistics (stats=all), the cached answers keep them, and a query asked with a stats parameter is answered its queryable samples, cached steps included. Without it, the results cache asks the queriers for no statistics and answers none. Needs -querier.per-step-stats-enabled.")
	f.IntVar(&c.WriteBackGoroutines, "frontend.background.write-back-concurrency", 10, "At what concurrency to write back to cache: writes to memcached run on this many goroutines, so that queries do not wait for them.")
	f.IntVar(&c.WriteBackBuffer, "frontend.background.write-back-buffer", 10000, "How many key batches to buffer for background write-back: further writes to memcached are dropped (cortex_cache_dropped_background_writes_total) while this many wait.")
	f.DurationVar(&c.LogQueriesLongerThan, "frontend.log-queries-longer-than", 0, "Log queries that take longer than this, with their tenant and timing. 0 disables; a negative value logs every query.")
	f.BoolVar(&c.QueryStatsEnabled, "frontend.query-stats-enabled", false, "True to enable query statistics tracking. When enabled, a message with some statistics is logged for every query (\"query stats\": response time, the queriers' wall time, split queries, response series and size, status, and the postings the store-gateways touched; the fetched series, chunks and samples are not measured here), cortex_query_seconds_total counts the queriers' wall time per tenant, and the answer carries a Server-Timing header.")
	f.BoolVar(&c.EnabledRulerQueryStatsLog, "frontend.enabled-ruler-query-stats", false, "If enabled, report the query stats log for queries coming from the ruler to evaluate rules. It only takes effect when '-ruler.frontend-address' is configured.")
	f.StringVar(&c.DownstreamURL, "frontend.downstream-url", "", "URL of downstream Prometheus: the frontend sends its queries (split, sharded and cached as any) to this Prometheus-compatible API, under the URL's path, instead of queueing them for queriers. Over https the link uses the -frontend.grpc-client-config.tls-* settings; the client's credentials are not forwarded.")
	f.Int64Var(&c.MaxBodySize, "frontend.max-body-size", 10<<20, "Maximum size of a request body the frontend accepts.")
	f.Var(&c.ForwardHeaders, "frontend.forward-headers-list", "List of headers forwarded by the query Frontend to downstream querier: a query or range query (and each of its split and shard queries) carries these client headers and the tenant's X-Scope-OrgID, no other. Authorization, Proxy-Authorization and Cookie are refused: no credentials reach a querier. Other APIs pass the client's headers on without those three.")
	c.Memcached.RegisterFlags(f)
	c.Redis.RegisterFlags(f)
	c.Scheduler.RegisterFlags(f)
}

// Validate checks the flags.
func (c *Config) Validate() error {
	if c.QuerierForgetDelay < 0 {
		return fmt.Errorf("-query-frontend.querier-forget-delay must not be negative, got %s", c.QuerierForgetDelay)
	}
	if c.MaxRetries <= 0 {
		return fmt.Errorf("-querier.max-retries-per-request must be at least 1, got %d", c.MaxRetries)
	}
	if c.SplitQueriesByInterval < 0 {
		return fmt.Errorf("-querier.split-queries-by-interval must not be negative, got %s", c.SplitQueriesByInterval)
	}
	if c.MaxFetchedDataDurationPerQuery < 0 {
		return fmt.Errorf("-querier.max-fetched-data-duration-per-query must not be negative (0 disables), got %s", c.MaxFetchedDataDurationPerQuery)
	}
	if c.MaxShardsPerQuery < 0 {
		return fmt.Errorf("-querier.max-shards-per-query must not be negative (0 disables), got %d", c.MaxShardsPerQuery)
	}
	switch {
	case c.Compression != "" && c.Compression != "snappy":
		return fmt.Errorf("-frontend.compression: unsupported compression type: %s (supported: snappy, or empty for none)", c.Compression)
	case c.CacheMaxSizeItems < 0 || c.CacheSize < 0:
		return fmt.Errorf("-frontend.fifocache.max-size-items and -frontend.fifocache.size must not be negative")
	case c.DefaultValidity < 0:
		return fmt.Errorf("-frontend.default-validity must not be negative, got %s", c.DefaultValidity)
	case c.WriteBackGoroutines <= 0:
		return fmt.Errorf("-frontend.background.write-back-concurrency must be positive, got %d", c.WriteBackGoroutines)
	case c.WriteBackBuffer < 0:
		return fmt.Errorf("-frontend.background.write-back-buffer must not be negative, got %d", c.WriteBackBuffer)
	}
	for _, h := range c.ForwardHeaders {
		if slices.ContainsFunc(credentialHeaders, func(c string) bool { return strings.EqualFold(c, h) }) {
			return fmt.Errorf("-frontend.forward-headers-list: %q carries client credentials, which are never forwarded to the queriers (any holder of a querier certificate can pull queries)", h)
		}
		if h == "" || strings.ContainsAny(h, " :\t") {
			return fmt.Errorf("-frontend.forward-headers-list: %q is not a header name", h)
		}
	}
	if c.DownstreamURL != "" {
		if _, err := parseDownstreamURL(c.DownstreamURL); err != nil {
			return err
		}
		if c.Scheduler.SchedulerAddress != "" {
			return fmt.Errorf("-frontend.downstream-url and -frontend.scheduler-address both set: the queries go to one or the other")
		}
	}
	if err := c.Memcached.Validate(); err != nil {
		return err
	}
	if err := c.Redis.Validate(); err != nil {
		return err
	}
	if c.Memcached.enabled() && c.Redis.enabled() {
		return errors.New("-frontend.memcached.addresses (or -frontend.memcached.hostname) and -frontend.redis.endpoint both set: use of multiple cache storage systems is not supported")
	}
	return c.Scheduler.Validate()
}

// defaultMaxOutstanding is -frontend.max-outstanding-requests-per-tenant's
// default, for a frontend given no tenant limits.
const defaultMaxOutstanding = 100

// request is one HTTP-over-gRPC query waiting for a querier.
type request struct {
	ctx    context.Context
	tenant string
	req    *frontendpb.HTTPRequest
	// priority is the query's limits.query_priority.
	priority int64
	result   chan result // buffered: the querier stream never blocks on it
}

type result struct {
	resp *frontendpb.HTTPResponse
	err  error
}

// Frontend queues queries and serves them to the querier workers.
type Frontend struct {
	services.Service
	cfg     Config
	logger  *slog.Logger
	queue   *queue
	cache   cache
	metrics *metrics
	workers atomic.Int64
	handler http.Handler
	// limits are the tenants' limits on the expressions refused before
	// parsing; nil checks none.
	limits *validation.Overrides
	// queryTimeout is the queriers' -querier.timeout, which the answers
	// of queries may take (0: the server's write timeout applies).
	queryTimeout time.Duration
	// lookback is the queriers' -querier.lookback-delta (WithLookbackDelta).
	lookback time.Duration
	// perStepStats is the queriers' -querier.per-step-stats-enabled
	// (WithPerStepStats).
	perStepStats bool
	// parser parses the queries as the queriers do (WithParserOptions);
	// nil: Prometheus' default options.
	parser parser.Parser
	// schedulers, with -frontend.scheduler-address, takes the queries
	// instead of queue.
	schedulers *schedulers
	// sharding counts the queries run as shard queries.
	sharding *shardingMetrics
	// statsMetrics are the query statistics' metrics; nil without
	// -frontend.query-stats-enabled.
	statsMetrics *queryStatsMetrics
	// downstream, with -frontend.downstream-url, answers the queries
	// instead of the queriers; downstreamTLS is its link's TLS.
	downstream    *downstream
	downstreamTLS *tlsconfig.Client
	// redisTLS is the -frontend.redis link's TLS (WithRedisTLS); redis
	// the results cache's connection, with -frontend.redis.endpoint.
	redisTLS *tlsconfig.Client
	redis    *redisCache
	// rejected counts the queries limits.query_rejection refused.
	rejected *prometheus.CounterVec
	// federation says which queries may read several tenants.
	federation tenantfederation.Config
	// querierCodec is how the queriers encode and compress their answers.
	querierCodec querierCodec
}

// Option sets what a frontend takes from the rest of the process.
type Option func(*Frontend)

// WithLimits makes the frontend refuse, before it parses them, the
// expressions over a tenant's -query-frontend.max-query-expression-* limits.
func WithLimits(l *validation.Overrides) Option { return func(f *Frontend) { f.limits = l } }

// WithQueryTimeout lets the answers of queries be written for as long as
// the queriers' -querier.timeout (plus a margin), beyond the server's
// -server.http-write-timeout.
func WithQueryTimeout(d time.Duration) Option { return func(f *Frontend) { f.queryTimeout = d } }

type metrics struct {
	connected     prometheus.GaugeFunc
	retries       prometheus.Histogram
	queryRange    *prometheus.HistogramVec
	splitQueries  prometheus.Counter
	cacheFetched  prometheus.Counter
	cacheHits     prometheus.Counter
	cacheBytes    prometheus.Gauge
	cacheEntries  prometheus.Gauge
	cacheEvicted  prometheus.Counter
	refusedTenant *prometheus.CounterVec
}

// cache is where results of range query parts are kept.
type cache interface {
	// fetch returns the entries of keys it holds.
	fetch(ctx context.Context, keys []string) map[string][]byte
	store(key string, value []byte)
	// stop ends the cache's goroutines, once no query uses it.
	stop()
}

// New returns a frontend. memcachedTLS is the -frontend.memcached link's
// TLS (nil for plaintext), used when -frontend.memcached.addresses is set.
func New(cfg Config, memcachedTLS *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Frontend{cfg: cfg, logger: logger.With("component", "query-frontend")}
	for _, o := range opts {
		o(f)
	}
	if cfg.CacheQueryableSamplesStats && !f.perStepStats {
		return nil, errors.New("-frontend.cache-queryable-samples-stats may only be enabled in conjunction with -querier.per-step-stats-enabled. Please set the latter")
	}
	cacheName := "frontend.fifocache"
	if cfg.Memcached.enabled() {
		cacheName = "frontend.memcached"
	}
	if cfg.Redis.enabled() {
		cacheName = "frontend.redis"
	}
	length := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cortex_query_frontend_queue_length", Help: "Number of queries in the queue."}, []string{"user", "priority", "type"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cortex_query_frontend_queue_duration_seconds", Help: "Time spent by requests queued.", Buckets: prometheus.DefBuckets})
	f.metrics = &metrics{
		connected: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cortex_query_frontend_connected_clients", Help: "Number of worker streams currently connected to the frontend."},
			func() float64 { return float64(f.workers.Load()) }),
		retries:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cortex_query_frontend_retries", Help: "Number of times a request is retried.", Buckets: []float64{0, 1, 2, 3, 4, 5}}),
		queryRange:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cortex_frontend_query_range_duration_seconds", Help: "Total time spent in seconds doing query range requests.", Buckets: prometheus.DefBuckets}, []string{"method", "status_code"}),
		splitQueries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_frontend_split_queries_total", Help: "Total number of underlying query requests after the split by interval is applied."}),
		cacheFetched:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_cache_fetched_keys", Help: "Total count of keys requested from cache.", ConstLabels: prometheus.Labels{"name": cacheName}}),
		cacheHits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_cache_hits", Help: "Total count of keys found in cache.", ConstLabels: prometheus.Labels{"name": cacheName}}),
		cacheBytes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "cortex_cache_memory_bytes", Help: "Total memory used by the cache in bytes.", ConstLabels: prometheus.Labels{"cache": "frontend.fifocache"}}),
		cacheEntries:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "cortex_cache_entries", Help: "The total number of entries in the cache.", ConstLabels: prometheus.Labels{"cache": "frontend.fifocache"}}),
		cacheEvicted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_cache_evicted_total", Help: "The total number of evicted entries.", ConstLabels: prometheus.Labels{"cache": "frontend.fifocache"}}),
		refusedTenant: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cortex_query_frontend_discarded_requests_total", Help: "Total number of query requests discarded."}, []string{"user", "priority"}),
	}
	if reg != nil {
		m := f.metrics
		reg.MustRegister(length, duration, m.connected, m.retries, m.queryRange, m.splitQueries, m.cacheFetched, m.cacheHits, m.cacheBytes, m.cacheEntries, m.cacheEvicted, m.refusedTenant)
	}
	f.sharding = newShardingMetrics(reg)
	f.rejected = newRejectedQueries(reg)
	if cfg.DownstreamURL != "" {
		u, _ := parseDownstreamURL(cfg.DownstreamURL) // checked by Validate
		f.downstream = newDownstream(u, f.downstreamTLS)
	}
	if cfg.QueryStatsEnabled {
		f.statsMetrics = newQueryStatsMetrics(reg)
	}
	queueCfg := fairqueue.Config{MaxOutstanding: f.maxOutstanding, ForgetDelay: cfg.QuerierForgetDelay}
	if f.limits != nil {
		queueCfg.QueryPriority = func(tenant string) validation.QueryPriority { return f.limits.For(tenant).QueryPriority }
	}
	if cfg.Scheduler.SchedulerAddress == "" && cfg.DownstreamURL == "" {
		// The requests go to this frontend's own queue.
		queueCfg.Requests = fairqueue.NewRequestsCounter(reg)
	}
	f.queue = newQueue(queueCfg, length, f.metrics.refusedTenant, duration)
	if f.limits != nil {
		f.queue.maxQueriers = func(tenant string) float64 { return f.limits.For(tenant).MaxQueriersPerTenant }
	}
	if cfg.CacheResults {
		if cfg.Redis.enabled() {
			expiration := cfg.Redis.Expiration
			if expiration == 0 {
				expiration = cfg.DefaultValidity
			}
			var err error
			if f.redis, err = newRedisCache(cfg.Redis, expiration, f.redisTLS, f.logger, reg); err != nil {
				return nil, err
			}
		}
		f.cache = f.newCache(memcachedTLS, reg)
	}
	if f.schedulers != nil && reg != nil {
		f.schedulers.registerMetrics(reg)
	}
	f.handler = f.newHandler()
	f.Service = services.NewIdleService(func(context.Context) error {
		if f.schedulers != nil {
			f.schedulers.start(f.logger)
		}
		return nil
	}, func(error) error {
		if f.schedulers != nil {
			f.schedulers.stop()
		}
		f.queue.stop()
		if f.cache != nil {
			f.cache.stop()
		}
		return nil
	})
	return f, nil
}

// maxOutstanding is a tenant's -frontend.max-outstanding-requests-per-tenant.
func (f *Frontend) maxOutstanding(tenant string) int {
	if f.limits == nil {
		return defaultMaxOutstanding
	}
	return f.limits.For(tenant).MaxOutstandingPerTenant
}

// newCache builds the results cache of -querier.cache-results, as
// Cortex's: the embedded cache, or memcached written in the background,
// the embedded cache in front of it with -frontend.cache.enable-fifocache,
// the whole compressed with -frontend.compression=snappy. Redis (f.redis)
// in place of memcached works the same way.
func (f *Frontend) newCache(memcachedTLS *tlsconfig.Client, reg prometheus.Registerer) cache {
	cfg := f.cfg
	inMemory := func() cache {
		maxItems := cfg.CacheMaxSizeItems
		if cfg.CacheSize > 0 {
			maxItems = cfg.CacheSize
		}
		ttl := cfg.CacheTTL
		if ttl == 0 {
			ttl = cfg.DefaultValidity
		}
		return newResultsCache(cfg.CacheMaxSizeBytes, maxItems, ttl, f.metrics)
	}
	var c cache
	switch {
	case cfg.Memcached.enabled():
		expiration := cfg.Memcached.Expiration
		if expiration == 0 {
			expiration = cfg.DefaultValidity
		}
		name := prometheus.Labels{"name": "frontend.memcache"}
		servers := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cortex_memcache_client_servers", Help: "The number of memcache servers discovered.", ConstLabels: name})
		dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_cache_dropped_background_writes_total", Help: "Total count of dropped write backs to cache.", ConstLabels: name})
		queued := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cortex_cache_background_queue_length", Help: "Length of the cache background write queue.", ConstLabels: name})
		if reg != nil {
			reg.MustRegister(servers, dropped, queued)
		}
		c = newBackgroundCache(newMemcachedCache(cfg.Memcached, expiration, memcachedTLS, f.logger, servers, net.DefaultResolver.LookupSRV), cfg.WriteBackGoroutines, cfg.WriteBackBuffer, dropped, queued)
		if cfg.EnableFifoCache {
			c = tieredCache{inMemory(), c}
		}
	case f.redis != nil:
		name := prometheus.Labels{"name": "frontend.redis"}
		dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "cortex_cache_dropped_background_writes_total", Help: "Total count of dropped write backs to cache.", ConstLabels: name})
		queued := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cortex_cache_background_queue_length", Help: "Length of the cache background write queue.", ConstLabels: name})
		if reg != nil {
			reg.MustRegister(dropped, queued)
		}
		c = newBackgroundCache(f.redis, cfg.WriteBackGoroutines, cfg.WriteBackBuffer, dropped, queued)
		if cfg.EnableFifoCache {
			c = tieredCache{inMemory(), c}
		}
	default:
		c = inMemory()
	}
	if cfg.Compression == "snappy" {
		c = snappyCache{next: c, logger: f.logger}
	}
	return c
}

// Handler serves the Prometheus API; the tenant must be in the request
// context (tenant.HTTPMiddleware).
func (f *Frontend) Handler() http.Handler { return f.handler }

// CheckReady fails until at least one querier worker is connected.
func (f *Frontend) CheckReady(context.Context) error {
	if f.downstream != nil {
		return nil // no querier is needed
	}
	if f.schedulers != nil {
		if f.schedulers.ready.Load() == 0 {
			return errors.New("query-frontend: not connected to any query-scheduler yet (-frontend.scheduler-address)")
		}
		return nil
	}
	if f.workers.Load() == 0 {
		return errors.New("query-frontend: no querier connected yet (queriers connect with -querier.frontend-address)")
	}
	return nil
}

// ConnectedWorkers returns the number of worker streams connected.
func (f *Frontend) ConnectedWorkers() int { return int(f.workers.Load()) }

// RoundTrip runs req for tenant on a querier, retrying on another when one
// fails, disconnects or answers 5xx, up to -querier.max-retries-per-request tries.
func (f *Frontend) RoundTrip(ctx context.Context, tenant string, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	var (
		resp *frontendpb.HTTPResponse
		err  error
	)
	tries := 0
	defer func() { f.metrics.retries.Observe(float64(tries - 1)) }()
	for tries < f.cfg.MaxRetries {
		tries++
		resp, err = f.roundTripQuerier(ctx, tenant, req)
		takeQuerierWallTime(ctx, resp)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errTooManyRequests) || errors.Is(err, errStopped) || errors.As(err, new(errResponseTooLarge)) {
			return nil, err
		}
		if err == nil && (resp.Code < 500 || queryTimedOut(resp)) {
			if err := countResponse(ctx, resp); err != nil {
				return nil, err
			}
			return resp, nil
		}
		if err != nil {
			f.logger.Debug("query failed on a querier, retrying", "tenant", tenant, "try", tries, "err", err)
		}
	}
	return resp, err
}

func (f *Frontend) roundTripOnce(ctx context.Context, tenant string, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	if f.downstream != nil {
		return f.downstream.roundTrip(ctx, req)
	}
	if f.schedulers != nil {
		return f.schedulers.roundTrip(ctx, tenant, req)
	}
	r := &request{ctx: ctx, tenant: tenant, req: req, priority: priorityOf(ctx), result: make(chan result, 1)}
	if err := f.queue.enqueue(r); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		// The querier stream holding r (if any) sees ctx end too, and
		// ends its stream, which cancels the query on the querier.
		return nil, ctx.Err()
	case res := <-r.result:
		return res.resp, res.err
	}
}

// NotifyClientShutdown takes a querier's notice that it shuts down: it
// leaves the tenants' shards once its streams end, without waiting for
// -query-frontend.querier-forget-delay.
func (f *Frontend) NotifyClientShutdown(_ context.Context, in *wrapperspb.StringValue) (*emptypb.Empty, error) {
	if id := in.GetValue(); id != "" && len(id) <= maxQuerierIDLength {
		f.logger.Info("querier shutting down", "querier", id)
		f.queue.q.NotifyQuerierShutdown(id)
	}
	return &emptypb.Empty{}, nil
}

// Process serves one querier worker stream: it hands the worker one
// queued query at a time and returns its answer to the waiting request.
func (f *Frontend) Process(stream frontendpb.ProcessServer) error {
	ctx := stream.Context()
	who := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		who = p.Addr.String()
	}
	if f.workers.Add(1) == 1 {
		f.logger.Info("first querier connected: ready", "querier", who)
	}
	defer f.workers.Add(-1)
	querierID := QuerierID(ctx, who)
	f.queue.q.RegisterQuerier(querierID)
	defer f.queue.q.UnregisterQuerier(querierID)
	cursor := fairqueue.FirstTenant
	for {
		var r *request
		var err error
		r, cursor, err = f.queue.dequeueFor(ctx, cursor, querierID)
		if err != nil {
			if errors.Is(err, errStopped) {
				return status.Error(codes.Unavailable, err.Error())
			}
			return err
		}
		if r.ctx.Err() != nil {
			r.result <- result{err: r.ctx.Err()}
			continue
		}
		if err := stream.Send(&frontendpb.FrontendToClient{HttpRequest: r.req}); err != nil {
			r.result <- result{err: fmt.Errorf("sending the query to querier %s: %w", who, err)}
			return err
		}
		recv := make(chan result, 1)
		go func() {
			m, err := stream.Recv()
			if err != nil {
				recv <- result{err: fmt.Errorf("querier %s: %w", who, err)}
				return
			}
			recv <- result{resp: m.HttpResponse}
		}()
		select {
		case <-r.ctx.Done():
			// Ending the stream cancels the query on the querier; its
			// worker opens a new stream.
			r.result <- result{err: r.ctx.Err()}
			return status.Error(codes.Canceled, "query canceled by its client")
		case res := <-recv:
			if res.err == nil && res.resp == nil {
				res.err = fmt.Errorf("querier %s sent an empty answer", who)
			}
			r.result <- res
			if res.err != nil {
				return res.err
			}
		}
	}
}
