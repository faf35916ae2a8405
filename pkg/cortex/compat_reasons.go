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
	"querier.ingester-label-names-with-matchers":     "the ingesters here answer label names with matchers themselves; Cortex's false sends every matching series to the querier to find them",
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
	{"Consul over TLS", "dskit's consul client speaks plain HTTP, and no Consul server could be installed here to test a TLS one (Consul has been under the BSL since 1.17); run the rings and the HA tracker over etcd or memberlist, both with TLS",
		[]string{"*consul.tls-*"}},
	{"Partitioning compactor", "the compactor merges each tenant's blocks over -compactor.block-ranges with Prometheus' TSDB compactor, planned on the bucket index; Cortex's partitioning strategy and its visit markers, planner delay and partitioned group lists are not built",
		[]string{"compactor.compaction-strategy", "compactor.partition-*", "compactor.compaction-visit-marker-*", "compactor.cleaner-visit-marker-*", "compactor.sharding-planner-delay", "blocks-storage.bucket-store.metadata-cache.partitioned-groups-list-ttl"}},
	{"Compactor options of Thanos' syncer and caching bucket", "the compactor has no Thanos meta syncer or deduplicate filter for -compactor.block-sync-concurrency to size; the bucket index update always copies block deletion marks to the global markers, so there is no migration to switch; and the store-gateway's caching bucket, which caches deletion marks and listings, would make the compactor act on stale marks",
		[]string{"compactor.block-sync-concurrency", "compactor.block-deletion-marks-migration-enabled", "compactor.caching-bucket-enabled", "compactor.cleaner-caching-bucket-enabled"}},
	{"Alertmanager's own gossip cluster", "a tenant's replicas exchange silences and the notification log over the alertmanager gRPC service with mutual TLS (-alertmanager.sharding-enabled); Alertmanager's plaintext gossip cluster, which Cortex opens on 0.0.0.0:9094 without TLS settings, is not built",
		[]string{"alertmanager.cluster.*"}},
	{"Ruler settings without effect", "-ruler.flush-period and -ruler.search-pending-for are declared but never read by Cortex; rule groups load into Prometheus' rule managers from memory, so no rule files are written under -ruler.rule-path; rule queries through the query-frontend are answered in Prometheus' JSON, so -ruler.query-response-format has no protobuf to choose",
		[]string{"ruler.flush-period", "ruler.search-pending-for", "ruler.rule-path", "ruler.query-response-format"}},
	{"Querier options without effect", "the ingesters' metadata calls are unary (no streaming variant to switch to); querier answers reach the query-frontend over gRPC, which -querier.frontend-client.grpc-compression compresses; -querier.instance-interface-names only gives the query-scheduler the querier's address for Cortex's distributed execution, which is not built",
		[]string{"querier.ingester-metadata-streaming", "querier.response-compression", "querier.instance-interface-names"}},
	{"Ingester options without effect", "labels are Prometheus' stringlabels (one string per series, no per-label strings to intern); with shipping on, the ingesters never compact blocks locally, so there are no compacted blocks to upload or not",
		[]string{"ingester.labels-string-interning-enabled", "ingester.upload-compacted-blocks-enabled"}},
	{"Distributor push streams and extra query delay", "pushes are unary gRPC calls (no PushStream RPC, so no stream signing keys); when the remaining ingesters are asked is -querier.minimize-ingester-requests-hedging-delay's to decide",
		[]string{"distributor.use-stream-push", "distributor.sign-write-requests-keys", "distributor.extra-query-delay"}},
	{"Store-gateway series batching and projection hints", "a store-gateway sends one series per message; projection hints only act on Parquet blocks, which are not built",
		[]string{"querier.store-gateway-series-batch-size", "querier.honor-projection-hints"}},
	{"Query statistics of the querier", "the query-frontend logs and counts each query's statistics (-frontend.query-stats-enabled); per-step statistics and the store-gateways' own statistics are not built",
		[]string{"querier.per-step-stats-enabled", "querier.store-gateway-query-stats-enabled", "frontend.cache-queryable-samples-stats"}},
	{"Query priorities", "the queues are fair between tenants; per-tenant query priorities are not built",
		[]string{"frontend.query-priority.*"}},
	{"Thanos PromQL engine and experimental functions", "queries run on Prometheus' PromQL engine with its standard functions",
		[]string{"*.thanos-engine", "*.optimizers", "*enable-x-functions", "querier.enable-promql-experimental-functions", "querier.enable-dynamic-vertical-sharding", "*.decoding-concurrency"}},
	{"Configs API migrations directory and notification switches", "the configs database schema is built into the binary and migrated at startup; the notification switches belong to Weave Cloud's configs service",
		[]string{"configs.database.migrations-dir", "configs.notifications.*"}},
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
