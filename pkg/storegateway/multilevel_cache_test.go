package storegateway

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// Index and chunks caches of "inmemory,memcached" against a real
// memcached: a store-gateway starting with an empty memory level reads
// what another one wrote from memcached, backfills its memory level, and
// then answers from memory without asking memcached.
func TestMultiLevelCaches(t *testing.T) {
	mc := cachetest.StartMemcachedTLS(t)
	bkt := cacheTestBucket(t)
	plain, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, plain)
	want := queryAll(t, plain)

	cfg := inMemoryCaches(testConfig(t))
	cfg.IndexCache.Backend = "inmemory,memcached"
	cfg.ChunksCache.Backend = "inmemory,memcached"
	for _, m := range []*struct {
		addr, ca *string
		to       *time.Duration
	}{
		{&cfg.IndexCache.Memcached.Addresses, &cfg.IndexCache.Memcached.TLS.CAPath, &cfg.IndexCache.Memcached.Timeout},
		{&cfg.ChunksCache.Memcached.Addresses, &cfg.ChunksCache.Memcached.TLS.CAPath, &cfg.ChunksCache.Memcached.Timeout},
	} {
		*m.addr, *m.ca, *m.to = mc.Addr, mc.CAPath, 2*time.Second
	}
	start := func() (*BucketStore, *prometheus.Registry) { return startSyncedStore(t, cfg, bkt) }

	first, firstReg := start()
	if got := queryAll(t, first); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers with multi-level caches differ:\n got %v\nwant %v", got, want)
	}
	// The writes reach memcached in the background.
	testkit.Eventually(t, 10*time.Second, "the first store-gateway's writes in memcached", func() bool {
		return testkit.MetricSum(t, firstReg, "thanos_memcached_operations_total", "name", "index-cache", "operation", "set") > 0 &&
			testkit.MetricSum(t, firstReg, "thanos_memcached_operations_total", "name", "chunks-cache", "operation", "set") > 0 &&
			len(queryAll(t, first)) > 0
	})

	second, reg := start()
	items := func() float64 {
		return testkit.MetricSum(t, reg, "thanos_store_index_cache_items", "item_type", "ExpandedPostings")
	}
	if items() != 0 {
		t.Fatal("a new store-gateway's memory level is not empty")
	}
	testkit.Eventually(t, 10*time.Second, "postings read from memcached and backfilled into memory", func() bool {
		if got := queryAll(t, second); !reflect.DeepEqual(got, want) {
			t.Fatalf("answers from the second level differ:\n got %v\nwant %v", got, want)
		}
		return testkit.MetricSum(t, reg, "thanos_store_index_cache_hits_total", "item_type", "ExpandedPostings") > 0 && items() > 0
	})
	// Once backfilled, memory answers: memcached is asked no more.
	testkit.Eventually(t, 10*time.Second, "queries answered from memory alone", func() bool {
		gets := testkit.MetricSum(t, reg, "thanos_memcached_operations_total", "operation", "getmulti")
		queryAll(t, second)
		return testkit.MetricSum(t, reg, "thanos_memcached_operations_total", "operation", "getmulti") == gets
	})
}

func TestCacheBackendListValidated(t *testing.T) {
	for _, tc := range []struct {
		backend, want string
	}{
		{"inmemory,disk", `unsupported cache backend "disk"`},
		{"inmemory,inmemory", `duplicated cache backend "inmemory"`},
	} {
		cfg := inMemoryCaches(testConfig(t))
		cfg.ChunksCache.Backend = tc.backend
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.chunks-cache.backend") {
			t.Errorf("%q: %v, want %s", tc.backend, err, tc.want)
		}
	}
	cfg := inMemoryCaches(testConfig(t))
	cfg.IndexCache.Backend = "inmemory,memcached"
	cfg.IndexCache.Memcached.Addresses = "localhost:11211"
	cfg.IndexCache.MultiLevel.MaxBackfillItems = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.index-cache.multilevel.max-backfill-items") {
		t.Errorf("no backfill items: %v", err)
	}
}

// startSyncedStore starts a store of bkt with cfg and its own registry,
// synced, and closed when the test ends.
func startSyncedStore(t *testing.T, cfg Config, bkt objstore.BucketReader) (*BucketStore, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	s, err := NewBucketStore(cfg, bkt, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	syncStore(t, s)
	return s, reg
}
