package validation

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// The ingestion rate strategies of -distributor.ingestion-rate-limit-strategy.
const (
	LocalIngestionRateStrategy  = "local"
	GlobalIngestionRateStrategy = "global"
)

// MaxQueryVerticalShardSize bounds -frontend.query-vertical-shard-size:
// each shard is a query of its own in the queue.
const MaxQueryVerticalShardSize = 128

// Limits are the limits of one tenant. YAML names follow Cortex's limits block.
type Limits struct {
	// The ruler API refuses a rule group over either limit; 0 means unlimited.
	RulerMaxRulesPerRuleGroup   int `yaml:"ruler_max_rules_per_rule_group"`
	RulerMaxRuleGroupsPerTenant int `yaml:"ruler_max_rule_groups_per_tenant"`

	// HA pairs: a tenant's samples carrying both labels come from one of
	// a cluster's Prometheus replicas, and only the elected replica's are
	// stored (pkg/ha).
	AcceptHASamples bool   `yaml:"accept_ha_samples"`
	HAClusterLabel  string `yaml:"ha_cluster_label"`
	HAReplicaLabel  string `yaml:"ha_replica_label"`
	HAMaxClusters   int    `yaml:"ha_max_clusters"`

	IngestionRate      float64 `yaml:"ingestion_rate"`
	IngestionBurstSize int     `yaml:"ingestion_burst_size"`
	// IngestionRateStrategy is "local" (each distributor allows the whole
	// rate) or "global" (each allows the rate divided by the healthy
	// distributors of the distributor ring).
	IngestionRateStrategy string `yaml:"ingestion_rate_strategy"`
	// Native histogram samples have a rate limit of their own, taken
	// after the tenant's: math.MaxFloat64 (Cortex's rate.Inf) means none.
	NativeHistogramIngestionRate      float64 `yaml:"native_histogram_ingestion_rate"`
	NativeHistogramIngestionBurstSize int     `yaml:"native_histogram_ingestion_burst_size"`
	// AcceptMixedHASamples elects a replica per series rather than per
	// request, for requests mixing several HA clusters or none.
	AcceptMixedHASamples bool `yaml:"accept_mixed_ha_samples"`
	// DropLabels are removed from every series by the distributor.
	DropLabels []string `yaml:"drop_labels"`
	// Native histogram samples: their size as encoded, and their buckets
	// (a histogram with more has its resolution reduced until it fits);
	// 0 means unlimited. EnableNativeHistograms false drops them all.
	MaxNativeHistogramSampleSizeBytes int  `yaml:"max_native_histogram_sample_size_bytes"`
	EnforceMetadataMetricName         bool `yaml:"enforce_metadata_metric_name"`
	MaxNativeHistogramBuckets         int  `yaml:"max_native_histogram_buckets"`
	EnableNativeHistograms            bool `yaml:"enable_native_histograms"`
	// Series and metadata limits over the whole ingester ring: each
	// ingester applies its share (the limit divided by the healthy
	// ingesters, or the tenant's shard, times the replication factor)
	// besides the per-ingester limit. 0 means unlimited.
	MaxNativeHistogramSeriesPerUser       int `yaml:"max_native_histogram_series_per_user"`
	MaxGlobalSeriesPerUser                int `yaml:"max_global_series_per_user"`
	MaxGlobalSeriesPerMetric              int `yaml:"max_global_series_per_metric"`
	MaxGlobalNativeHistogramSeriesPerUser int `yaml:"max_global_native_histogram_series_per_user"`
	MaxGlobalMetadataPerUser              int `yaml:"max_global_metadata_per_user"`
	MaxGlobalMetadataPerMetric            int `yaml:"max_global_metadata_per_metric"`

	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int `yaml:"max_label_name_length"`
	MaxLabelValueLength    int `yaml:"max_label_value_length"`
	MaxLabelsSizeBytes     int `yaml:"max_labels_size_bytes"`

	// EnableTypeAndUnitLabels adds __type__ and __unit__ labels from the
	// metadata of remote write 2.0 and OTLP series.
	EnableTypeAndUnitLabels bool `yaml:"enable_type_and_unit_labels"`

	// Bounds on a query's regular expressions that the TSDB cannot turn
	// into a set of values (-ingester.enable-regex-matcher-limits).
	MaxRegexPatternLength                       int            `yaml:"max_regex_pattern_length"`
	MaxLabelCardinalityForUnoptimizedRegex      int            `yaml:"max_label_cardinality_for_unoptimized_regex"`
	MaxTotalLabelValueLengthForUnoptimizedRegex int            `yaml:"max_total_label_value_length_for_unoptimized_regex"`
	MaxMetadataLength                           int            `yaml:"max_metadata_length"`
	RejectOldSamples                            bool           `yaml:"reject_old_samples"`
	RejectOldSamplesMaxAge                      model.Duration `yaml:"reject_old_samples_max_age"`
	CreationGracePeriod                         model.Duration `yaml:"creation_grace_period"`
	EnforceMetricName                           bool           `yaml:"enforce_metric_name"`
	MaxSeriesPerUser                            int            `yaml:"max_series_per_user"`
	MaxSeriesPerMetric                          int            `yaml:"max_series_per_metric"`
	// Metadata an ingester keeps for the tenant: metric families, and
	// distinct metadata of one family; 0 means unlimited.
	MaxMetadataPerUser      int            `yaml:"max_metadata_per_user"`
	MaxMetadataPerMetric    int            `yaml:"max_metadata_per_metric"`
	OutOfOrderTimeWindow    model.Duration `yaml:"out_of_order_time_window"`
	MaxExemplars            int            `yaml:"max_exemplars"`
	MaxSeriesPerQuery       int            `yaml:"max_series_per_query"`
	MaxFetchedSamplesPerQry int            `yaml:"max_fetched_samples_per_query"`
	// Bounds on what one query fetches from the ingesters, checked as
	// their answers stream in; 0 means unlimited.
	MaxFetchedSeriesPerQuery     int `yaml:"max_fetched_series_per_query"`
	MaxFetchedChunkBytesPerQuery int `yaml:"max_fetched_chunk_bytes_per_query"`
	MaxFetchedDataBytesPerQuery  int `yaml:"max_fetched_data_bytes_per_query"`
	// The time range a query may read: a start older than now minus
	// MaxQueryLookback is moved up to it, a range longer than
	// MaxQueryLength refused; 0 means unlimited.
	MaxQueryLookback model.Duration `yaml:"max_query_lookback"`
	MaxQueryLength   model.Duration `yaml:"max_query_length"`

	MaxQueryExpressionSizeBytes int `yaml:"max_query_expression_size_bytes"`
	MaxQueryExpressionDepth     int `yaml:"max_query_expression_depth"`
	// QueryVerticalShardSize is how many shard queries the query-frontend
	// runs for a shardable query; 0 or 1 runs it whole.
	QueryVerticalShardSize int `yaml:"query_vertical_shard_size"`
	// MaxQueryParallelism bounds the split and shard queries of one
	// client query the query-frontend runs at once.
	MaxQueryParallelism int `yaml:"max_query_parallelism"`
	// MaxFetchedChunksPerQuery bounds the chunks one query fetches from
	// the ingesters and store-gateways together; 0 means unlimited.
	MaxFetchedChunksPerQuery int `yaml:"max_fetched_chunks_per_query"`

	// CompactorPartitionIndexSizeBytes and CompactorPartitionSeriesCount
	// bound a partitioned compaction's output blocks
	// (-compactor.compaction-strategy=partitioning): the index size and
	// series of the blocks merged, over the limit, set the partitions;
	// 0 is no limit.
	CompactorPartitionIndexSizeBytes int64 `yaml:"compactor_partition_index_size_bytes"`
	CompactorPartitionSeriesCount    int64 `yaml:"compactor_partition_series_count"`

	CompactorBlocksRetentionPeriod model.Duration `yaml:"compactor_blocks_retention_period"`
	StoreGatewayTenantShardSize    int            `yaml:"store_gateway_tenant_shard_size"`
	// CompactorTenantShardSize is the tenant's shuffle shard of compactors
	// with -compactor.sharding-strategy=shuffle-sharding: a count, or below
	// 1 a fraction of the compactors (rounded up); 0 the whole ring.
	CompactorTenantShardSize     float64 `yaml:"compactor_tenant_shard_size"`
	MaxDownloadedBytesPerRequest int     `yaml:"max_downloaded_bytes_per_request"`
	RulerTenantShardSize         int     `yaml:"ruler_tenant_shard_size"`
	IngestionTenantShardSize     int     `yaml:"ingestion_tenant_shard_size"`
	// MaxQueriersPerTenant is the tenant's shuffle shard of queriers in
	// the query-frontend's and the query-scheduler's queues.
	MaxQueriersPerTenant float64 `yaml:"max_queriers_per_tenant"`
	// MaxOutstandingPerTenant bounds the tenant's queued queries in each
	// query-frontend's and query-scheduler's queue; beyond it, 429.
	MaxOutstandingPerTenant int `yaml:"max_outstanding_requests_per_tenant"`
	// MaxQueryResponseSize bounds the bytes of one query's answer the
	// query-frontend takes from its queriers; 0 means unlimited.
	MaxQueryResponseSize int64 `yaml:"max_query_response_size"`
	// QueryRejection refuses the tenant's queries matching its attributes.
	QueryRejection QueryRejection `yaml:"query_rejection"`
	// QueryPriority orders the tenant's queued queries.
	QueryPriority QueryPriority `yaml:"query_priority"`

	// A tenant's Alertmanager: its configuration, silences and alerts; 0
	// means unlimited.
	AlertmanagerMaxConfigSizeBytes   int `yaml:"alertmanager_max_config_size_bytes"`
	AlertmanagerMaxTemplatesCount    int `yaml:"alertmanager_max_templates_count"`
	AlertmanagerMaxTemplateSizeBytes int `yaml:"alertmanager_max_template_size_bytes"`
	AlertmanagerMaxSilencesCount     int `yaml:"alertmanager_max_silences_count"`
	AlertmanagerMaxSilencesSizeBytes int `yaml:"alertmanager_max_silences_size_bytes"`
	AlertmanagerMaxAlertsCount       int `yaml:"alertmanager_max_alerts_count"`
	AlertmanagerMaxAlertsSizeBytes   int `yaml:"alertmanager_max_alerts_size_bytes"`
	// Aggregation groups of the tenant's dispatcher.
	AlertmanagerMaxDispatcherAggregationGroups int `yaml:"alertmanager_max_dispatcher_aggregation_groups"`
	// Notifications per second the tenant's Alertmanager sends, overall
	// and by integration.
	AlertmanagerNotificationRateLimit               float64                  `yaml:"alertmanager_notification_rate_limit"`
	AlertmanagerNotificationRateLimitPerIntegration NotificationRateLimitMap `yaml:"alertmanager_notification_rate_limit_per_integration"`
	// Addresses the tenant's receivers may not connect to.
	AlertmanagerReceiversBlockCIDRNetworks     CIDRList `yaml:"alertmanager_receivers_firewall_block_cidr_networks"`
	AlertmanagerReceiversBlockPrivateAddresses bool     `yaml:"alertmanager_receivers_firewall_block_private_addresses"`
}

// RegisterFlags registers the defaults that apply to every tenant.
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	f.Float64Var(&l.IngestionRate, "distributor.ingestion-rate-limit", 25000, "Per-tenant ingestion rate limit in samples per second. 0 means no limit (Cortex lets only the first -distributor.ingestion-burst-size samples through at 0).")
	f.BoolVar(&l.AcceptHASamples, "distributor.ha-tracker.enable-for-all-users", false, "Deduplicate the samples of HA Prometheus pairs for every tenant (needs -distributor.ha-tracker.enable); the per-tenant accept_ha_samples overrides it.")
	f.StringVar(&l.HAClusterLabel, "distributor.ha-tracker.cluster", "cluster", "Label naming a tenant's HA cluster of Prometheus replicas.")
	f.StringVar(&l.HAReplicaLabel, "distributor.ha-tracker.replica", "__replica__", "Label naming the Prometheus replica within an HA cluster; removed from the stored samples of the elected replica.")
	f.IntVar(&l.HAMaxClusters, "distributor.ha-tracker.max-clusters", 0, "Most HA clusters tracked per tenant; a new cluster over it is refused with 400. 0 means unlimited.")
	f.IntVar(&l.IngestionBurstSize, "distributor.ingestion-burst-size", 50000, "Per-tenant burst size, in samples, allowed above the ingestion rate.")
	f.StringVar(&l.IngestionRateStrategy, "distributor.ingestion-rate-limit-strategy", LocalIngestionRateStrategy, "Whether the ingestion rate limits apply to each distributor (local) or to the cluster (global): with global, each distributor allows the limit divided by the healthy distributors of the distributor ring (-distributor.ring.*), which every distributor then joins. The burst sizes are not divided.")
	l.NativeHistogramIngestionRate = math.MaxFloat64
	f.Float64Var(&l.NativeHistogramIngestionRate, "distributor.native-histogram-ingestion-rate-limit", math.MaxFloat64, "Per-tenant ingestion rate limit of native histogram samples, per second, applied besides -distributor.ingestion-rate-limit: over it, a push's native histograms are dropped (its float samples kept). The default means no limit.")
	f.IntVar(&l.NativeHistogramIngestionBurstSize, "distributor.native-histogram-ingestion-burst-size", 0, "Per-tenant burst size, in native histogram samples, allowed above -distributor.native-histogram-ingestion-rate-limit (needed, at least 1, when that limit is set).")
	f.BoolVar(&l.AcceptMixedHASamples, "experimental.distributor.ha-tracker.mixed-ha-samples", false, "With HA deduplication, elect a replica per series rather than per request: a request may mix series of several HA clusters and series without HA labels; only the elected replicas' series are kept. Supported only with -distributor.ha-tracker.enable-for-all-users (accept_ha_samples).")
	f.Var((*flagext.StringSlice)(&l.DropLabels), "distributor.drop-label", "Label name removed from every series by the distributor before validation and sharding; repeat the flag to drop several. A series left without labels is discarded.")
	f.IntVar(&l.MaxNativeHistogramSampleSizeBytes, "validation.max-native-histogram-sample-size-bytes", 0, "Largest native histogram sample accepted, in bytes as encoded in the write request; a larger one is discarded. 0 means unlimited.")
	f.BoolVar(&l.EnforceMetadataMetricName, "validation.enforce-metadata-metric-name", true, "Refuse metadata without a metric family name.")
	f.IntVar(&l.MaxNativeHistogramBuckets, "validation.max-native-histogram-buckets", 0, "Most positive and negative buckets of one native histogram sample: the distributor reduces the resolution of a histogram with more until it fits, and discards it if the lowest resolution still has more. 0 means unlimited.")
	f.BoolVar(&l.EnableNativeHistograms, "blocks-storage.tsdb.enable-native-histograms", false, "Store native histogram samples. When false, the ingesters discard them (counted in cortex_discarded_samples_total with reason native-histogram-sample) and store the float samples of the same push.")
	f.IntVar(&l.MaxNativeHistogramSeriesPerUser, "ingester.max-native-histogram-series-per-user", 0, "Maximum active native histogram series per tenant, per ingester. 0 means unlimited.")
	f.IntVar(&l.MaxGlobalSeriesPerUser, "ingester.max-global-series-per-user", 0, "Maximum active series per tenant across the cluster: each ingester allows this divided by the healthy ingesters of the ring (the tenant's shard size with shuffle sharding) times the replication factor. Needs -distributor.shard-by-all-labels. 0 means unlimited.")
	f.IntVar(&l.MaxGlobalSeriesPerMetric, "ingester.max-global-series-per-metric", 0, "Maximum active series per metric name across the cluster, shared over the ingesters as -ingester.max-global-series-per-user is (without -distributor.shard-by-all-labels each ingester allows it whole). 0 means unlimited.")
	f.IntVar(&l.MaxGlobalNativeHistogramSeriesPerUser, "ingester.max-global-native-histogram-series-per-user", 0, "Maximum active native histogram series per tenant across the cluster, shared over the ingesters as -ingester.max-global-series-per-user is. 0 means unlimited.")
	f.IntVar(&l.MaxGlobalMetadataPerUser, "ingester.max-global-metadata-per-user", 0, "Maximum metric families with metadata per tenant across the cluster, shared over the ingesters as -ingester.max-global-series-per-user is. 0 means unlimited.")
	f.IntVar(&l.MaxGlobalMetadataPerMetric, "ingester.max-global-metadata-per-metric", 0, "Maximum distinct metadata per metric family across the cluster, shared over the ingesters as -ingester.max-global-series-per-metric is. 0 means unlimited.")
	f.IntVar(&l.RulerMaxRulesPerRuleGroup, "ruler.max-rules-per-rule-group", 0, "Maximum number of rules in one of the tenant's rule groups: the ruler API refuses a larger group. 0 means unlimited.")
	f.IntVar(&l.RulerMaxRuleGroupsPerTenant, "ruler.max-rule-groups-per-tenant", 0, "Maximum number of rule groups of the tenant, all namespaces together: the ruler API refuses a group beyond it. 0 means unlimited.")
	f.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 30, "Maximum number of label names per series.")
	f.IntVar(&l.MaxLabelNameLength, "validation.max-length-label-name", 1024, "Maximum length accepted for label names.")
	f.IntVar(&l.MaxLabelValueLength, "validation.max-length-label-value", 2048, "Maximum length accepted for label values.")
	f.IntVar(&l.MaxLabelsSizeBytes, "validation.max-labels-size-bytes", 0, "Maximum combined size in bytes of a series' label names and values, as encoded in the write request: a larger series is refused with 400. 0 means unlimited.")
	f.BoolVar(&l.EnableTypeAndUnitLabels, "distributor.enable-type-and-unit-labels", false, "EXPERIMENTAL: If true, the __type__ and __unit__ labels are added to metrics. This applies to remote write v2 and OTLP requests (where -distributor.otlp.enable-type-and-unit-labels does it for every tenant).")
	f.IntVar(&l.MaxRegexPatternLength, "validation.max-regex-pattern-length", 0, "Maximum length (in bytes) of an unoptimized regex pattern. This is a pre-flight check to reject expensive regex queries. 0 to disable. This is only enforced in Ingester, with -ingester.enable-regex-matcher-limits.")
	f.IntVar(&l.MaxLabelCardinalityForUnoptimizedRegex, "validation.max-label-cardinality-for-unoptimized-regex", 0, "Maximum cardinality of a label that can be queried with an unoptimized regex matcher. If exceeded, the query will be rejected with a limit error. 0 to disable. This is only enforced in Ingester, with -ingester.enable-regex-matcher-limits.")
	f.IntVar(&l.MaxTotalLabelValueLengthForUnoptimizedRegex, "validation.max-total-label-value-length-for-unoptimized-regex", 0, "Maximum total length (in bytes) of all label values combined for an unoptimized regex matcher. If exceeded, the query will be rejected with a limit error. 0 to disable. This is only enforced in Ingester, with -ingester.enable-regex-matcher-limits.")
	f.IntVar(&l.MaxMetadataLength, "validation.max-metadata-length", 1024, "Maximum length accepted for metric metadata (name, help, unit).")
	f.BoolVar(&l.RejectOldSamples, "validation.reject-old-samples", false, "Reject samples older than -validation.reject-old-samples.max-age.")
	_ = l.RejectOldSamplesMaxAge.Set("14d")
	f.Var(&l.RejectOldSamplesMaxAge, "validation.reject-old-samples.max-age", "Maximum age of accepted samples when -validation.reject-old-samples is set.")
	_ = l.CreationGracePeriod.Set("10m")
	f.Var(&l.CreationGracePeriod, "validation.create-grace-period", "How far in the future a sample's timestamp may be.")
	f.BoolVar(&l.EnforceMetricName, "validation.enforce-metric-name", true, "Reject series without a metric name.")
	f.IntVar(&l.MaxSeriesPerUser, "ingester.max-series-per-user", 5000000, "Maximum active series per tenant, per ingester. 0 means unlimited.")
	f.IntVar(&l.MaxSeriesPerMetric, "ingester.max-series-per-metric", 50000, "Maximum active series per metric name, per ingester. 0 means unlimited.")
	f.IntVar(&l.MaxMetadataPerUser, "ingester.max-metadata-per-user", 8000, "Maximum metric families with metadata per tenant, per ingester: metadata of a family beyond it is dropped (counted in cortex_discarded_metadata_total), the samples of its push stored. 0 means unlimited.")
	f.IntVar(&l.MaxMetadataPerMetric, "ingester.max-metadata-per-metric", 10, "Maximum distinct metadata (type, help and unit) per metric family, per ingester: another is dropped (counted in cortex_discarded_metadata_total) until an older one is forgotten after -ingester.metadata-retain-period. 0 means unlimited.")
	f.Var(&l.OutOfOrderTimeWindow, "ingester.out-of-order-time-window", "How far behind a series' newest sample an out-of-order sample may be and still be accepted. 0 refuses out-of-order samples.")
	f.IntVar(&l.MaxExemplars, "ingester.max-exemplars", 100000, "Exemplars kept per tenant, per ingester. A tenant's buffer starts at 1,024 and doubles before it could overwrite an exemplar, up to this limit, so tenants that send few exemplars cost little memory. 0 turns exemplar storage off.")
	f.IntVar(&l.MaxExemplars, "blocks-storage.tsdb.max-exemplars", 100000, "Deprecated: use -ingester.max-exemplars (the same setting; given both, the later on the command line wins).")
	f.IntVar(&l.MaxSeriesPerQuery, "querier.max-series-per-query", 0, "Maximum series a query may touch. 0 means unlimited.")
	f.Var(&l.CompactorBlocksRetentionPeriod, "compactor.blocks-retention-period", "Delete a tenant's blocks in long-term storage once all of their samples are older than this. 0 keeps them. A per-tenant limit: the runtime configuration can set it per tenant.")
	f.Int64Var(&l.CompactorPartitionIndexSizeBytes, "compactor.partition-index-size-bytes", 68719476736, "Index size limit in bytes for each compaction partition. 0 means no limit")
	f.Int64Var(&l.CompactorPartitionSeriesCount, "compactor.partition-series-count", 0, "Time series count limit for each compaction partition. 0 means no limit")
	f.Float64Var(&l.CompactorTenantShardSize, "compactor.tenant-shard-size", 0, "The default tenant's shard size when the shuffle-sharding strategy is used by the compactor. When this setting is specified in the per-tenant overrides, a value of 0 disables shuffle sharding for the tenant. If the value is < 1 and > 0 the shard size will be a percentage of the total compactors")
	f.IntVar(&l.StoreGatewayTenantShardSize, "store-gateway.tenant-shard-size", 0, "The tenant's shard size with -store-gateway.sharding-strategy=shuffle-sharding: how many store-gateways of the ring hold its blocks. 0 means all of them.")
	f.IntVar(&l.MaxDownloadedBytesPerRequest, "store-gateway.max-downloaded-bytes-per-request", 0, "The maximum number of data bytes to download per gRPC request in Store Gateway, including Series/LabelNames/LabelValues requests. 0 to disable.")
	f.IntVar(&l.IngestionTenantShardSize, "distributor.ingestion-tenant-shard-size", 0, "The tenant's shard size with -distributor.sharding-strategy=shuffle-sharding: how many ingesters of the ring receive its series and answer its queries. With -distributor.zone-awareness-enabled it is rounded up to a multiple of the zones, taking as many from each zone. 0 means all of them.")
	f.Float64Var(&l.MaxQueriersPerTenant, "frontend.max-queriers-per-tenant", 0, "Maximum number of queriers that can handle requests for a single tenant, in the query-frontend's queue and the query-scheduler's: the tenant's queries go only to this subset of the connected queriers, the same subset in every frontend and scheduler. A value below 1 is a fraction of the connected queriers (at least one). 0 means every querier.")
	f.IntVar(&l.MaxOutstandingPerTenant, "frontend.max-outstanding-requests-per-tenant", 100, "Maximum number of outstanding requests per tenant per request queue (either query frontend or query scheduler); requests beyond this error with HTTP 429.")
	f.BoolVar(&l.QueryRejection.Enabled, "frontend.query-rejection.enabled", false, "Whether query rejection is enabled: the query-frontend refuses, with 422, the tenant's queries matching any of its query_rejection.query_attributes (set in the configuration file or the runtime configuration).")
	f.BoolVar(&l.QueryPriority.Enabled, "frontend.query-priority.enabled", false, "Whether queries are assigned with priorities: the query-frontend gives each of the tenant's queries the priority of the first of its query_priority.priorities (set in the configuration file or the runtime configuration) one of whose query_attributes matches it, and the query-frontend's and query-scheduler's queues hand out the tenant's higher priorities first, some queriers reserved to them (reserved_queriers).")
	f.Int64Var(&l.QueryPriority.DefaultPriority, "frontend.query-priority.default-priority", 0, "Priority assigned to all queries by default. Must be a unique value. Use this as a baseline to make certain queries higher/lower priority.")
	f.Int64Var(&l.MaxQueryResponseSize, "frontend.max-query-response-size", 0, "The maximum total uncompressed query response size, in bytes: the answers of the queriers to one query or query_range request, summed over its split and shard queries, enforced by the query-frontend (422 naming the limit). 0 to disable.")
	f.IntVar(&l.RulerTenantShardSize, "ruler.tenant-shard-size", 0, "The tenant's shard size with -ruler.sharding-strategy=shuffle-sharding: how many rulers of the ring evaluate its rule groups. 0 means all of them.")
	f.IntVar(&l.MaxQueryExpressionSizeBytes, "query-frontend.max-query-expression-size-bytes", 128<<10, "Longest PromQL expression, in bytes, accepted in a query or a match[] selector, by the query-frontend and the querier, checked before parsing. 0 means unlimited.")
	f.IntVar(&l.MaxQueryExpressionDepth, "query-frontend.max-query-expression-depth", 256, "Deepest nesting accepted in a PromQL expression (query or match[] selector), checked before parsing by a scan of the text: each bracket, unary operator and binary operator of a chain adds a level. The parser's time grows with the square of the nesting and cannot be interrupted. 0 means unlimited.")
	f.IntVar(&l.QueryVerticalShardSize, "frontend.query-vertical-shard-size", 0, "Number of shards the query-frontend splits a shardable query into (aggregations by or without labels, and what they are built of): each shard query reads only the series whose grouping labels hash to it, runs on its own querier, and the answers are joined. 0 or 1 disables query sharding.")
	f.IntVar(&l.MaxQueryParallelism, "querier.max-query-parallelism", 14, "Maximum number of split (by time) and shard queries of one client query the query-frontend runs at once; 0 runs them one at a time.")
	f.IntVar(&l.MaxFetchedChunksPerQuery, "querier.max-fetched-chunks-per-query", 2000000, "Maximum chunks a query may fetch from the ingesters and store-gateways together, every replica's answer counted, checked as the answers arrive; a query over it is refused with 422. 0 means unlimited.")
	f.IntVar(&l.MaxFetchedSamplesPerQry, "querier.max-fetched-samples-per-query", 0, "Maximum samples a query may fetch from ingesters, counted as the samples of the chunks fetched (whole chunks, which may reach outside the query's range; identical replicas of a series once). 0 means unlimited.")
	f.IntVar(&l.MaxFetchedSeriesPerQuery, "querier.max-fetched-series-per-query", 0, "Maximum unique series a query may fetch from the ingesters, counted as each ingester's answer arrives (replicas of a series once). 0 means unlimited.")
	f.IntVar(&l.MaxFetchedChunkBytesPerQuery, "querier.max-fetched-chunk-bytes-per-query", 0, "Maximum bytes of chunk data a query may fetch from the ingesters, every replica's answer counted, checked as the answers arrive. 0 means unlimited.")
	f.IntVar(&l.MaxFetchedDataBytesPerQuery, "querier.max-fetched-data-bytes-per-query", 0, "Maximum bytes a query may fetch from the ingesters, labels and chunks (or samples) of every replica's answer as encoded on the wire, checked as the answers arrive. 0 means unlimited.")
	f.Var(&l.MaxQueryLookback, "querier.max-query-lookback", "How far back a query may read: the start of a query, remote read, series, labels or exemplars request older than now minus this is moved up to it (the answer covers less, without an error). 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxConfigSizeBytes, "alertmanager.max-config-size-bytes", 0, "Largest Alertmanager configuration, in bytes, a tenant may upload (the request body of the configuration API); a stored configuration over it (alertmanager_config and templates together) is not loaded. 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxTemplatesCount, "alertmanager.max-templates-count", 0, "Most template files in a tenant's Alertmanager configuration: the configuration API refuses more, and a stored configuration with more is not loaded. 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxTemplateSizeBytes, "alertmanager.max-template-size-bytes", 0, "Largest template file, in bytes, in a tenant's Alertmanager configuration: the configuration API refuses a larger one, and a stored configuration with one is not loaded. 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxSilencesCount, "alertmanager.max-silences-count", 0, "Most silences a tenant's Alertmanager holds, expired ones included until their retention ends: a new silence over it is refused with 400. 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxSilencesSizeBytes, "alertmanager.max-silences-size-bytes", 0, "Largest silence, in bytes as stored, a tenant may create: a larger one is refused with 400. 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxAlertsCount, "alertmanager.max-alerts-count", 0, "Most alerts a tenant's Alertmanager holds: a new alert beyond it is not stored (logged, and counted in alertmanager_alerts_insert_limited_total); updates of held alerts are. 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxAlertsSizeBytes, "alertmanager.max-alerts-size-bytes", 0, "Largest total size, in bytes, of the alerts a tenant's Alertmanager holds (labels, annotations and generator URL): a new alert beyond it is not stored (logged, and counted in alertmanager_alerts_insert_limited_total). 0 means unlimited.")
	f.IntVar(&l.AlertmanagerMaxDispatcherAggregationGroups, "alertmanager.max-dispatcher-aggregation-groups", 0, "Most aggregation groups a tenant's Alertmanager dispatcher holds: an alert that would start another is not notified (counted in alertmanager_dispatcher_aggregation_group_limit_reached_total). 0 means unlimited.")
	f.Float64Var(&l.AlertmanagerNotificationRateLimit, "alertmanager.notification-rate-limit", 0, "Notifications per second a tenant's Alertmanager sends, for each integration of each receiver (a notification of several alerts counts once); a notification over it is dropped, logged and counted in cortex_alertmanager_notification_rate_limited_total. 0 means no limit; a negative value allows no notification.")
	f.Var(&l.AlertmanagerNotificationRateLimitPerIntegration, "alertmanager.notification-rate-limit-per-integration", "Notification rate limits by integration, as a JSON object of integration names to notifications per second ({\"webhook\": 10}); an integration listed here is limited by its rate rather than -alertmanager.notification-rate-limit. Integrations: "+strings.Join(NotificationIntegrations, ", ")+".")
	f.Var(&l.AlertmanagerReceiversBlockCIDRNetworks, "alertmanager.receivers-firewall-block-cidr-networks", "Comma-separated CIDR networks (10.0.0.0/8,fd00::/8) the receivers of a tenant's Alertmanager may not connect to: a notification to an address in them fails (logged, counted in alertmanager_notifications_failed_total). Checked on the address connected to, after DNS resolution (for email receivers, on the smarthost's addresses before each send).")
	f.BoolVar(&l.AlertmanagerReceiversBlockPrivateAddresses, "alertmanager.receivers-firewall-block-private-addresses", false, "Keep the receivers of a tenant's Alertmanager from connecting to private (RFC 1918, RFC 4193), loopback and link-local addresses, as -alertmanager.receivers-firewall-block-cidr-networks does for its networks.")
	f.Var(&l.MaxQueryLength, "store.max-query-length", "Longest time range a query may read (end minus start, for PromQL including range selectors and the lookback delta), applied by the querier to queries, remote read, series, labels and exemplars after -querier.max-query-lookback; longer ones are refused with 422. 0 means unlimited.")
}

// Validate checks limits that would make no sense.
func (l *Limits) Validate() error {
	if l.IngestionRate < 0 || l.IngestionBurstSize < 0 {
		return errors.New("ingestion rate and burst size must not be negative")
	}
	if l.IngestionRateStrategy != LocalIngestionRateStrategy && l.IngestionRateStrategy != GlobalIngestionRateStrategy {
		return fmt.Errorf("-distributor.ingestion-rate-limit-strategy (ingestion_rate_strategy) must be %q or %q, got %q", LocalIngestionRateStrategy, GlobalIngestionRateStrategy, l.IngestionRateStrategy)
	}
	if l.NativeHistogramIngestionRate < 0 || l.NativeHistogramIngestionBurstSize < 0 {
		return errors.New("-distributor.native-histogram-ingestion-rate-limit and -distributor.native-histogram-ingestion-burst-size must not be negative")
	}
	if l.NativeHistogramIngestionRate < math.MaxFloat64 && l.NativeHistogramIngestionBurstSize < 1 {
		return fmt.Errorf("-distributor.native-histogram-ingestion-rate-limit %v needs -distributor.native-histogram-ingestion-burst-size (native_histogram_ingestion_burst_size) of at least 1: with 0 every native histogram would be refused", l.NativeHistogramIngestionRate)
	}
	if l.AcceptMixedHASamples && !l.AcceptHASamples {
		return errors.New("-experimental.distributor.ha-tracker.mixed-ha-samples (accept_mixed_ha_samples) needs -distributor.ha-tracker.enable-for-all-users (accept_ha_samples)")
	}
	for _, name := range l.DropLabels {
		if name == "" {
			return errors.New("-distributor.drop-label (drop_labels) holds an empty label name")
		}
	}
	if l.MaxNativeHistogramSampleSizeBytes < 0 || l.MaxNativeHistogramBuckets < 0 || l.MaxNativeHistogramSeriesPerUser < 0 {
		return errors.New("-validation.max-native-histogram-sample-size-bytes, -validation.max-native-histogram-buckets and -ingester.max-native-histogram-series-per-user must not be negative (0 means unlimited)")
	}
	if l.MaxGlobalSeriesPerUser < 0 || l.MaxGlobalSeriesPerMetric < 0 || l.MaxGlobalNativeHistogramSeriesPerUser < 0 || l.MaxGlobalMetadataPerUser < 0 || l.MaxGlobalMetadataPerMetric < 0 {
		return errors.New("-ingester.max-global-series-per-user, -ingester.max-global-series-per-metric, -ingester.max-global-native-histogram-series-per-user, -ingester.max-global-metadata-per-user and -ingester.max-global-metadata-per-metric must not be negative (0 means unlimited)")
	}
	if l.HAMaxClusters < 0 {
		return fmt.Errorf("-distributor.ha-tracker.max-clusters (ha_max_clusters) must not be negative (0 means unlimited), got %d", l.HAMaxClusters)
	}
	if l.AcceptHASamples && (l.HAClusterLabel == "" || l.HAReplicaLabel == "" || l.HAClusterLabel == l.HAReplicaLabel) {
		return fmt.Errorf("accept_ha_samples needs two different labels in ha_cluster_label and ha_replica_label (-distributor.ha-tracker.cluster, -distributor.ha-tracker.replica), got %q and %q", l.HAClusterLabel, l.HAReplicaLabel)
	}
	if l.CompactorPartitionIndexSizeBytes < 0 {
		return fmt.Errorf("-compactor.partition-index-size-bytes must not be negative (0 disables the limit), got %d", l.CompactorPartitionIndexSizeBytes)
	}
	if l.CompactorPartitionSeriesCount < 0 {
		return fmt.Errorf("-compactor.partition-series-count must not be negative (0 disables the limit), got %d", l.CompactorPartitionSeriesCount)
	}
	if l.MaxDownloadedBytesPerRequest < 0 {
		return fmt.Errorf("-store-gateway.max-downloaded-bytes-per-request must not be negative (0 disables the limit), got %d", l.MaxDownloadedBytesPerRequest)
	}
	if l.CompactorTenantShardSize < 0 {
		return fmt.Errorf("-compactor.tenant-shard-size must not be negative (0 means every compactor), got %v", l.CompactorTenantShardSize)
	}
	if l.StoreGatewayTenantShardSize < 0 {
		return fmt.Errorf("-store-gateway.tenant-shard-size must not be negative (0 means every store-gateway), got %d", l.StoreGatewayTenantShardSize)
	}
	if l.IngestionTenantShardSize < 0 {
		return fmt.Errorf("-distributor.ingestion-tenant-shard-size must not be negative (0 means every ingester), got %d", l.IngestionTenantShardSize)
	}
	if l.RulerTenantShardSize < 0 {
		return fmt.Errorf("-ruler.tenant-shard-size must not be negative (0 means every ruler), got %d", l.RulerTenantShardSize)
	}
	if l.MaxQueriersPerTenant < 0 {
		return fmt.Errorf("-frontend.max-queriers-per-tenant (max_queriers_per_tenant) must not be negative (0 means every querier), got %v", l.MaxQueriersPerTenant)
	}
	if l.MaxOutstandingPerTenant < 0 {
		return fmt.Errorf("-frontend.max-outstanding-requests-per-tenant (max_outstanding_requests_per_tenant) must not be negative, got %d", l.MaxOutstandingPerTenant)
	}
	if err := l.QueryRejection.Validate(); err != nil {
		return err
	}
	if err := l.QueryPriority.Validate(); err != nil {
		return err
	}
	if l.MaxQueryResponseSize < 0 {
		return fmt.Errorf("-frontend.max-query-response-size (max_query_response_size) must not be negative (0 means unlimited), got %d", l.MaxQueryResponseSize)
	}
	if l.QueryVerticalShardSize < 0 || l.QueryVerticalShardSize > MaxQueryVerticalShardSize {
		return fmt.Errorf("-frontend.query-vertical-shard-size (query_vertical_shard_size) must be between 0 and %d, got %d", MaxQueryVerticalShardSize, l.QueryVerticalShardSize)
	}
	if l.MaxQueryParallelism < 0 {
		return fmt.Errorf("-querier.max-query-parallelism (max_query_parallelism) must not be negative, got %d", l.MaxQueryParallelism)
	}
	if l.MaxFetchedChunksPerQuery < 0 {
		return fmt.Errorf("-querier.max-fetched-chunks-per-query (max_fetched_chunks_per_query) must not be negative (0 means unlimited), got %d", l.MaxFetchedChunksPerQuery)
	}
	if l.MaxMetadataPerUser < 0 || l.MaxMetadataPerMetric < 0 {
		return fmt.Errorf("-ingester.max-metadata-per-user (max_metadata_per_user) and -ingester.max-metadata-per-metric (max_metadata_per_metric) must not be negative (0 means unlimited), got %d and %d", l.MaxMetadataPerUser, l.MaxMetadataPerMetric)
	}
	if l.MaxLabelsSizeBytes < 0 {
		return fmt.Errorf("-validation.max-labels-size-bytes (max_labels_size_bytes) must not be negative (0 means unlimited), got %d", l.MaxLabelsSizeBytes)
	}
	if l.MaxRegexPatternLength < 0 || l.MaxLabelCardinalityForUnoptimizedRegex < 0 || l.MaxTotalLabelValueLengthForUnoptimizedRegex < 0 {
		return fmt.Errorf("-validation.max-regex-pattern-length, -validation.max-label-cardinality-for-unoptimized-regex and -validation.max-total-label-value-length-for-unoptimized-regex must not be negative (0 disables them), got %d, %d and %d", l.MaxRegexPatternLength, l.MaxLabelCardinalityForUnoptimizedRegex, l.MaxTotalLabelValueLengthForUnoptimizedRegex)
	}
	if l.CompactorBlocksRetentionPeriod < 0 {
		return errors.New("-compactor.blocks-retention-period must not be negative")
	}
	if l.MaxQueryExpressionSizeBytes < 0 {
		return fmt.Errorf("-query-frontend.max-query-expression-size-bytes must not be negative (0 means unlimited), got %d", l.MaxQueryExpressionSizeBytes)
	}
	if l.MaxQueryExpressionDepth < 0 {
		return fmt.Errorf("-query-frontend.max-query-expression-depth must not be negative (0 means unlimited), got %d", l.MaxQueryExpressionDepth)
	}
	if l.MaxQueryLookback < 0 || l.MaxQueryLength < 0 {
		return fmt.Errorf("-querier.max-query-lookback (max_query_lookback) and -store.max-query-length (max_query_length) must not be negative (0 means unlimited), got %s and %s", l.MaxQueryLookback, l.MaxQueryLength)
	}
	if l.MaxFetchedSeriesPerQuery < 0 || l.MaxFetchedChunkBytesPerQuery < 0 || l.MaxFetchedDataBytesPerQuery < 0 {
		return errors.New("-querier.max-fetched-series-per-query, -querier.max-fetched-chunk-bytes-per-query and -querier.max-fetched-data-bytes-per-query must not be negative (0 means unlimited)")
	}
	if l.AlertmanagerMaxConfigSizeBytes < 0 || l.AlertmanagerMaxTemplatesCount < 0 || l.AlertmanagerMaxTemplateSizeBytes < 0 || l.AlertmanagerMaxSilencesCount < 0 || l.AlertmanagerMaxSilencesSizeBytes < 0 ||
		l.AlertmanagerMaxAlertsCount < 0 || l.AlertmanagerMaxAlertsSizeBytes < 0 || l.AlertmanagerMaxDispatcherAggregationGroups < 0 {
		return errors.New("-alertmanager.max-config-size-bytes, -alertmanager.max-templates-count, -alertmanager.max-template-size-bytes, -alertmanager.max-silences-count, -alertmanager.max-silences-size-bytes, -alertmanager.max-alerts-count, -alertmanager.max-alerts-size-bytes and -alertmanager.max-dispatcher-aggregation-groups must not be negative (0 means unlimited)")
	}
	if l.IngestionRate > 0 && float64(l.IngestionBurstSize) < 1 {
		return errors.New("-distributor.ingestion-burst-size must be at least 1 when a rate limit is set")
	}
	return nil
}

// Overrides answers the limits of each tenant: the flag defaults, replaced
// field by field by the tenant's block in the runtime configuration file.
type Overrides struct {
	defaults Limits
	tenants  func() map[string]*Limits
}

// NewOverrides returns the limits for every tenant. tenants returns the
// current per-tenant overrides (nil for none); it is called on every lookup
// so a reloaded runtime file applies at once.
func NewOverrides(defaults Limits, tenants func() map[string]*Limits) *Overrides {
	if tenants == nil {
		tenants = func() map[string]*Limits { return nil }
	}
	return &Overrides{defaults: defaults, tenants: tenants}
}

// For returns the limits of one tenant, or of a query reading several
// ("a|b"): the smallest positive of theirs.
func (o *Overrides) For(tenantID string) *Limits {
	if ids, ok := several(tenantID); ok {
		return o.forTenants(ids)
	}
	if l, ok := o.tenants()[tenantID]; ok && l != nil {
		return l
	}
	return &o.defaults
}

// RuntimeConfig is the content of -runtime-config.file.
type RuntimeConfig struct {
	Overrides map[string]*Limits `yaml:"overrides"`
}

// Loader returns a runtime-config loader that starts every tenant's block
// from defaults, so a block lists only what differs. Unknown fields are an
// error naming the line, and a bad file keeps the last good one in use.
func Loader(defaults Limits) func(r io.Reader) (any, error) {
	return func(r io.Reader) (any, error) {
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		var raw struct {
			Overrides map[string]yaml.Node `yaml:"overrides"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("runtime config: %w", err)
		}
		overrides, err := DecodeOverrides(defaults, raw.Overrides)
		if err != nil {
			return nil, fmt.Errorf("runtime config: %w", err)
		}
		return &RuntimeConfig{Overrides: overrides}, nil
	}
}

// decodeStrict decodes a YAML node refusing unknown fields, which
// yaml.Node.Decode alone does not do.
func decodeStrict(node *yaml.Node, into any) error {
	out, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Durations as time.Duration, for callers.
func (l *Limits) OutOfOrderWindow() time.Duration { return time.Duration(l.OutOfOrderTimeWindow) }
