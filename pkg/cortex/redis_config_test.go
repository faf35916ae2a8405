package cortex

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRedisCacheKeysLoad loads a Cortex operator's redis cache blocks at
// Cortex's paths: the query-frontend's results cache and the
// store-gateway's index, chunks and metadata caches.
func TestRedisCacheKeysLoad(t *testing.T) {
	cfg, err := loadFile(t, `
query_range:
  cache_results: true
  results_cache:
    cache:
      redis:
        endpoint: redis:6379
        master_name: mymaster
        timeout: 250ms
        expiration: 1h
        db: 2
        pool_size: 8
        password: frontend-secret
        tls_enabled: true
        tls_insecure_skip_verify: false
        idle_timeout: 1m
        max_connection_age: 10m
        tls_ca_path: /etc/redis/ca.crt
blocks_storage:
  bucket_store:
    index_cache:
      backend: inmemory,redis
      redis:
        addresses: redis-0:6379,redis-1:6379
        username: cortex
        password: s3cret
        db: 1
        get_multi_batch_size: 50
        cache_size: 1048576
        tls_enabled: true
        tls_ca_path: /etc/redis/ca.crt
        enabled_items: [ExpandedPostings]
        set_async_circuit_breaker_config:
          enabled: true
    chunks_cache:
      backend: redis
      redis:
        addresses: redis:6379
        read_timeout: 1s
    metadata_cache:
      backend: redis
      redis:
        addresses: redis:6379
        master_name: mymaster
`)
	if err != nil {
		t.Fatal(err)
	}
	fr := cfg.Frontend.Redis
	if fr.Endpoint != "redis:6379" || fr.MasterName != "mymaster" || fr.Timeout != 250*time.Millisecond || fr.Expiration != time.Hour ||
		fr.DB != 2 || fr.PoolSize != 8 || fr.Password.String() != "frontend-secret" || !fr.TLS.Enabled || fr.IdleTimeout != time.Minute ||
		fr.MaxConnAge != 10*time.Minute || fr.TLS.CAPath != "/etc/redis/ca.crt" {
		t.Errorf("frontend redis: %+v", fr)
	}
	bs := cfg.BlocksStorage.BucketStore
	ic := bs.IndexCache.Redis
	if bs.IndexCache.Backend != "inmemory,redis" || ic.Addresses != "redis-0:6379,redis-1:6379" || ic.Username != "cortex" ||
		ic.Password.String() != "s3cret" || ic.DB != 1 || ic.GetMultiBatchSize != 50 || ic.CacheSize != 1<<20 || !ic.TLS.Enabled ||
		len(ic.EnabledItems) != 1 || !ic.SetAsyncCircuitBreaker.Enabled || ic.MaxGetMultiConcurrency != 100 {
		t.Errorf("index cache redis: %+v", ic)
	}
	if bs.ChunksCache.Redis.ReadTimeout != time.Second || bs.MetadataCache.Redis.MasterName != "mymaster" {
		t.Errorf("chunks and metadata caches: %+v %+v", bs.ChunksCache.Redis, bs.MetadataCache.Redis)
	}

	for _, tc := range []struct{ content, flag string }{
		{"query_range:\n  results_cache:\n    cache:\n      redis:\n        endpoint: redis:6379\n        db: -1\n", "-frontend.redis.db"},
		{"blocks_storage:\n  bucket_store:\n    chunks_cache:\n      backend: redis\n      redis:\n        addresses: redis\n", "-blocks-storage.bucket-store.chunks-cache.redis.addresses"},
	} {
		cfg, err := loadFile(t, tc.content)
		if err == nil {
			// Each module validates its block as it starts.
			err = errors.Join(cfg.Frontend.Validate(), cfg.BlocksStorage.BucketStore.Validate())
		}
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("want an error naming %s, got %v", tc.flag, err)
		}
	}
}
