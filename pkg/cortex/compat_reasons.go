package cortex

// The reasons behind docs/cortex-compatibility.md: why a Cortex flag that
// exists here has another default, and which Cortex features (and so
// flags) are not built here, and why. TestCortexCompatibility fails on a
// Cortex flag none of these tables explains. A Cortex flag, or its key in a
// configuration file, that is not accepted here is refused with the same
// reason (notBuiltReason).

import (
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/cortex-tls/cortex/pkg/cortex/cortexcompat"
)

// compatDefaultReasons says, per flag, why this system's default differs
// from Cortex's.
var compatDefaultReasons = map[string]string{
	"api.build-info-enabled":                         "on: Grafana reads the Prometheus API's build information to pick its query features, and it tells an operator which version answers",
	"server.cors-origin":                             "no other site's page may read the Prometheus API's answers, which a browser may obtain with its user's client certificate; Grafana's server-side data source needs no CORS",
	"server.http-listen-port":                        "9009, the port every doc and example uses, rather than 80, which needs root",
	"server.http-conn-limit":                         "every resource one client can consume is bounded: 4096 connections",
	"server.grpc-conn-limit":                         "every resource one client can consume is bounded: 4096 connections",
	"server.tls-min-version":                         "TLS 1.2 at least, the security baseline",
	"server.grpc-max-recv-msg-size-bytes":            "100 MiB, as Cortex's clients send (its server default of 4 MiB refuses their large pushes and query answers)",
	"server.grpc-max-send-msg-size-bytes":            "100 MiB, as Cortex's clients receive",
	"server.grpc.keepalive.max-connection-idle":      "idle gRPC connections are closed after 15m rather than never: a bounded resource",
	"server.grpc.keepalive.time":                     "a dead peer is found within a minute rather than two hours",
	"distributor.shard-by-all-labels":                "series spread over the ingesters by all their labels, the only sharding the blocks storage supports (Cortex requires it with blocks)",
	"distributor.remote-writev2-enabled":             "Prometheus remote write 2.0 accepted by default",
	"querier.max-subquery-steps":                     "a subquery's steps are bounded (11,000, Prometheus' range query limit) rather than unbounded",
	"ingester.client.grpc-max-send-msg-size":         "100 MiB, so a large push is not refused by the client itself",
	"ring.store":                                     "the in-memory ring: -target=all needs no KV service; a cluster names memberlist, consul or etcd",
	"ingester.lifecycler.interface":                  "the ring library's (dskit's) default; -ingester.lifecycler.addr names the address on hosts without eth0",
	"ingester.final-sleep":                           "the ring library's (dskit's) default: a stopping ingester exits once it has left the ring",
	"ingester.max-exemplars":                         "exemplars kept by default (100,000 per tenant), as remote write 2.0 sends them",
	"blocks-storage.tsdb.max-exemplars":              "exemplars kept by default (100,000 per tenant), as remote write 2.0 sends them",
	"querier.frontend-client.grpc-max-send-msg-size": "100 MiB, so a large query answer is not refused by the client itself",
	"querier.split-queries-by-interval":              "24h: long range queries are split by day and run in parallel by default",
	"frontend.memcached.max-item-size":               "1 MiB, memcached's own item limit, rather than unlimited",
	"frontend.fifocache.max-size-bytes":              "the in-memory results cache is bounded to 100 MiB by default",
	"frontend.fifocache.duration":                    "cached results expire after an hour",
	"blocks-storage.backend":                         "the filesystem bucket by default, so a single process runs without object storage",
	"blocks-storage.filesystem.dir":                  "./blocks, so the filesystem bucket works without a flag",
	"blocks-storage.tsdb.dir":                        "the same directory, ./tsdb/",
	"distributor.ring.store":                         "the in-memory ring, as -ring.store",
	"compactor.ring.store":                           "the in-memory ring, as -ring.store",
	"store-gateway.sharding-ring.store":              "the in-memory ring, as -ring.store",
	"ruler.ring.store":                               "the in-memory ring, as -ring.store",
	"ruler.ring.prefix":                              "the ring library's (dskit's) default key prefix",
	"alertmanager.sharding-ring.store":               "the in-memory ring, as -ring.store",
	"alertmanager.sharding-ring.prefix":              "the ring library's (dskit's) default key prefix",
	"ruler-storage.backend":                          "the filesystem bucket by default, so a single process runs without object storage",
	"ruler-storage.filesystem.dir":                   "./ruler, so the filesystem bucket works without a flag",
	"configs.database.uri":                           "an embedded SQLite file, so the configs API runs without PostgreSQL",
	"alertmanager.storage.path":                      "data/alertmanager: the alertmanager owns a directory of its own, never deleting siblings under data/",
	"memberlist.stream-timeout":                      "dskit's 2s: a TLS handshake on loopback or a LAN takes milliseconds",
	"memberlist.abort-if-join-fails":                 "a member starts even when no seed answers yet, so a cluster's processes can start in any order",
	"memberlist.packet-dial-timeout":                 "dskit's 2s",
	"alertmanager-storage.backend":                   "empty picks the configs API when -alertmanager-storage.configs.url (or -alertmanager.configs.url) is set and the filesystem otherwise, so -target=all runs without object storage",
	"alertmanager-storage.filesystem.dir":            "./alertmanager, so the filesystem backend works without a flag",
}

// compatFeature is a Cortex feature, or a group of Cortex settings, not
// built here. Flags match Patterns (path.Match: * matches dots too).
type compatFeature struct {
	Name     string
	Reason   string
	Patterns []string
}

// compatNotBuilt lists Cortex's features whose flags do not exist here, in
// match order: a flag counts towards the first feature it matches.
var compatNotBuilt = []compatFeature{
	{"Object storage options", "not built: Azure connection strings and S3 dual-stack switches (the other bucket flags accepted are Thanos objstore's)",
		[]string{"*.azure.connection-string", "*.s3.disable-dualstack"}},
	{"Chunks storage", "Cortex's chunks storage engine and its flusher: this system stores blocks only",
		[]string{"flusher.*", "store.max-query-length", "ingester.disable-chunk-trimming"}},
	{"Redis caches", "caches are memcached and in-memory; a Redis client is not built",
		[]string{"*.redis.*", "*.redis"}},
	{"DynamoDB KV store", "rings and the HA tracker use memberlist, consul, etcd or multi",
		[]string{"*dynamodb.*"}},
	{"Parquet blocks", "queries read Prometheus TSDB blocks only: no parquet converter or queryable",
		[]string{"parquet-converter.*", "*parquet*"}},
	{"OCI object storage", "buckets are S3, GCS, Azure, Swift or a filesystem",
		[]string{"*.oci.*"}},
	{"Tracing exporters", "no OpenTelemetry or Jaeger trace export; profiling is Go's pprof on /debug/pprof",
		[]string{"tracing.*"}},
	{"Query-scheduler's querier forget delay and message sizes", "a querier that disconnects leaves the tenants' shuffle shards at once; the frontend and scheduler links carry gRPC's message sizes of the server they dial",
		[]string{"query-scheduler.querier-forget-delay", "query-frontend.querier-forget-delay", "frontend.grpc-client-config.grpc-max-*", "query-scheduler.grpc-client-config.grpc-max-*"}},
	{"Alertmanager gossip cluster, state persistence and ring tuning", "a tenant's replicas exchange its silences and notification log over the alertmanager gRPC service (-alertmanager.sharding-enabled), not Alertmanager's own gossip cluster; the state is snapshotted under -alertmanager.storage.path, not persisted to object storage; messages between alertmanagers are bounded at 64 MiB, and the ring has no final sleep or instance state timeout",
		[]string{"alertmanager.cluster.*", "alertmanager.persist-interval", "alertmanager.alertmanager-client.grpc-max-*", "alertmanager.sharding-ring.final-sleep", "alertmanager.sharding-ring.wait-instance-state-timeout"}},
	{"Runtime configuration in object storage", "the runtime configuration is a local file (-runtime-config.file)",
		[]string{"runtime-config.*"}},
	{"Distributor ring and the global ingestion rate strategy", "ingestion rate limits are per distributor (Cortex's local strategy)",
		[]string{"distributor.ring.*", "distributor.ingestion-rate-limit-strategy"}},
	{"Consul over TLS", "dskit's consul client has no TLS settings; use etcd or memberlist over TLS",
		[]string{"*consul.tls-*"}},
	{"Instance limits", "the distributor's instance limits and the ingester's in-flight query limit are not built; connection limits and per-tenant limits bound a client",
		[]string{"*.instance-limits.*"}},
	{"gRPC client backoff, rate limits, compression and health checks", "clients fail a request rather than back off; no client-side rate limit or compression; the ring's heartbeats, not client health checks, take dead instances out",
		[]string{"*.backoff-*", "*grpc-client-rate-limit*", "*.grpc-compression", "*.connect-timeout", "*.healthcheck.*"}},
	{"Memcached auto-discovery, circuit breakers and multi-level caches", "memcached addresses are static or DNS-discovered; one cache level",
		[]string{"*.memcached.auto-discovery", "*.set-async.circuit-breaker.*", "*.multilevel.*", "frontend.memcached.circuit-breaker-*"}},
	{"Per-component tenant allow and deny lists", "every tenant is served by every component; tenants are bound to client identities instead (-auth.client-tenants-file)",
		[]string{"*.enabled-tenants", "*.disabled-tenants"}},
	{"Resource-based query rejection", "no CPU or heap monitor rejects queries; per-tenant query limits bound them",
		[]string{"resource-monitor.*", "*.query-protection.*"}},
	{"Thanos PromQL engine and experimental functions", "queries run on Prometheus' PromQL engine with its standard functions",
		[]string{"*.thanos-engine", "*.optimizers", "*enable-x-functions", "querier.enable-promql-experimental-functions", "querier.enable-dynamic-vertical-sharding"}},
	{"Tenant federation by regular expression", "a query names its tenants joined by '|' (-tenant-federation.enabled); tenants matched by a regular expression in X-Scope-OrgID, which needs the list of tenants from the bucket's user index, are not built",
		[]string{"tenant-federation.regex-matcher-enabled", "tenant-federation.user-sync-interval"}},
	{"Ring detailed metrics", "the rings export dskit's standard metrics",
		[]string{"*.detailed-metrics-enabled"}},
	{"Dynamic query splits", "queries are split by time (-querier.split-queries-by-interval) and by series into the tenant's -frontend.query-vertical-shard-size shards, not into counts derived from the data a query fetches",
		[]string{"querier.enable-dynamic-vertical-sharding", "querier.max-shards-per-query", "querier.max-fetched-data-duration-per-query"}},
	{"Query-frontend queue priorities, rejection and per-tenant querier shards", "the query-frontend's queue is fair between tenants; no priorities, rejection rules or querier shards per tenant",
		[]string{"frontend.query-priority.*", "frontend.query-rejection.*", "frontend.max-queriers-per-tenant", "frontend.max-outstanding-requests-per-tenant", "frontend.retry-on-too-many-outstanding-requests"}},
	{"Query-frontend downstream URL and query statistics", "the query-frontend always queues to the queriers connected to it; no per-query statistics log",
		[]string{"frontend.downstream-url", "frontend.query-stats-enabled", "frontend.enabled-ruler-query-stats", "querier.per-step-stats-enabled", "querier.store-gateway-query-stats-enabled", "ruler.query-stats-enabled"}},
	{"Results cache options", "the results cache is memcached or in memory with the flags listed as accepted; Cortex's background write-back, result compression, FIFO item counts and validity settings are not built",
		[]string{"frontend.background.*", "frontend.cache-queryable-samples-stats", "frontend.cache.enable-fifocache", "frontend.compression", "frontend.default-validity", "frontend.fifocache.max-size-items", "frontend.fifocache.size", "frontend.forward-headers-list", "frontend.memcached.*", "querier.cache-results", "frontend.max-query-response-size"}},
	{"Querier worker identity and matching", "a querier connects to the query-frontends with -querier.frontend-address and runs -querier.max-concurrent queries",
		[]string{"querier.id", "querier.instance-interface-names", "querier.worker-match-max-concurrent", "frontend.instance-interface-names", "frontend.grpc-client-config.*"}},
	{"Querier tuning", "not built: the active query tracker, response compression, query length overrides, ingester retries and metadata streaming, store-gateway consistency retries and the limits on chunks, lookback, future and parallelism other than those accepted",
		[]string{"querier.active-query-tracker-dir", "querier.response-compression", "querier.ignore-max-query-length", "querier.ingester-label-names-with-matchers", "querier.ingester-metadata-streaming", "querier.ingester-query-max-attempts", "querier.store-gateway-consistency-check-max-attempts", "querier.max-query-into-future", "querier.max-query-lookback"}},
	{"Global (ring-wide) series and metadata limits", "series and metadata limits are per ingester (-ingester.max-series-per-user, -ingester.max-series-per-metric, -ingester.max-metadata-per-user, -ingester.max-metadata-per-metric); limits divided over the ring are not built",
		[]string{"ingester.max-global-*", "ingester.skip-metadata-limits", "ingester.ignore-series-limit-for-metric-names", "ingester.admin-limit-message"}},
	{"Native histogram limits", "native histograms are stored as Prometheus' TSDB takes them; their per-tenant limits and switches are not built",
		[]string{"*native-histogram*", "blocks-storage.tsdb.enable-native-histograms"}},
	{"Ingester tuning", "not built: active series metrics, label string interning, the matchers cache, token generator strategies, uploading compacted blocks, and the ingester client's in-flight push limit",
		[]string{"ingester.active-series-*", "ingester.labels-string-interning-enabled", "ingester.matchers-cache-max-items", "ingester.tokens-generator-strategy", "ingester.upload-compacted-blocks-enabled", "ingester.client.max-inflight-push-requests"}},
	{"Distributor tuning", "not built: the ingester client pool's cleanup period (the ring takes departed ingesters out), extended writes, extra query delay, push workers, signed write requests, streamed pushes and label dropping",
		[]string{"distributor.client-cleanup-period", "distributor.extend-writes", "distributor.extra-query-delay", "distributor.num-push-workers", "distributor.sign-write-requests", "distributor.use-stream-push", "distributor.drop-label", "experimental.distributor.ha-tracker.mixed-ha-samples"}},
	{"Validation options", "not built: metadata metric name enforcement and UTF-8 metric and label names (names follow Prometheus' legacy scheme)",
		[]string{"validation.enforce-metadata-metric-name"}},
	{"Store-gateway and bucket store tuning", "the store-gateway here has no lazy index-header loading, token-bucket byte limiter, expanded postings cache, hedged requests, block discovery strategies, users scanner or concurrency limits other than those accepted",
		[]string{"blocks-storage.bucket-store.*", "blocks-storage.expanded_postings_cache.*", "blocks-storage.users-scanner.*", "store-gateway.hedged-request.*", "store-gateway.max-downloaded-bytes-per-request", "store-gateway.sharding-ring.final-sleep", "store-gateway.sharding-ring.wait-instance-state-timeout"}},
	{"TSDB tuning", "not built: closing idle TSDBs, the head chunks write queue and buffer, and the WAL compression type (the WAL is written with Prometheus' default)",
		[]string{"blocks-storage.tsdb.close-idle-tsdb-timeout", "blocks-storage.tsdb.head-chunks-write-*", "blocks-storage.tsdb.wal-compression-type"}},
	{"Partitioning compactor and compactor tuning", "the compactor merges each tenant's blocks over -compactor.block-ranges; Cortex's partitioning strategy, visit markers, tenant shuffle sharding, caching bucket and concurrency settings are not built",
		[]string{"compactor.*"}},
	{"Configs API migrations directory and notification switches", "the configs database schema is built into the binary and migrated at startup; the notification switches belong to Weave Cloud's configs service",
		[]string{"configs.database.migrations-dir", "configs.notifications.*"}},
	{"Ruler tuning", "not built: concurrent evaluations, HA evaluation, the ruler client (rulers do not call each other), rule group labels, liveness checks, response formats, the ruler ring's replication and final sleep, the rule path and pending-for search",
		[]string{"ruler.concurrent-evals-enabled", "ruler.max-concurrent-evals", "ruler.enable-ha-evaluation", "ruler.client.*", "ruler.disable-rule-group-label", "ruler.flush-period", "ruler.frontendClient.grpc-max-*", "ruler.liveness-check-timeout", "ruler.query-response-format", "ruler.ring.final-sleep", "ruler.ring.replication-factor", "ruler.rule-path", "ruler.search-pending-for", "experimental.ruler.*"}},
	{"Alertmanager limits and options", "not built: the per-tenant notification-rate limits, the bound on messages from the distributor, the receivers' firewall, alert garbage collection and API concurrency settings",
		[]string{"alertmanager.max-recv-msg-size", "alertmanager.notification-rate-limit*", "alertmanager.receivers-firewall-*", "alertmanager.alerts-gc-interval", "alertmanager.api-concurrency"}},
	{"Users scanner of the rule and alertmanager stores", "the rulers and alertmanagers list their tenants by listing the bucket (or the configs API)",
		[]string{"ruler-storage.users-scanner.*", "alertmanager-storage.users-scanner.*"}},
	{"Ingester query tracking and matcher options", "not built: the active queried series estimate, lazy matching of low-selectivity matchers and the limits on unoptimized regular expressions",
		[]string{"ingester.active-queried-series-metrics-*", "ingester.enable-matcher-optimization", "ingester.enable-regex-matcher-limits", "validation.max-regex-pattern-length", "validation.max-label-cardinality-for-unoptimized-regex", "validation.max-total-label-value-length-for-unoptimized-regex"}},
	{"Distributor request options", "not built: unknown remote write content types read as 1.0 (they are answered 415), Prometheus' __type__ and __unit__ labels, the HA tracker's startup sync and write request signing keys",
		[]string{"distributor.accept-unknown-remote-write-content-type", "distributor.enable-type-and-unit-labels", "distributor.ha-tracker.enable-startup-sync", "distributor.sign-write-requests-keys"}},
	{"Gossip transport limits", "the gossip port is this system's own TLS transport (pkg/kv/gossip), bounded by -server's connection limits; dskit's packet size, read timeout, connection and tombstone settings are not built",
		[]string{"memberlist.max-concurrent-connections", "memberlist.max-packet-size", "memberlist.packet-read-timeout", "memberlist.tombstone-timeout"}},
	{"Federated partial answers and store-gateway batching", "not built: a federated query fails when one tenant's part fails; store-gateways send one series per message; projection hints act only on Parquet blocks",
		[]string{"tenant-federation.allow-partial-data", "tenant-federation.regex-cache-size", "querier.store-gateway-series-batch-size", "querier.honor-projection-hints", "alertmanager.sharding-ring.disable-replica-set-extension"}},
	{"HTTP and gRPC server options", "the servers are this system's own, on crypto/tls: TCP listeners, no path prefix, always-on instrumentation; dskit's request logging, CORS, channelz, connection age and stream worker settings are not built",
		[]string{"server.*", "api.*", "http.prefix", "http.alertmanager-http-prefix"}},
}

// notBuiltFeature returns the feature not built a Cortex flag belongs to:
// the feature whose YAML keys a configuration file is refused for
// (NotBuilt, notbuilt.go), else the first of compatNotBuilt it matches.
func notBuiltFeature(name, yamlPath string) (compatFeature, bool) {
	if nb, ok := notBuilt(yamlPath, ""); ok {
		return compatFeature{Name: nb.Feature, Reason: "its keys are refused in a configuration file (pkg/cortex/notbuilt.go)"}, true
	}
	for _, f := range compatNotBuilt {
		for _, p := range f.Patterns {
			if ok, _ := path.Match(p, name); ok {
				return f, true
			}
		}
	}
	return compatFeature{}, false
}

// notBuiltReason says why Cortex's flag (with its YAML path) is not
// accepted here, or "" when no feature not built claims it.
func notBuiltReason(f cortexcompat.Flag) string {
	reason := ""
	if nb, ok := notBuilt(f.Path, ""); ok {
		reason = nb.Feature
	} else if feature, ok := notBuiltFeature(f.Name, f.Path); ok {
		reason = strings.TrimPrefix(feature.Reason, "not built: ")
	} else {
		return ""
	}
	return fmt.Sprintf("Cortex's -%s is not built here: %s", f.Name, reason)
}

// cortexBlocks are the paths of Cortex's configuration file that hold keys.
var cortexBlocks = sync.OnceValue(func() map[string]bool {
	blocks := map[string]bool{}
	for _, f := range cortexcompat.Flags() {
		for i := strings.LastIndexByte(f.Path, '.'); i > 0; i = strings.LastIndexByte(f.Path[:i], '.') {
			blocks[f.Path[:i]] = true
		}
	}
	return blocks
})

// ExplainKey implements config.Explainer: a key of Cortex's file that the
// configuration lacks is refused with the reason its feature is not built.
func (c *Config) ExplainKey(key string) (string, bool) {
	if f, ok := cortexcompat.ByPath(key); ok {
		return notBuiltReason(f), false
	}
	return "", cortexBlocks()[key]
}

// ExplainFlag implements config.Explainer: a flag of Cortex's that is not
// registered is refused with the reason its feature is not built.
func (c *Config) ExplainFlag(name string) string {
	if f, ok := cortexcompat.ByName(name); ok {
		return notBuiltReason(f)
	}
	return ""
}
