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
	"ingester.disable-chunk-trimming":                "true: chunks go to the querier whole, which drops the samples outside the range itself; trimming in the ingester re-encodes the head's open chunk of every series on every query",
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
	"alertmanager.cluster.listen-address":            "empty, the gossip cluster off: Cortex's 0.0.0.0:9094 opens a plaintext port from which anyone on the network reads and writes every tenant's silences; here the cluster runs mutual TLS only and is turned on with its certificates",
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
	{"Parquet blocks", parquetWhy,
		[]string{"parquet-converter.*", "*parquet*"}},
	{"Consul over TLS", "dskit's consul client speaks plain HTTP, and no Consul server could be installed here to test a TLS one (neither Debian's archive nor the Go module proxy serves one; Consul has been under the BSL since 1.17); run the rings and the HA tracker over etcd or memberlist, both with TLS",
		[]string{"*consul.tls-*"}},
	{"Ruler settings Cortex never reads", "Cortex declares -ruler.flush-period and -ruler.search-pending-for but never reads them",
		[]string{"ruler.flush-period", "ruler.search-pending-for"}},
	{"Ruler rule files", "rule groups load into Prometheus' rule managers from memory, so no rule files are written under -ruler.rule-path",
		[]string{"ruler.rule-path"}},
	{"Querier option without effect", "-querier.instance-interface-names only gives the query-scheduler the querier's address for Cortex's distributed execution, which is not built",
		[]string{"querier.instance-interface-names"}},
	{"Ingester options without effect", "labels are Prometheus' stringlabels (one string per series, no per-label strings to intern); with shipping on, the ingesters never compact blocks locally, so there are no compacted blocks to upload or not",
		[]string{"ingester.labels-string-interning-enabled", "ingester.upload-compacted-blocks-enabled"}},
	{"Projection hints", "projection hints only act on Parquet blocks, which are not built",
		[]string{"querier.honor-projection-hints"}},
}

const (
	parquetWhy      = "Cortex builds Parquet on prometheus-community/parquet-common, whose newest version on the module proxy (the one Cortex 1.21.1 pins) does not build with the Prometheus v0.316 packages used here (chunk appenders take a start timestamp since); Parquet is experimental in Cortex"
	thanosEngineWhy = "neither the thanos-io/promql-engine version Cortex 1.21.1 pins nor the newest on the module proxy (2026-05-13) builds with the Prometheus v0.316 packages used here (BucketQuantile and CopyToSchema changed); "
	chunksWhy       = "Cortex itself stores blocks only since 1.14; the key is refused so that an old chunks configuration is not taken for a blocks one"
)

// notBuiltWhy says why each feature of NotBuilt (notbuilt.go) is not
// built, for the compatibility page.
var notBuiltWhy = map[string]string{
	"the chunks storage; this system stores blocks only (blocks_storage)":        chunksWhy,
	"the chunks storage schema; this system stores blocks only (blocks_storage)": chunksWhy,
	"the Parquet converter": parquetWhy,
	"Parquet blocks":        parquetWhy,
	"the Thanos PromQL engine (queries run on Prometheus' engine)":                                   thanosEngineWhy + "queries run on Prometheus' engine, Cortex's default",
	"the Thanos PromQL engine (rules run on Prometheus' engine)":                                     thanosEngineWhy + "rules run on Prometheus' engine, Cortex's default",
	"the DynamoDB KV store (use memberlist, consul or etcd)":                                         "no DynamoDB-compatible server can be installed here to test it against (DynamoDB Local is a Java download outside Debian's archive and the Go module proxy); rings and the HA tracker run over etcd or memberlist, both with TLS",
	"object storage backends other than s3, gcs, azure, swift and filesystem":                        "Cortex 1.21 offers these five backends only",
	"migrations read from a directory (the configs database's migrations are built into the binary)": "the binary carries the migrations of the schema it reads and writes, so it never runs against files of another version",
}

// notBuiltFeature returns the feature not built a Cortex flag belongs to:
// the feature whose YAML keys a configuration file is refused for
// (NotBuilt, notbuilt.go), else the first of compatNotBuilt it matches.
func notBuiltFeature(name, yamlPath string) (compatFeature, bool) {
	if nb, ok := notBuilt(yamlPath, ""); ok {
		return compatFeature{Name: nb.Feature, Reason: notBuiltWhy[nb.Feature]}, true
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
