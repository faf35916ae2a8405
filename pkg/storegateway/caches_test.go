package storegateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestCacheConfigDefaultsAndValidation(t *testing.T) {
	var cfg Config
	if err := flagSet(&cfg).Parse(nil); err != nil {
		t.Fatal(err)
	}
	ic, cc, mc := cfg.IndexCache, cfg.ChunksCache, cfg.MetadataCache
	if ic.Backend != "inmemory" || ic.InMemory.MaxSizeBytes != 1<<30 || ic.Memcached.Timeout != 100*time.Millisecond || ic.Memcached.MaxItemSize != 1<<20 {
		t.Fatalf("index cache defaults: %+v", ic)
	}
	if cc.Backend != "" || cc.SubrangeSize != 16000 || cc.MaxGetRangeRequests != 3 || cc.AttributesTTL != 168*time.Hour || cc.SubrangeTTL != 24*time.Hour || cc.InMemory.MaxSizeBytes != 1<<30 {
		t.Fatalf("chunks cache defaults: %+v", cc)
	}
	if mc.Backend != "" || mc.TenantsListTTL != 15*time.Minute || mc.TenantBlocksListTTL != 5*time.Minute || mc.ChunksListTTL != 24*time.Hour ||
		mc.MetafileExistsTTL != 2*time.Hour || mc.MetafileDoesntExistTTL != 5*time.Minute || mc.MetafileContentTTL != 24*time.Hour ||
		mc.MetafileMaxSize != 1<<20 || mc.BucketIndexContentTTL != 5*time.Minute || mc.BucketIndexMaxSize != 1<<20 {
		t.Fatalf("metadata cache defaults: %+v", mc)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-blocks-storage.bucket-store.index-cache.backend=redis"}, "-blocks-storage.bucket-store.index-cache.redis.addresses"},
		{[]string{"-blocks-storage.bucket-store.index-cache.backend=memcached"}, "-blocks-storage.bucket-store.index-cache.memcached.addresses"},
		{[]string{"-blocks-storage.bucket-store.index-cache.inmemory.enabled-items=Chunks"}, "-blocks-storage.bucket-store.index-cache.inmemory.enabled-items"},
		{[]string{"-blocks-storage.bucket-store.chunks-cache.backend=memcached"}, "-blocks-storage.bucket-store.chunks-cache.memcached.addresses"},
		{[]string{"-blocks-storage.bucket-store.chunks-cache.backend=inmemory", "-blocks-storage.bucket-store.chunks-cache.subrange-size=0"}, "-blocks-storage.bucket-store.chunks-cache.subrange-size"},
		{[]string{"-blocks-storage.bucket-store.metadata-cache.backend=disk"}, "-blocks-storage.bucket-store.metadata-cache.backend"},
		{[]string{"-blocks-storage.bucket-store.metadata-cache.backend=memcached", "-blocks-storage.bucket-store.metadata-cache.memcached.addresses=m:11211", "-blocks-storage.bucket-store.metadata-cache.memcached.timeout=0s"}, "-blocks-storage.bucket-store.metadata-cache.memcached.timeout"},
		{[]string{"-blocks-storage.bucket-store.metadata-cache.backend=inmemory", "-blocks-storage.bucket-store.metadata-cache.tenants-list-ttl=-1s"}, "-blocks-storage.bucket-store.metadata-cache.tenants-list-ttl"},
	} {
		var c Config
		if err := flagSet(&c).Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: want an error naming %s, got %v", tc.args, tc.flag, err)
		}
	}
}

// queryAll runs the queries compared between stores: Selects of several
// matcher kinds, full and labels-only, and label names and values.
func queryAll(t *testing.T, s *BucketStore) []any {
	t.Helper()
	q := querier(t, s, "t1", minT, maxT)
	var out []any
	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "job", "a")},
		{labels.MustNewMatcher(labels.MatchRegexp, "instance", "i[23]"), labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")},
		{labels.MustNewMatcher(labels.MatchNotEqual, "job", "a"), labels.MustNewMatcher(labels.MatchNotRegexp, "instance", "i1")},
		{labels.MustNewMatcher(labels.MatchEqual, "job", "none")},
	} {
		names, samples := selectAll(t, q, nil, ms...)
		out = append(out, names, samples)
		names, _ = selectAll(t, q, &storage.SelectHints{Start: hour, End: 3 * hour, Func: "series"}, ms...)
		out = append(out, names)
		_, samples = selectAll(t, q, &storage.SelectHints{Start: hour, End: 3 * hour}, ms...)
		out = append(out, samples)
	}
	ctx := context.Background()
	ln, _, err := q.LabelNames(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	lv, _, err := q.LabelValues(ctx, "instance", nil, labels.MustNewMatcher(labels.MatchEqual, "job", "b"))
	if err != nil {
		t.Fatal(err)
	}
	return append(out, ln, lv)
}

func cacheTestBucket(t *testing.T) *countingBucket {
	bkt := newBucket(t)
	val := func(i int, t int64) float64 { return float64(i*1000) + float64(t)/1000 }
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(0, val))), true)
	uploadBlock(t, bkt, "t1", writeBlock(t, asSeries(testSeries(2*hour, val))), true)
	return bkt
}

func inMemoryCaches(cfg Config) Config {
	var d Config
	if err := flagSet(&d).Parse(nil); err != nil {
		panic(err)
	}
	cfg.IndexCache = d.IndexCache
	cfg.ChunksCache, cfg.MetadataCache = d.ChunksCache, d.MetadataCache
	cfg.ChunksCache.Backend, cfg.MetadataCache.Backend = CacheBackendInMemory, CacheBackendInMemory
	// Small subranges, so that chunks span several.
	cfg.ChunksCache.SubrangeSize = 100
	return cfg
}

// TestInMemoryCaches: with all three caches in memory, every answer is the
// one without caches, and repeated queries are served from the caches, as
// their metrics and the bucket's reads show.
func TestInMemoryCaches(t *testing.T) {
	bkt := cacheTestBucket(t)
	plain, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, plain)
	want := queryAll(t, plain)

	cached, reg := newStore(t, inMemoryCaches(testConfig(t)), bkt)
	syncStore(t, cached)
	metaGets := bkt.gets.Load()
	syncStore(t, cached)
	if bkt.gets.Load() != metaGets {
		t.Fatalf("second sync read %d objects; metadata should come from the cache", bkt.gets.Load()-metaGets)
	}
	for _, op := range []string{"iter", "get"} {
		if testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "operation", op) == 0 {
			t.Errorf("no %s hit in the metadata cache", op)
		}
	}

	if got := queryAll(t, cached); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers with caches differ:\n got %v\nwant %v", got, want)
	}
	reqs := testkit.MetricSum(t, reg, "thanos_store_index_cache_requests_total", "item_type", "ExpandedPostings")
	hits := testkit.MetricSum(t, reg, "thanos_store_index_cache_hits_total", "item_type", "ExpandedPostings")
	if reqs == 0 || hits >= reqs {
		t.Fatalf("first queries: %v requests, %v hits", reqs, hits)
	}
	ranges := bkt.ranges.Load()
	rangeHits := testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "operation", "get_range", "config", "chunks")

	if got := queryAll(t, cached); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers from the caches differ:\n got %v\nwant %v", got, want)
	}
	reqs2 := testkit.MetricSum(t, reg, "thanos_store_index_cache_requests_total", "item_type", "ExpandedPostings")
	hits2 := testkit.MetricSum(t, reg, "thanos_store_index_cache_hits_total", "item_type", "ExpandedPostings")
	if hits2-hits != reqs2-reqs {
		t.Fatalf("repeated queries: %v index cache requests, %v hits", reqs2-reqs, hits2-hits)
	}
	if n := bkt.ranges.Load() - ranges; n != 0 {
		t.Fatalf("repeated queries read %d ranges from the bucket", n)
	}
	if testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "operation", "get_range", "config", "chunks") <= rangeHits {
		t.Fatal("no chunks cache hit counted")
	}
	if testkit.MetricSum(t, reg, "thanos_store_index_cache_items", "item_type", "ExpandedPostings") == 0 {
		t.Fatal("no index cache items counted")
	}
}

// TestMemcachedCachesTLS runs the three caches in a real memcached over
// TLS: answers are the uncached ones, repeated queries hit, and with
// memcached down they are misses and queries still answer.
func TestMemcachedCachesTLS(t *testing.T) {
	mc := cachetest.StartMemcachedTLS(t)
	bkt := cacheTestBucket(t)
	plain, _ := newStore(t, testConfig(t), bkt)
	syncStore(t, plain)
	want := queryAll(t, plain)

	cfg := inMemoryCaches(testConfig(t))
	cfg.IndexCache.Backend = CacheBackendMemcached
	cfg.ChunksCache.Backend = CacheBackendMemcached
	cfg.MetadataCache.Backend = CacheBackendMemcached
	for _, m := range []*struct {
		addr *string
		ca   *string
		to   *time.Duration
	}{
		{&cfg.IndexCache.Memcached.Addresses, &cfg.IndexCache.Memcached.TLS.CAPath, &cfg.IndexCache.Memcached.Timeout},
		{&cfg.ChunksCache.Memcached.Addresses, &cfg.ChunksCache.Memcached.TLS.CAPath, &cfg.ChunksCache.Memcached.Timeout},
		{&cfg.MetadataCache.Memcached.Addresses, &cfg.MetadataCache.Memcached.TLS.CAPath, &cfg.MetadataCache.Memcached.Timeout},
	} {
		*m.addr, *m.ca, *m.to = mc.Addr, mc.CAPath, 2*time.Second
	}
	reg := prometheus.NewPedanticRegistry()
	s, err := NewBucketStore(cfg, bkt, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	syncStore(t, s)

	if got := queryAll(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers with caches differ:\n got %v\nwant %v", got, want)
	}
	// Writes are asynchronous: queries hit once they have landed.
	hits := func(item string) float64 {
		if item == "chunks" {
			return testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", "chunks")
		}
		return testkit.MetricSum(t, reg, "thanos_store_index_cache_hits_total", "item_type", item)
	}
	testkit.Eventually(t, 10*time.Second, "index and chunks cache hits", func() bool {
		if got := queryAll(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("answers from memcached differ:\n got %v\nwant %v", got, want)
		}
		return hits("ExpandedPostings") > 0 && hits("chunks") > 0
	})
	testkit.Eventually(t, 10*time.Second, "metadata cache hits", func() bool {
		syncStore(t, s)
		return testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", "metafile") > 0
	})
	if testkit.MetricSum(t, reg, "thanos_memcached_operations_total", "name", "chunks-cache", "operation", "getmulti") == 0 {
		t.Fatal("no memcached operation counted")
	}

	mc.Stop()
	before := hits("ExpandedPostings")
	reqs := testkit.MetricSum(t, reg, "thanos_store_index_cache_requests_total", "item_type", "ExpandedPostings")
	if got := queryAll(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("answers with memcached down differ:\n got %v\nwant %v", got, want)
	}
	if hits("ExpandedPostings") != before || testkit.MetricSum(t, reg, "thanos_store_index_cache_requests_total", "item_type", "ExpandedPostings") == reqs {
		t.Fatal("with memcached down, requests should be counted as misses")
	}
	syncStore(t, s)
}

// TestCachingBucketGetRange compares subrange-cached reads with direct
// ones at many offsets, lengths and request limits, cold and warm.
func TestCachingBucketGetRange(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	data := make([]byte, 10_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	const name = "t1/01J0000000000000000000000/chunks/000001"
	if err := bkt.Upload(ctx, name, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, maxReqs := range []int{0, 1, 2, 3} {
		var cfg Config
		if err := flagSet(&cfg).Parse(nil); err != nil {
			t.Fatal(err)
		}
		cfg.ChunksCache.Backend = CacheBackendInMemory
		cfg.ChunksCache.SubrangeSize = 333
		cfg.ChunksCache.MaxGetRangeRequests = maxReqs
		cb, err := newCachingBucket(bkt, cfg.ChunksCache, MetadataCacheConfig{}, options{}, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			off := rng.Int64N(int64(len(data)) + 10)
			length := 1 + rng.Int64N(3000)
			before := bkt.ranges.Load()
			rc, err := cb.GetRange(ctx, name, off, length)
			if off >= int64(len(data)) {
				// Past the end: the bucket's own answer.
				if err == nil {
					_ = rc.Close()
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if want := data[off:min(off+length, int64(len(data)))]; !bytes.Equal(got, want) {
				t.Fatalf("max %d requests: range %d+%d: %d bytes differ from the object's %d", maxReqs, off, length, len(got), len(want))
			}
			if n := bkt.ranges.Load() - before; maxReqs > 0 && n > int64(maxReqs) {
				t.Fatalf("max %d requests: %d range requests", maxReqs, n)
			}
		}
	}
}

// TestMetadataCachingBucket: the wrapper a querier can use caches
// meta.json content and absence, listings and bucket indexes.
func TestMetadataCachingBucket(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	for name, body := range map[string]string{
		"t1/01J0000000000000000000000/meta.json": `{"version":1}`,
		"t1/bucket-index.json.gz":                "index",
	} {
		if err := bkt.Upload(ctx, name, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	var cfg Config
	if err := flagSet(&cfg).Parse([]string{"-blocks-storage.bucket-store.metadata-cache.backend=inmemory"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	cb, err := NewMetadataCachingBucket(cfg.MetadataCache, bkt, "querier", nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) (string, error) {
		rc, err := cb.Get(ctx, name)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	for range 2 {
		if got, err := read("t1/01J0000000000000000000000/meta.json"); err != nil || got != `{"version":1}` {
			t.Fatalf("meta.json: %q, %v", got, err)
		}
		if got, err := read("t1/bucket-index.json.gz"); err != nil || got != "index" {
			t.Fatalf("bucket index: %q, %v", got, err)
		}
		if _, err := read("t1/01J0000000000000000000000/deletion-mark.json"); !cb.IsObjNotFoundErr(err) {
			t.Fatalf("absent deletion mark: %v", err)
		}
		var names []string
		if err := cb.Iter(ctx, "t1/", func(n string) error { names = append(names, n); return nil }); err != nil || len(names) != 2 {
			t.Fatalf("listing: %v, %v", names, err)
		}
	}
	if n := bkt.gets.Load(); n != 3 {
		t.Fatalf("%d reads from the bucket, want 3", n)
	}
	for _, c := range []string{"metafile", "bucket-index", "tenant-blocks-iter"} {
		if testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "config", c) == 0 {
			t.Errorf("no hit counted for %s", c)
		}
	}
	// Writes go to the bucket.
	if err := cb.Upload(ctx, "t1/x", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if ok, err := bkt.Exists(ctx, "t1/x"); err != nil || !ok {
		t.Fatalf("upload through the wrapper: %v, %v", ok, err)
	}
}

// TestStoreAndQuerierCachesShareARegistry: under -target=all the querier's
// metadata cache registers beside the store-gateway's, told apart by their
// component label.
func TestStoreAndQuerierCachesShareARegistry(t *testing.T) {
	bkt := cacheTestBucket(t)
	cfg := inMemoryCaches(testConfig(t))
	cfg.MetadataCache.Memcached.Addresses = "localhost:1"
	cfg.MetadataCache.Backend = CacheBackendMemcached
	reg := prometheus.NewPedanticRegistry()
	s, err := NewBucketStore(cfg, bkt, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := NewMetadataCachingBucket(cfg.MetadataCache, bkt, "querier", nil, nil, reg); err != nil {
		t.Fatal(err)
	}
	// Memcached is unreachable: every read is a miss, and the sync works.
	syncStore(t, s)
	if got := s.Blocks("t1"); len(got) != 2 {
		t.Fatalf("%d blocks loaded with memcached down, want 2", len(got))
	}
	if testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_requests_total", "component", "store-gateway") == 0 {
		t.Fatal("no metadata cache request counted for the store-gateway")
	}
}

// TestIndexCacheBoundedInBytes: a small in-memory index cache evicts the
// least recently used postings and stays within its size.
func TestIndexCacheBoundedInBytes(t *testing.T) {
	bkt := cacheTestBucket(t)
	cfg := testConfig(t)
	cfg.IndexCache = IndexCacheConfig{Backend: CacheBackendInMemory, InMemory: InMemoryIndexCacheConfig{MaxSizeBytes: 600}}
	s, reg := newStore(t, cfg, bkt)
	syncStore(t, s)
	q := querier(t, s, "t1", minT, maxT)
	for _, inst := range []string{"i1", "i2", "i3", "i1|i2", "i2|i3"} {
		selectAll(t, q, nil, labels.MustNewMatcher(labels.MatchRegexp, "instance", inst))
	}
	if n := testkit.MetricSum(t, reg, "thanos_store_index_cache_items_evicted_total", "item_type", "ExpandedPostings"); n == 0 {
		t.Fatal("no eviction counted")
	}
	if size := testkit.MetricSum(t, reg, "thanos_store_index_cache_items_size_bytes"); size == 0 || size > 600 {
		t.Fatalf("cache holds %v bytes, bound 600", size)
	}
	if added := testkit.MetricSum(t, reg, "thanos_store_index_cache_items_added_total"); added != 10 {
		t.Fatalf("%v items added, want 10 (5 matcher sets, 2 blocks)", added)
	}
}
