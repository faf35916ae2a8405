package cortex

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/cortex-tls/cortex/pkg/util/config"
)

// NotBuiltKey is a key of Cortex's configuration file that belongs to a
// feature this system does not have. Key is a dotted path in Cortex's
// layout: "*" stands for one segment, a leading "**" for any number of
// them. A key matches its own path and everything below it; with Values set,
// only a scalar holding one of them matches.
type NotBuiltKey struct {
	Key     string
	Values  []string
	Feature string
}

// NotBuilt lists the Cortex features whose keys a configuration file is
// refused for: a file that sets them expects behaviour this system does not
// have. docs/configuration.md lists the same table (TestNotBuiltDocumented).
var NotBuilt = []NotBuiltKey{
	{Key: "storage.engine", Values: []string{"chunks"}, Feature: "the chunks storage; this system stores blocks only (blocks_storage)"},
	{Key: "schema", Feature: "the chunks storage schema; this system stores blocks only (blocks_storage)"},
	{Key: "parquet_converter", Feature: "the Parquet converter"},
	{Key: "querier.enable_parquet_queryable", Feature: "Parquet blocks"},
	{Key: "querier.parquet_queryable_shard_cache_size", Feature: "Parquet blocks"},
	{Key: "querier.parquet_queryable_default_block_store", Feature: "Parquet blocks"},
	{Key: "querier.parquet_queryable_fallback_disabled", Feature: "Parquet blocks"},
	{Key: "blocks_storage.bucket_store.parquet_labels_cache", Feature: "Parquet blocks"},
	{Key: "limits.parquet_converter_enabled", Feature: "the Parquet converter"},
	{Key: "limits.parquet_converter_tenant_shard_size", Feature: "the Parquet converter"},
	{Key: "limits.parquet_converter_sort_columns", Feature: "the Parquet converter"},
	{Key: "limits.parquet_max_fetched_row_count", Feature: "Parquet blocks"},
	{Key: "limits.parquet_max_fetched_chunk_bytes", Feature: "Parquet blocks"},
	{Key: "limits.parquet_max_fetched_data_bytes", Feature: "Parquet blocks"},
	{Key: "querier.thanos_engine", Feature: "the Thanos PromQL engine (queries run on Prometheus' engine)"},
	{Key: "ruler.thanos_engine", Feature: "the Thanos PromQL engine (rules run on Prometheus' engine)"},
	{Key: "**.kvstore.dynamodb", Feature: "the DynamoDB KV store (use memberlist, consul or etcd)"},
	{Key: "**.kvstore.store", Values: []string{"dynamodb"}, Feature: "the DynamoDB KV store (use memberlist, consul or etcd)"},
	{Key: "**.backend", Values: []string{"oci", "cos", "bos", "obs"}, Feature: "object storage backends other than s3, gcs, azure, swift and filesystem"},
	{Key: "configs.database.migrations_dir", Feature: "migrations read from a directory (the configs database's migrations are built into the binary)"},
}

// StorageConfig is Cortex's storage block: the storage engine, of which
// blocks is the only one, here as in Cortex 1.21.
type StorageConfig struct {
	Engine string `yaml:"engine"`
}

// registerSingleChoiceFlags registers the flags of Cortex whose only
// value here is the one this system implements: -store.engine (blocks)
// and -name-validation-scheme (legacy).
func (c *Config) registerSingleChoiceFlags(f *flag.FlagSet) {
	f.StringVar(&c.Storage.Engine, "store.engine", "blocks", "The storage engine: blocks, the only one (Cortex's chunks storage is not built).")
	f.StringVar(&c.NameValidationScheme, "name-validation-scheme", "legacy", "How metric and label names are validated: legacy, Prometheus' classic character set, the only scheme built (Cortex's utf8 is not).")
}

// validateSingleChoices refuses the values of registerSingleChoiceFlags'
// flags that are not built.
func (c *Config) validateSingleChoices() error {
	if c.Storage.Engine != "blocks" {
		return fmt.Errorf("-store.engine=%q (storage.engine): only the blocks storage is built here", c.Storage.Engine)
	}
	if c.NameValidationScheme != "legacy" {
		return fmt.Errorf("-name-validation-scheme=%q (name_validation_scheme): only the legacy scheme is built here; UTF-8 metric and label names are not", c.NameValidationScheme)
	}
	return nil
}

// keyMoves are the keys a component's Config keeps elsewhere than Cortex's
// configuration file reference: the file (and -print.config) use Cortex's
// path, the struct its own. A Move without File is a struct field Cortex's
// file has no key for.
var keyMoves = []config.Move{
	// Cortex keeps the token strategy in the lifecycler, dskit's struct here.
	{File: "ingester.lifecycler.tokens_generator_strategy", Struct: "ingester.tokens_generator_strategy"},
	{File: "distributor.pool.health_check_ingesters", Struct: "ingester_client.health_check_ingesters"},
	{File: "distributor.pool.client_cleanup_period", Struct: "distributor.client_cleanup_period"},
	// Cortex's query_range block holds the query-frontend's splitting,
	// retries and results cache.
	{File: "query_range.split_queries_by_interval", Struct: "frontend.split_queries_by_interval"},
	{File: "query_range.dynamic_query_splits.max_shards_per_query", Struct: "frontend.max_shards_per_query"},
	{File: "query_range.dynamic_query_splits.max_fetched_data_duration_per_query", Struct: "frontend.max_fetched_data_duration_per_query"},
	{File: "query_range.dynamic_query_splits.enable_dynamic_vertical_sharding", Struct: "frontend.enable_dynamic_vertical_sharding"},
	{File: "query_range.results_cache.cache_queryable_samples_stats", Struct: "frontend.cache_queryable_samples_stats"},
	{File: "query_range.align_queries_with_step", Struct: "frontend.align_queries_with_step"},
	{File: "query_range.max_retries", Struct: "frontend.max_retries"},
	{File: "query_range.cache_results", Struct: "frontend.cache_results"},
	{File: "query_range.results_cache.cache.fifocache.max_size_bytes", Struct: "frontend.cache_max_size_bytes"},
	{File: "query_range.results_cache.cache.fifocache.validity", Struct: "frontend.cache_ttl"},
	{File: "query_range.results_cache.cache.memcached.expiration", Struct: "frontend.memcached.expiration"},
	{File: "query_range.results_cache.cache.memcached_client.addresses", Struct: "frontend.memcached.addresses"},
	{File: "query_range.results_cache.cache.memcached_client.timeout", Struct: "frontend.memcached.timeout"},
	{File: "query_range.results_cache.cache.memcached_client.max_idle_conns", Struct: "frontend.memcached.max_idle_conns"},
	{File: "query_range.results_cache.cache.memcached_client.max_item_size", Struct: "frontend.memcached.max_item_size"},
	{File: "query_range.results_cache.cache.memcached_client.tls_enabled", Struct: "frontend.memcached.tls_enabled"},
	{File: "query_range.results_cache.cache.memcached_client.tls_cert_path", Struct: "frontend.memcached.tls_cert_path"},
	{File: "query_range.results_cache.cache.memcached_client.tls_key_path", Struct: "frontend.memcached.tls_key_path"},
	{File: "query_range.results_cache.cache.memcached_client.tls_ca_path", Struct: "frontend.memcached.tls_ca_path"},
	{File: "query_range.results_cache.cache.memcached_client.tls_server_name", Struct: "frontend.memcached.tls_server_name"},
	{File: "query_range.results_cache.cache.memcached_client.tls_insecure_skip_verify", Struct: "frontend.memcached.tls_insecure_skip_verify"},
	{File: "query_range.results_cache.cache.memcached_client.tls_cipher_suites", Struct: "frontend.memcached.tls_cipher_suites"},
	{File: "query_range.results_cache.cache.memcached_client.tls_min_version", Struct: "frontend.memcached.tls_min_version"},
	{File: "query_range.results_cache.cache.memcached_client.tls_common_name_fallback", Struct: "frontend.memcached.tls_common_name_fallback"},
	{File: "query_range.results_cache.cache.memcached_client.host", Struct: "frontend.memcached.host"},
	{File: "query_range.results_cache.cache.memcached_client.service", Struct: "frontend.memcached.service"},
	{File: "query_range.results_cache.cache.memcached_client.update_interval", Struct: "frontend.memcached.update_interval"},
	{File: "query_range.results_cache.cache.memcached_client.consistent_hash", Struct: "frontend.memcached.consistent_hash"},
	{File: "query_range.results_cache.cache.memcached_client.circuit_breaker_consecutive_failures", Struct: "frontend.memcached.circuit_breaker_consecutive_failures"},
	{File: "query_range.results_cache.cache.memcached_client.circuit_breaker_timeout", Struct: "frontend.memcached.circuit_breaker_timeout"},
	{File: "query_range.results_cache.cache.memcached_client.circuit_breaker_interval", Struct: "frontend.memcached.circuit_breaker_interval"},
	{File: "query_range.results_cache.cache.memcached.batch_size", Struct: "frontend.memcached.batch_size"},
	{File: "query_range.results_cache.cache.memcached.parallelism", Struct: "frontend.memcached.parallelism"},
	{File: "query_range.results_cache.cache.redis.endpoint", Struct: "frontend.redis.endpoint"},
	{File: "query_range.results_cache.cache.redis.master_name", Struct: "frontend.redis.master_name"},
	{File: "query_range.results_cache.cache.redis.timeout", Struct: "frontend.redis.timeout"},
	{File: "query_range.results_cache.cache.redis.expiration", Struct: "frontend.redis.expiration"},
	{File: "query_range.results_cache.cache.redis.db", Struct: "frontend.redis.db"},
	{File: "query_range.results_cache.cache.redis.pool_size", Struct: "frontend.redis.pool_size"},
	{File: "query_range.results_cache.cache.redis.password", Struct: "frontend.redis.password"},
	{File: "query_range.results_cache.cache.redis.idle_timeout", Struct: "frontend.redis.idle_timeout"},
	{File: "query_range.results_cache.cache.redis.max_connection_age", Struct: "frontend.redis.max_connection_age"},
	{File: "query_range.results_cache.cache.redis.max_item_size", Struct: "frontend.redis.max_item_size"},
	{File: "query_range.results_cache.cache.redis.tls_enabled", Struct: "frontend.redis.tls_enabled"},
	{File: "query_range.results_cache.cache.redis.tls_cert_path", Struct: "frontend.redis.tls_cert_path"},
	{File: "query_range.results_cache.cache.redis.tls_key_path", Struct: "frontend.redis.tls_key_path"},
	{File: "query_range.results_cache.cache.redis.tls_ca_path", Struct: "frontend.redis.tls_ca_path"},
	{File: "query_range.results_cache.cache.redis.tls_server_name", Struct: "frontend.redis.tls_server_name"},
	{File: "query_range.results_cache.cache.redis.tls_insecure_skip_verify", Struct: "frontend.redis.tls_insecure_skip_verify"},
	{File: "query_range.results_cache.cache.redis.tls_cipher_suites", Struct: "frontend.redis.tls_cipher_suites"},
	{File: "query_range.results_cache.cache.redis.tls_min_version", Struct: "frontend.redis.tls_min_version"},
	{File: "query_range.results_cache.cache.redis.tls_common_name_fallback", Struct: "frontend.redis.tls_common_name_fallback"},
	{File: "query_range.results_cache.cache.fifocache.max_size_items", Struct: "frontend.cache_max_size_items"},
	{File: "query_range.results_cache.cache.fifocache.size", Struct: "frontend.cache_size"},
	{File: "query_range.results_cache.cache.enable_fifocache", Struct: "frontend.enable_fifocache"},
	{File: "query_range.results_cache.cache.default_validity", Struct: "frontend.default_validity"},
	{File: "query_range.results_cache.cache.background.writeback_goroutines", Struct: "frontend.writeback_goroutines"},
	{File: "query_range.results_cache.cache.background.writeback_buffer", Struct: "frontend.writeback_buffer"},
	{File: "query_range.results_cache.compression", Struct: "frontend.compression"},
	{File: "query_range.forward_headers_list", Struct: "frontend.forward_headers_list"},
	// Settings Cortex keeps among the limits; here they are process-wide.
	{File: "limits.max_cache_freshness", Struct: "frontend.max_cache_freshness"},
	{File: "limits.promote_resource_attributes", Struct: "distributor.promote_resource_attributes"},
	{File: "limits.ruler_evaluation_delay_duration", Struct: "ruler.evaluation_delay_duration"},
	{File: "limits.ruler_query_offset", Struct: "ruler.query_offset"},
	{File: "api.prometheus_http_prefix", Struct: "querier.prometheus_http_prefix"},
	{File: "alertmanager.poll_interval", Struct: "alertmanager.configs.poll_interval"},
	{File: "alertmanager.fallback_config_file", Struct: "alertmanager.configs.fallback"},
	{File: "alertmanager.sharding_ring.disable_replica_set_extension", Struct: "alertmanager.disable_replica_set_extension"},
	// Only the ruler ring has num_tokens in Cortex's file; the others are
	// fixed. The compactor ring has no replication factor: each tenant has
	// one owner.
	{Struct: "store_gateway.sharding_ring.num_tokens"},
	{Struct: "compactor.sharding_ring.num_tokens"},
	{Struct: "alertmanager.sharding_ring.num_tokens"},
	{Struct: "compactor.sharding_ring.replication_factor"},
	// Cortex's -ring.detailed-metrics-enabled sits in the lifecycler's
	// ring block, which is dskit's; the final sleep and instance state
	// timeout are only on some rings.
	{File: "ingester.lifecycler.ring.detailed_metrics_enabled", Struct: "ingester.ring_detailed_metrics_enabled"},
	{Struct: "compactor.sharding_ring.final_sleep"},
	{Struct: "compactor.sharding_ring.wait_instance_state_timeout"},
	{Struct: "ruler.ring.wait_instance_state_timeout"},
}

// deprecatedKeys are keys of Cortex's file that Cortex itself replaced,
// refused with the key to use instead.
var deprecatedKeys = map[string]string{
	// -blocks-storage.tsdb.max-exemplars is accepted, as another name of
	// -ingester.max-exemplars.
	"blocks_storage.tsdb.max_exemplars": "limits.max_exemplars",
}

// KeyMoves implements config.Layout.
func (c *Config) KeyMoves() []config.Move { return keyMoves }

// CheckKey implements config.Layout: it refuses the keys of features that
// are not built here, and Cortex's deprecated keys.
func (c *Config) CheckKey(path, value string) error {
	if use, ok := deprecatedKeys[path]; ok {
		return fmt.Errorf("deprecated in Cortex: set %s", use)
	}
	if nb, ok := notBuilt(path, value); ok {
		if nb.Values != nil {
			return fmt.Errorf("%q is not built here: %s", value, nb.Feature)
		}
		return fmt.Errorf("not built here: %s", nb.Feature)
	}
	return nil
}

// notBuilt returns the entry of NotBuilt that path (with value, for a
// scalar) falls under.
func notBuilt(path, value string) (NotBuiltKey, bool) {
	segs := strings.Split(path, ".")
	for _, nb := range NotBuilt {
		pat := strings.Split(nb.Key, ".")
		if nb.Values != nil {
			if matchPath(pat, segs, false) && slices.Contains(nb.Values, value) {
				return nb, true
			}
			continue
		}
		if matchPath(pat, segs, true) {
			return nb, true
		}
	}
	return NotBuiltKey{}, false
}

// matchPath reports whether segs matches pat, or (with below) lies under a
// path that does.
func matchPath(pat, segs []string, below bool) bool {
	if len(pat) > 0 && pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if matchPath(pat[1:], segs[i:], below) {
				return true
			}
		}
		return false
	}
	if len(segs) < len(pat) || (!below && len(segs) != len(pat)) {
		return false
	}
	for i, p := range pat {
		if p != "*" && p != segs[i] {
			return false
		}
	}
	return true
}
