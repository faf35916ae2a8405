// Package querier answers PromQL and the Prometheus HTTP API over the
// tenant's series held by the ingesters: a storage.Queryable fans out to
// the ingesters of the ring, merges the replicas of each series, and the
// Prometheus engine evaluates queries over it.
//
// It is read-only: it must not write to ingesters, and it reaches them only
// through pkg/ingester/client, never by importing pkg/ingester.
package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/querier/codec"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// legacyPrefix is where Cortex served the Prometheus API before
// -http.prometheus-http-prefix existed; dashboards still point at it.
const legacyPrefix = "/api/prom"

// Config configures the querier: -querier.* and the API prefix.
type Config struct {
	Timeout                   time.Duration `yaml:"timeout"`
	MaxConcurrent             int           `yaml:"max_concurrent"`
	MaxSamples                int           `yaml:"max_samples"`
	MaxSubquerySteps          int64         `yaml:"max_subquery_steps"`
	LookbackDelta             time.Duration `yaml:"lookback_delta"`
	DefaultEvaluationInterval time.Duration `yaml:"default_evaluation_interval"`
	PrometheusHTTPPrefix      string        `yaml:"prometheus_http_prefix"`

	// EnablePerStepStats is Prometheus' per-step statistics: a query asked
	// with stats=all answers its queryable samples per step.
	EnablePerStepStats bool `yaml:"per_step_stats_enabled"`
	// EnablePromQLExperimentalFunctions lets the querier's, the
	// query-frontend's and the ruler's PromQL parsers accept Prometheus'
	// experimental functions and aggregations.
	EnablePromQLExperimentalFunctions bool `yaml:"enable_promql_experimental_functions"`
	// StoreGatewayQueryStatsEnabled logs each store-gateway Series call's
	// statistics.
	StoreGatewayQueryStatsEnabled bool `yaml:"store_gateway_query_stats"`

	MinimizeIngesterRequests             bool          `yaml:"minimize_ingester_requests"`
	MinimizeIngesterRequestsHedgingDelay time.Duration `yaml:"minimize_ingester_requests_hedging_delay"`

	QueryIngestersWithin time.Duration `yaml:"query_ingesters_within"`
	QueryStoreAfter      time.Duration `yaml:"query_store_after"`

	// ShuffleShardingIngestersLookbackPeriod: with shuffle sharding of the
	// ingesters, a tenant's queries ask its shard plus the ingesters that
	// joined or changed state within this period, which may still hold
	// series written before the shard changed. 0 asks every ingester.
	ShuffleShardingIngestersLookbackPeriod time.Duration `yaml:"shuffle_sharding_ingesters_lookback_period"`
	// ShuffleShardIngesters is -distributor.sharding-strategy=shuffle-sharding:
	// the distributors write a tenant's series to its shuffle shard only.
	ShuffleShardIngesters bool `yaml:"-"`
	// ExtraQueryDelay is -distributor.extra-query-delay: when positive, the
	// ingesters a quorum needs are asked at once, the others after it or
	// on a failure.
	ExtraQueryDelay time.Duration `yaml:"-"`
	// IngesterMetadataStreaming asks the ingesters for label names, label
	// values and series over their streaming calls.
	IngesterMetadataStreaming bool `yaml:"ingester_metadata_streaming"`

	// StoreGateway is the link to the store-gateways:
	// -querier.store-gateway-addresses and -querier.store-gateway-client.*.
	StoreGateway sgclient.Config `yaml:",inline"`

	// QueryProtection refuses queries while the heap is nearly full:
	// -querier.query-protection.rejection.threshold.heap-utilization.
	QueryProtection queryprotection.Config `yaml:"query_protection"`

	ActiveQueryTrackerDir string        `yaml:"active_query_tracker_dir"`
	MaxQueryIntoFuture    time.Duration `yaml:"max_query_into_future"`
	IgnoreMaxQueryLength  bool          `yaml:"ignore_max_query_length"`
	// ResponseCompression is the compression the query-frontend asks for
	// the queriers' answers to queries and range queries.
	ResponseCompression string `yaml:"response_compression"`

	IngesterQueryMaxAttempts                int  `yaml:"ingester_query_max_attempts"`
	IngesterLabelNamesWithMatchers          bool `yaml:"ingester_label_names_with_matchers"`
	StoreGatewayConsistencyCheckMaxAttempts int  `yaml:"store_gateway_consistency_check_max_attempts"`
	// StoreGatewaySeriesBatchSize is how many series the querier asks a
	// store-gateway to send per Series message; 0 and 1 ask for one.
	StoreGatewaySeriesBatchSize int64 `yaml:"store_gateway_series_batch_size"`
}

// RegisterFlags registers the querier's flags with Cortex's names and defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "The timeout for a query: waiting for a query slot and evaluating it.")
	f.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "The maximum number of PromQL queries evaluated at once; further queries wait for a slot, up to -querier.timeout.")
	f.IntVar(&c.MaxSamples, "querier.max-samples", 50000000, "Maximum number of samples a single query can load into memory. The steps its subqueries evaluate count too (each holds per-step statistics and up to one point per series), and are checked before evaluation.")
	f.Int64Var(&c.MaxSubquerySteps, "querier.max-subquery-steps", 11000, "Maximum number of steps of a subquery (its range divided by its step), checked before evaluation, as Prometheus bounds a range query's points per series. 0 disables.")
	c.QueryProtection.RegisterFlagsWithPrefix(f, "querier.", "querier")
	f.StringVar(&c.ActiveQueryTrackerDir, "querier.active-query-tracker-dir", "./active-query-tracker", "Directory of Prometheus' active query log: each PromQL or remote read query being evaluated is written to a file there (one entry per -querier.max-concurrent slot), and the queries a crashed run left in it are logged at the next start. Empty disables the log; -querier.max-concurrent still applies.")
	f.DurationVar(&c.MaxQueryIntoFuture, "querier.max-query-into-future", 10*time.Minute, "Maximum duration into the future you can query: a read ending later than now plus this ends there instead (one wholly beyond it reads nothing). 0 to disable.")
	f.IntVar(&c.IngesterQueryMaxAttempts, "querier.ingester-query-max-attempts", 1, "The maximum number of times a read of the ingesters is attempted when too few of them answered (each attempt asks the replication set again, 1 to 5ms apart).")
	f.BoolVar(&c.IngesterMetadataStreaming, "querier.ingester-metadata-streaming", true, "Ask the ingesters for label names, label values and series with their streaming calls (LabelNamesStream, LabelValuesStream, SeriesStream, Cortex's MetricsForLabelMatchersStream), in messages of at most 128 names, values or series, so a large answer is checked against the query's limits as it arrives. False uses the unary calls.")
	f.BoolVar(&c.IngesterLabelNamesWithMatchers, "querier.ingester-label-names-with-matchers", true, "Ask the ingesters for label names with matchers with LabelNames calls carrying the matchers. False takes them from the matching series instead (Series calls), as Cortex does by default for ingesters that ignore LabelNames' matchers; the answer is the same, at the cost of sending every matching series.")
	f.IntVar(&c.StoreGatewayConsistencyCheckMaxAttempts, "querier.store-gateway-consistency-check-max-attempts", defaultStoreGatewayAttempts, "The maximum number of rounds a query asks the store-gateways for the blocks it needs that no store-gateway answered for yet, each round another replica of them. Blocks still unanswered fail the query (the consistency check).")
	f.Int64Var(&c.StoreGatewaySeriesBatchSize, "querier.store-gateway-series-batch-size", 1, "The maximum number of series a store-gateway sends in one gRPC message of a Series call. A value of 0 or 1 disables batching (one series per message). Store-gateways send at most 10,000 series, and cut a message at 1 MiB.")
	f.BoolVar(&c.IgnoreMaxQueryLength, "querier.ignore-max-query-length", false, "Skip the tenant's max_query_length check on the querier's PromQL reads, when the query-frontend or the ruler checks it before: the query-frontend checks a query's whole range, while the querier checks each selector's range, offsets and lookbacks included. Series requests (/api/v1/series) are still checked.")
	f.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample of a series.")
	f.DurationVar(&c.DefaultEvaluationInterval, "querier.default-evaluation-interval", time.Minute, "The step of subqueries that do not give one.")
	f.StringVar(&c.ResponseCompression, "querier.response-compression", "gzip", "Use compression for metrics query API or instant and range query APIs. Supported compression 'gzip', 'snappy', 'zstd' and '' (disable compression; 'none' too): the query-frontend asks its queriers to compress their answers so (Accept-Encoding), and decompresses them, at most to the tenant's -frontend.max-query-response-size or -server.grpc-max-recv-msg-size-bytes.")
	f.StringVar(&c.PrometheusHTTPPrefix, "http.prometheus-http-prefix", "/prometheus", "HTTP URL path under which the Prometheus API is served (it is also served under "+legacyPrefix+").")
	f.BoolVar(&c.MinimizeIngesterRequests, "querier.minimize-ingester-requests", true, "Ask only as many ingesters as a quorum needs (2 of 3 replicas), and the others only when one fails or is slow: every acknowledged sample is on a quorum, and any two quorums meet. Saves a third of the ingesters' query work at replication factor 3.")
	c.StoreGateway.RegisterFlags(f)
	f.DurationVar(&c.QueryIngestersWithin, "querier.query-ingesters-within", 0, "With long-term storage, ask the ingesters only for the part of a query's range within this long of now; older data comes from the blocks storage. 0 asks the ingesters for every range.")
	f.DurationVar(&c.ShuffleShardingIngestersLookbackPeriod, "querier.shuffle-sharding-ingesters-lookback-period", 0, "With -distributor.sharding-strategy=shuffle-sharding, ask only a tenant's shuffle shard of ingesters (-distributor.ingestion-tenant-shard-size), plus the ingesters that joined the ring or changed state within this period, as they may hold series the tenant wrote before its shard changed. It must cover how long an ingester keeps series in memory (at least -querier.query-ingesters-within when that is set). 0 asks every ingester.")
	f.DurationVar(&c.QueryStoreAfter, "querier.query-store-after", 0, "With long-term storage, ask the blocks storage only for the part of a query's range older than this (what the ingesters have not shipped yet is theirs alone). 0 asks it for every range.")
	f.DurationVar(&c.MinimizeIngesterRequestsHedgingDelay, "querier.minimize-ingester-requests-hedging-delay", 3*time.Second, "With -querier.minimize-ingester-requests, ask the remaining ingesters too when an answer has not come within this delay. 0 waits for a failure instead.")
	f.BoolVar(&c.EnablePerStepStats, "querier.per-step-stats-enabled", false, "Enable returning samples stats per steps in query response: a query asked with stats=all answers, in data.stats.samples, its queryable samples at each step (totalQueryableSamplesPerStep), as Prometheus' engine counts them.")
	f.BoolVar(&c.StoreGatewayQueryStatsEnabled, "querier.store-gateway-query-stats-enabled", true, "If true, log the statistics of each store-gateway Series call (\"store gateway series request stats\": blocks queried, series and chunks merged, postings, series and chunks touched and fetched with their bytes, data downloaded, the call's and its merge's durations). Whether or not, the postings the store-gateways touched are counted into the query's statistics, which the query-frontend logs with -frontend.query-stats-enabled.")
	f.BoolVar(&c.EnablePromQLExperimentalFunctions, "querier.enable-promql-experimental-functions", false, "[Experimental] If true, experimental promQL functions are enabled: Prometheus' experimental functions and aggregations (sort_by_label, limitk, ...) parse in the querier, the query-frontend and the ruler; without it they are refused with Prometheus' parse error.")
}

// ParserOptions are the PromQL parser options of -querier.enable-promql-experimental-functions,
// shared by every parser of the process's queries and rules, as Cortex sets
// them once for the whole process.
func (c *Config) ParserOptions() parser.Options {
	return parser.Options{EnableExperimentalFunctions: c.EnablePromQLExperimentalFunctions}
}

// Validate checks settings that would make no sense.
func (c *Config) Validate() error {
	if c.ExtraQueryDelay < 0 {
		return fmt.Errorf("-distributor.extra-query-delay must not be negative, got %s", c.ExtraQueryDelay)
	}
	if c.MaxConcurrent <= 0 {
		return fmt.Errorf("-querier.max-concurrent must be at least 1, got %d", c.MaxConcurrent)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("-querier.timeout must be positive, got %s", c.Timeout)
	}
	if c.MaxSamples < 0 || c.MaxSubquerySteps < 0 {
		return fmt.Errorf("-querier.max-samples and -querier.max-subquery-steps must not be negative (0 disables), got %d and %d", c.MaxSamples, c.MaxSubquerySteps)
	}
	if err := c.QueryProtection.Validate("querier."); err != nil {
		return err
	}
	if c.IngesterQueryMaxAttempts < 1 {
		return fmt.Errorf("-querier.ingester-query-max-attempts must be at least 1, got %d", c.IngesterQueryMaxAttempts)
	}
	if c.StoreGatewayConsistencyCheckMaxAttempts < 1 {
		return fmt.Errorf("-querier.store-gateway-consistency-check-max-attempts must be at least 1, got %d", c.StoreGatewayConsistencyCheckMaxAttempts)
	}
	if c.StoreGatewaySeriesBatchSize < 0 {
		return fmt.Errorf("-querier.store-gateway-series-batch-size must not be negative (0 or 1 disables batching), got %d", c.StoreGatewaySeriesBatchSize)
	}
	if c.MaxQueryIntoFuture < 0 {
		return fmt.Errorf("-querier.max-query-into-future must not be negative (0 disables), got %s", c.MaxQueryIntoFuture)
	}
	if c.LookbackDelta < 0 || c.DefaultEvaluationInterval <= 0 {
		return errors.New("-querier.lookback-delta must not be negative and -querier.default-evaluation-interval must be positive")
	}
	if err := codec.ValidateCompression(c.ResponseCompression); err != nil {
		return err
	}
	if err := c.StoreGateway.Validate(); err != nil {
		return err
	}
	if c.QueryIngestersWithin < 0 || c.QueryStoreAfter < 0 {
		return errors.New("-querier.query-ingesters-within and -querier.query-store-after must not be negative")
	}
	if c.QueryIngestersWithin > 0 && c.QueryStoreAfter >= c.QueryIngestersWithin {
		return fmt.Errorf("-querier.query-store-after (%s) must be less than -querier.query-ingesters-within (%s), or the data in between is asked of neither", c.QueryStoreAfter, c.QueryIngestersWithin)
	}
	if c.ShuffleShardingIngestersLookbackPeriod < 0 {
		return fmt.Errorf("-querier.shuffle-sharding-ingesters-lookback-period must not be negative, got %s", c.ShuffleShardingIngestersLookbackPeriod)
	}
	if c.ShuffleShardingIngestersLookbackPeriod > 0 && c.QueryIngestersWithin > 0 && c.ShuffleShardingIngestersLookbackPeriod < c.QueryIngestersWithin {
		return fmt.Errorf("-querier.shuffle-sharding-ingesters-lookback-period (%s) must be at least -querier.query-ingesters-within (%s), or a query could miss series held by an ingester that left the tenant's shard", c.ShuffleShardingIngestersLookbackPeriod, c.QueryIngestersWithin)
	}
	if p := c.PrometheusHTTPPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")) {
		return fmt.Errorf("-http.prometheus-http-prefix must start with / and not end with one (or be empty), got %q", p)
	}
	return nil
}

// shardLookback is the ingester queryable's lookback of the tenants'
// shuffle shards: none (every ingester) without shuffle sharding.
func shardLookback(cfg Config) time.Duration {
	if !cfg.ShuffleShardIngesters {
		return 0
	}
	return cfg.ShuffleShardingIngestersLookbackPeriod
}

// Querier serves PromQL over the ingesters. Its service starts and stops
// the pool of ingester connections.
type Querier struct {
	services.Service

	cfg       Config
	logger    *slog.Logger
	pool      *client.Pool
	queryable *ingesterQueryable
	// readable is what queries read: split, behind the heap protection.
	readable storage.Queryable
	// split reads the ingesters, and the blocks storage when the querier
	// has one (WithStore).
	split *timeSplitQueryable
	// engine checks subqueries before promEngine evaluates.
	engine     promql.QueryEngine
	promEngine *promql.Engine
	parser     parser.Parser
	slots      *querySlots
	metrics    *metrics
	watcher    *services.FailureWatcher
}

// Option adds an optional source to a querier.
type Option func(*Querier)

// WithStore makes the querier read the blocks in long-term storage through
// store as well, split from the ingesters by -querier.query-ingesters-within
// and -querier.query-store-after.
func WithStore(store storage.Queryable) Option {
	return func(q *Querier) {
		if store != nil {
			q.split.store = store
		}
		if sg, ok := store.(*storeGatewayQueryable); ok {
			sg.maxAttempts = q.cfg.StoreGatewayConsistencyCheckMaxAttempts
			sg.logStats, sg.logger = q.cfg.StoreGatewayQueryStatsEnabled, q.logger
			sg.seriesBatchSize = q.cfg.StoreGatewaySeriesBatchSize
		}
	}
}

// New returns a querier that reads the ingesters of the ring ingesters
// over the -ingester.client link (tls nil for plaintext).
func New(cfg Config, clientCfg client.Config, tls *tlsconfig.Client, limits *validation.Overrides, ingesters ring.ReadRing, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Querier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "querier")
	guard, err := queryprotection.NewGuard(cfg.QueryProtection, "querier.", "querier", reg)
	if err != nil {
		return nil, err
	}
	pool := client.NewPool(ingesters, clientCfg, tls, logger, reg, "querier")
	q := &Querier{
		cfg:       cfg,
		logger:    logger,
		pool:      pool,
		queryable: &ingesterQueryable{ring: ingesters, pool: pool, limits: limits, minimize: cfg.MinimizeIngesterRequests, hedgingDelay: cfg.MinimizeIngesterRequestsHedgingDelay, now: time.Now, shardLookback: shardLookback(cfg), maxAttempts: cfg.IngesterQueryMaxAttempts, labelNamesWithMatchers: cfg.IngesterLabelNamesWithMatchers, extraQueryDelay: cfg.ExtraQueryDelay, metadataStreaming: cfg.IngesterMetadataStreaming, maxRecvMsgSize: clientCfg.MaxRecvMsgSize},
		parser:    parser.NewParser(cfg.ParserOptions()),
		slots:     newQuerySlots(cfg.MaxConcurrent, cfg.Timeout),
		metrics:   newMetrics(reg),
		watcher:   services.NewFailureWatcher(),
	}
	q.split = &timeSplitQueryable{ingesters: q.queryable, queryIngestersWithin: cfg.QueryIngestersWithin, queryStoreAfter: cfg.QueryStoreAfter, now: time.Now}
	q.readable = q.split
	// The tenant's max_query_lookback and max_query_length bound every read.
	q.readable = &timeRangeQueryable{Queryable: q.readable, limits: limits, now: q.queryable.clock, maxIntoFuture: cfg.MaxQueryIntoFuture, ignoreMaxQueryLength: cfg.IgnoreMaxQueryLength}
	// The query-frontend's shard queries name their shard in a matcher.
	q.readable = querysharding.Queryable{Queryable: q.readable}
	for _, o := range opts {
		o(q)
	}
	if cfg.ActiveQueryTrackerDir != "" {
		if err := q.slots.openActiveQueryLog(cfg.ActiveQueryTrackerDir, logger); err != nil {
			return nil, err
		}
	}
	// Outermost, so that a full heap refuses a query before it starts:
	// tenant federation opens its tenants' queriers only at Select, where
	// the engine would report the refusal as a failure to expand series.
	if guard != nil {
		q.readable = &guardedQueryable{Queryable: q.readable, guard: guard}
	}
	var engineReg prometheus.Registerer
	if reg != nil {
		// The label tells this engine's prometheus_engine_* series from the
		// ruler's, as in Cortex.
		engineReg = prometheus.WrapRegistererWith(prometheus.Labels{"engine": "querier"}, reg)
	}
	evalInterval := cfg.DefaultEvaluationInterval.Milliseconds()
	q.promEngine = promql.NewEngine(promql.EngineOpts{
		Logger:                   logger,
		Reg:                      engineReg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.Timeout,
		ActiveQueryTracker:       q.slots,
		LookbackDelta:            cfg.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		EnablePerStepStats:       cfg.EnablePerStepStats,
		Parser:                   q.parser,
	})
	q.engine = &limitedEngine{
		engine:           q.promEngine,
		parser:           q.parser,
		maxSubquerySteps: cfg.MaxSubquerySteps,
		maxSamples:       int64(cfg.MaxSamples),
		defaultStep:      evalInterval,
	}
	q.Service = services.NewBasicService(q.starting, q.running, q.stopping)
	return q, nil
}

// Queryable returns what queries read: each Select reads the series of the
// tenant in its context from the ingesters, and from the blocks storage
// when the querier has one. The ruler evaluates over it too.
func (q *Querier) Queryable() storage.Queryable { return q.readable }

// Engine returns the PromQL engine; the HTTP API evaluates with it behind
// the querier's subquery checks.
func (q *Querier) Engine() *promql.Engine { return q.promEngine }

func (q *Querier) starting(ctx context.Context) error {
	q.watcher.WatchService(q.pool)
	if err := services.StartAndAwaitRunning(ctx, q.pool); err != nil {
		return fmt.Errorf("starting the ingester client pool: %w", err)
	}
	return nil
}

func (q *Querier) running(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-q.watcher.Chan():
		return fmt.Errorf("ingester client pool failed: %w", err)
	}
}

func (q *Querier) stopping(error) error {
	err := services.StopAndAwaitTerminated(context.Background(), q.pool)
	q.watcher.Close()
	return errors.Join(err, q.promEngine.Close())
}
