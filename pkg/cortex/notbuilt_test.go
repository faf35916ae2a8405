package cortex

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/cortex/cortexcompat"
	"github.com/cortex-tls/cortex/pkg/util/config"
)

// loadFile loads the configuration file content with args after it.
func loadFile(t *testing.T, content string, args ...string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cortex.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := config.Load(fs, append([]string{"-config.file=" + path}, args...), &cfg)
	return cfg, err
}

func TestCortexExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../integration/testdata/cortex-examples/single-process-config-blocks*.yaml")
	if err != nil || len(files) != 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := loadFile(t, string(b))
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		c := cfg.IngesterClient
		if c.MaxRecvMsgSize != 104857600 || c.MaxSendMsgSize != 104857600 || c.GRPCCompression != "gzip" || !c.HealthCheckIngesters {
			t.Errorf("%s: ingester_client = %+v", filepath.Base(f), c)
		}
		if !cfg.Worker.MatchMaxConcurrent || cfg.Ingester.LifecyclerConfig.NumTokens != 512 || cfg.AuthEnabled {
			t.Errorf("%s: match_max_concurrent %v, num_tokens %d, auth_enabled %v", filepath.Base(f), cfg.Worker.MatchMaxConcurrent, cfg.Ingester.LifecyclerConfig.NumTokens, cfg.AuthEnabled)
		}
	}
}

func TestCortexKeysAtCortexPaths(t *testing.T) {
	cfg, err := loadFile(t, `
ingester_client:
  grpc_client_config:
    tls_cert_path: client.crt
    grpc_compression: gzip
distributor:
  pool:
    health_check_ingesters: false
query_range:
  split_queries_by_interval: 2h
  align_queries_with_step: true
  cache_results: true
  max_retries: 3
  results_cache:
    cache:
      fifocache:
        max_size_bytes: 1000
        validity: 2m
      memcached_client:
        addresses: memcached:11211
limits:
  max_cache_freshness: 5m
  promote_resource_attributes: [service.name, k8s.pod.name]
  ruler_query_offset: 30s
api:
  prometheus_http_prefix: /prom
ruler:
  ring:
    num_tokens: 64
    instance_interface_names: [lo, eth1]
server:
  grpc_listen_conn_limit: 7
  http_listen_conn_limit: 8
`)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{
		cfg.IngesterClient.TLS.CertPath, cfg.IngesterClient.GRPCCompression, cfg.IngesterClient.HealthCheckIngesters,
		cfg.Frontend.SplitQueriesByInterval, cfg.Frontend.AlignQueriesWithStep, cfg.Frontend.CacheResults, cfg.Frontend.MaxRetries,
		cfg.Frontend.CacheMaxSizeBytes, cfg.Frontend.CacheTTL, cfg.Frontend.Memcached.Addresses.String(),
		cfg.Frontend.MaxCacheFreshness, strings.Join(cfg.Distributor.PromoteResourceAttributes, ","), cfg.Ruler.QueryOffset,
		cfg.Querier.PrometheusHTTPPrefix, cfg.Ruler.Sharding.Ring.NumTokens, strings.Join(cfg.Ruler.Sharding.Ring.InstanceInterfaceNames, ","),
		cfg.Server.GRPCConnLimit, cfg.Server.HTTPConnLimit,
	}
	want := []any{
		"client.crt", "gzip", false,
		2 * time.Hour, true, true, 3,
		1000, 2 * time.Minute, "memcached:11211",
		5 * time.Minute, "service.name,k8s.pod.name", 30 * time.Second,
		"/prom", 64, "lo,eth1",
		7, 8,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestConfigFileRefusals(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"unknown key, full path", "ingester:\n  lifecycler:\n    ring:\n      kvstore:\n        store: memberlist\n        foo: 1\n", "unknown key ingester.lifecycler.ring.kvstore.foo (line 6)"},
		{"this system's old spelling", "frontend:\n  split_queries_by_interval: 1h\n", "unknown key frontend.split_queries_by_interval (line 2): the configuration file reference names it query_range.split_queries_by_interval"},
		{"a ring with fixed tokens", "store_gateway:\n  sharding_ring:\n    num_tokens: 5\n", "unknown key store_gateway.sharding_ring.num_tokens (line 3)"},
		{"Cortex's deprecated key", "blocks_storage:\n  tsdb:\n    max_exemplars: 5\n", "key blocks_storage.tsdb.max_exemplars (line 3): deprecated in Cortex: set limits.max_exemplars"},
		{"a ring without replication", "compactor:\n  sharding_ring:\n    replication_factor: 2\n", "unknown key compactor.sharding_ring.replication_factor (line 3)"},
		{"chunks storage", "storage:\n  engine: chunks\n", `key storage.engine (line 2): "chunks" is not built here: the chunks storage; this system stores blocks only (blocks_storage)`},
		{"Parquet labels cache in redis", "blocks_storage:\n  bucket_store:\n    parquet_labels_cache:\n      redis:\n        addresses: r:6379\n", "key blocks_storage.bucket_store.parquet_labels_cache (line 3): not built here: Parquet blocks"},
		{"DynamoDB KV", "compactor:\n  sharding_ring:\n    kvstore:\n      store: dynamodb\n", `key compactor.sharding_ring.kvstore.store (line 4): "dynamodb" is not built here: the DynamoDB KV store (use memberlist, consul or etcd)`},
		{"DynamoDB KV block", "ingester:\n  lifecycler:\n    ring:\n      kvstore:\n        dynamodb:\n          region: x\n", "key ingester.lifecycler.ring.kvstore.dynamodb (line 5): not built here: the DynamoDB KV store (use memberlist, consul or etcd)"},
		{"OCI bucket", "blocks_storage:\n  backend: oci\n", `key blocks_storage.backend (line 2): "oci" is not built here: object storage backends other than s3, gcs, azure, swift and filesystem`},
		{"Parquet", "querier:\n  enable_parquet_queryable: true\n", "key querier.enable_parquet_queryable (line 2): not built here: Parquet blocks"},
	} {
		_, err := loadFile(t, tc.content)
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s: err = %v\nwant it to end with %q", tc.name, err, tc.want)
		}
	}
}

func TestSingleChoiceKeys(t *testing.T) {
	cfg, err := loadFile(t, "storage:\n  engine: blocks\nname_validation_scheme: legacy\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validateSingleChoices(); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		"-name-validation-scheme=utf8": `-name-validation-scheme="utf8" (name_validation_scheme): only the legacy scheme is built here; UTF-8 metric and label names are not`,
		"-store.engine=chunk":          `-store.engine="chunk" (storage.engine): only the blocks storage is built here`,
	} {
		cfg, err := loadFile(t, "", args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || err.Error() != want {
			t.Errorf("%s: Validate() = %v, want %q", args, err, want)
		}
	}
}

// The printed configuration (-print.config) is in the file's layout and
// loads back to the same configuration.
func TestPrintedConfigLoadsBack(t *testing.T) {
	cfg, err := loadFile(t, "ingester_client:\n  grpc_client_config:\n    grpc_compression: gzip\nquery_range:\n  split_queries_by_interval: 3h\n", "-ruler.ring.num-tokens=32")
	if err != nil {
		t.Fatal(err)
	}
	out, err := config.Dump(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"\n  grpc_client_config:\n", "\n    grpc_compression: gzip\n", "\nquery_range:\n", "\n  split_queries_by_interval: 3h0m0s\n", "\n    num_tokens: 32\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("printed configuration lacks %q", want)
		}
	}
	back, err := loadFile(t, s)
	if err != nil {
		t.Fatalf("loading the printed configuration: %v", err)
	}
	again, err := config.Dump(&back)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != s {
		t.Errorf("the printed configuration changed on loading it back")
	}
}

// notBuiltTable is the table docs/configuration.md shows of NotBuilt.
func notBuiltTable() string {
	var b strings.Builder
	b.WriteString("| key (Cortex's path) | values | refused because |\n|---|---|---|\n")
	for _, nb := range NotBuilt {
		values := "any"
		if nb.Values != nil {
			values = "`" + strings.Join(nb.Values, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", nb.Key, values, nb.Feature)
	}
	return b.String()
}

// docs/configuration.md shows NotBuilt as it is.
func TestNotBuiltDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if table := notBuiltTable(); !strings.Contains(string(b), table) {
		t.Errorf("docs/configuration.md lacks the table of NotBuilt as it is now:\n%s", table)
	}
}

func TestNotBuiltMatches(t *testing.T) {
	for _, tc := range []struct {
		path, value string
		want        bool
	}{
		{"storage.engine", "chunks", true},
		{"storage.engine", "blocks", false},
		{"ruler.ring.kvstore.dynamodb.region", "x", true},
		{"distributor.ha_tracker.kvstore.store", "dynamodb", true},
		{"distributor.ha_tracker.kvstore.store", "consul", false},
		{"blocks_storage.bucket_store.metadata_cache.redis.addresses", "", false},
		{"blocks_storage.bucket_store.parquet_labels_cache.redis.addresses", "", true},
		{"blocks_storage.bucket_store.index_cache.backend", "memcached", false},
		{"blocks_storage.backend", "s3", false},
	} {
		if _, got := notBuilt(tc.path, tc.value); got != tc.want {
			t.Errorf("notBuilt(%q, %q) = %v, want %v", tc.path, tc.value, got, tc.want)
		}
	}
}

// A key or flag of Cortex's that is not accepted here is refused with the
// reason docs/cortex-compatibility.md gives, not as a typo.
func TestCortexKeysNotBuiltAreExplained(t *testing.T) {
	const (
		thanosEngine = "the Thanos PromQL engine (queries run on Prometheus' engine)"
		consulTLS    = "dskit's consul client speaks plain HTTP, and no Consul server could be installed here to test a TLS one (neither Debian's archive nor the Go module proxy serves one; Consul has been under the BSL since 1.17); run the rings and the HA tracker over etcd or memberlist, both with TLS"
	)
	for _, tc := range []struct{ name, content, want string }{
		{"a key of a block not built", "querier:\n  thanos_engine:\n    enabled: true\n",
			"key querier.thanos_engine (line 2): not built here: " + thanosEngine},
		{"a key in a block not built", "ingester:\n  lifecycler:\n    ring:\n      kvstore:\n        store: consul\n        consul:\n          tls_ca_path: ca.crt\n",
			"ingester.lifecycler.ring.kvstore.consul.tls_ca_path (line 7): Cortex's -consul.tls-ca-path is not built here: " + consulTLS},
		{"a typo", "querier:\n  max_concurent: 4\n", "unknown key querier.max_concurent (line 2): did you mean querier.max_concurrent?"},
		{"a typo of a moved key", "ingester_client:\n  grpc_client_config:\n    tls_cert_pth: c.crt\n",
			"unknown key ingester_client.grpc_client_config.tls_cert_pth (line 3): did you mean ingester_client.grpc_client_config.tls_cert_path?"},
		{"an unknown key", "querier:\n  no_such_setting: 1\n", "unknown key querier.no_such_setting (line 2)"},
	} {
		_, err := loadFile(t, tc.content)
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%s: err = %v\nwant it to end with %q", tc.name, err, tc.want)
		}
	}

	for _, tc := range []struct{ flag, want string }{
		{"-querier.thanos-engine=true", "Cortex's -querier.thanos-engine is not built here: " + thanosEngine},
		{"--consul.tls-ca-path=ca.crt", "Cortex's -consul.tls-ca-path is not built here: " + consulTLS},
		{"-querier.no-such-flag", "flag provided but not defined: -querier.no-such-flag"},
	} {
		fs := flag.NewFlagSet("cortex", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var cfg Config
		err := config.Load(fs, []string{tc.flag}, &cfg)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v\nwant %q", tc.flag, err, tc.want)
		}
	}
}

// Every flag of Cortex's that is not registered here, and its key, is
// refused with a reason.
func TestEveryCortexFlagNotAcceptedIsExplained(t *testing.T) {
	fs := ourFlagSet(t)
	var cfg Config
	refused := 0
	for _, f := range cortexcompat.Flags() {
		if fs.Lookup(f.Name) != nil {
			continue
		}
		refused++
		want := "Cortex's -" + f.Name + " is not built here: "
		if why := cfg.ExplainFlag(f.Name); !strings.HasPrefix(why, want) {
			t.Errorf("-%s: ExplainFlag = %q", f.Name, why)
		}
		if why, _ := cfg.ExplainKey(f.Path); !strings.HasPrefix(why, want) {
			t.Errorf("%s: ExplainKey = %q", f.Path, why)
		}
	}
	if refused == 0 {
		t.Error("no Cortex flag is refused")
	}
}
