package storegateway

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/cache"
	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// redisCaches points the caches of cfg at r over mutual TLS: the index
// cache as a level behind memory ("inmemory,redis"), the chunks and
// metadata caches in redis alone.
func redisCaches(cfg Config, r *cachetest.Redis) Config {
	cfg.IndexCache.Backend = "inmemory,redis"
	cfg.ChunksCache.Backend = CacheBackendRedis
	cfg.MetadataCache.Backend = CacheBackendRedis
	for _, c := range []*cache.RedisConfig{&cfg.IndexCache.Redis.RedisConfig, &cfg.ChunksCache.Redis, &cfg.MetadataCache.Redis} {
		c.Addresses = r.Addr
		c.TLS.CAPath = r.CAPath
		c.TLS.CertPath, c.TLS.KeyPath = r.ClientCertPath, r.ClientKeyPath
	}
	return cfg
}

// TestRedisCachesTLS runs the store-gateway's caches in a real Redis over
// mutual TLS: answers are the uncached ones; a second store-gateway, its
// memory level empty, reads the first one's index cache items from redis
// and backfills memory; chunks and metadata hit in redis; with redis down
// the caches miss and queries still answer.
func TestRedisCachesTLS(t *testing.T) {
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{})
	bkt := cacheTestBucket(t)
	plain, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, plain)
	want := queryAll(t, plain)

	cfg := redisCaches(inMemoryCaches(testConfig(t)), r)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	start := func() (*BucketStore, *prometheus.Registry) { return startSyncedStore(t, cfg, bkt) }
	first, firstReg := start()
	if got := queryAll(t, first); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers with redis caches differ:\n got %v\nwant %v", got, want)
	}
	testkit.Eventually(t, 10*time.Second, "the first store-gateway's writes in redis", func() bool {
		return testkit.MetricSum(t, firstReg, "thanos_redis_operations_total", "name", "index-cache", "operation", "setmulti") > 0 &&
			testkit.MetricSum(t, firstReg, "thanos_redis_operations_total", "name", "chunks-cache", "operation", "setmulti") > 0
	})

	second, reg := start()
	testkit.Eventually(t, 10*time.Second, "index items read from redis and backfilled into memory, chunks hit in redis", func() bool {
		if got := queryAll(t, second); !reflect.DeepEqual(got, want) {
			t.Fatalf("answers from redis differ:\n got %v\nwant %v", got, want)
		}
		return testkit.MetricSum(t, reg, "thanos_cache_redis_hits_total", "name", "index-cache") > 0 &&
			testkit.MetricSum(t, reg, "thanos_store_index_cache_items", "item_type", "ExpandedPostings") > 0 &&
			testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", "chunks") > 0
	})
	testkit.Eventually(t, 10*time.Second, "metadata cache hits", func() bool {
		syncStore(t, second)
		return testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", "metafile") > 0
	})

	r.Stop()
	failures := testkit.MetricSum(t, reg, "thanos_redis_operation_failures_total", "name", "chunks-cache")
	chunkHits := testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", "chunks")
	if got := queryAll(t, second); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers with redis down differ:\n got %v\nwant %v", got, want)
	}
	if testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", "chunks") != chunkHits {
		t.Error("chunks hit with redis down")
	}
	if testkit.MetricSum(t, reg, "thanos_redis_operation_failures_total", "name", "chunks-cache") == failures {
		t.Error("with redis down, no failure counted")
	}
	syncStore(t, second)
}

func TestRedisCacheConfigValidated(t *testing.T) {
	cfg := inMemoryCaches(testConfig(t))
	cfg.ChunksCache.Backend = "inmemory,redis"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.chunks-cache.redis.addresses") {
		t.Fatalf("no addresses: %v", err)
	}
	cfg.ChunksCache.Redis.Addresses = "localhost:6379"
	cfg.ChunksCache.Redis.DB = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.chunks-cache.redis.db") {
		t.Fatalf("negative db: %v", err)
	}
	cfg = inMemoryCaches(testConfig(t))
	cfg.IndexCache.Backend = CacheBackendRedis
	cfg.IndexCache.Redis.Addresses = "localhost:6379"
	cfg.IndexCache.Redis.EnabledItems = []string{"Chunks"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.index-cache.redis.enabled-items") {
		t.Fatalf("bad item: %v", err)
	}
	cfg.IndexCache.Redis.EnabledItems = nil
	cfg.IndexCache.Redis.TLS.CAPath = "/nonexistent/ca.crt"
	if _, err := NewBucketStore(cfg, cacheTestBucket(t), slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.index-cache.redis.tls-ca-path") {
		t.Fatalf("unreadable CA: %v", err)
	}
}
