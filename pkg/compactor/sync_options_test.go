package compactor

import (
	"context"
	"encoding/json"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// gatedMetaBucket holds every read of a meta.json until released, counting
// how many are held at once.
type gatedMetaBucket struct {
	objstore.Bucket
	release  chan struct{}
	inflight atomic.Int64
	mu       sync.Mutex
	gated    bool
	maxHeld  int64
}

func (b *gatedMetaBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if path.Base(name) == block.MetaFilename {
		n := b.inflight.Add(1)
		b.mu.Lock()
		if b.gated && n > b.maxHeld {
			b.maxHeld = n
		}
		b.mu.Unlock()
		<-b.release
		defer b.inflight.Add(-1)
	}
	return b.Bucket.Get(ctx, name)
}

// A compaction's planning reads -compactor.block-sync-concurrency
// meta.json files at once, whatever -compactor.meta-sync-concurrency (the
// cleanup's) says.
func TestCompactionReadsMetasBlockSyncConcurrencyAtOnce(t *testing.T) {
	ctx := context.Background()
	raw := newFSBucket(t)
	// Six 2h blocks, merged into 0h-12h once the newest (12h-14h) is past it.
	for h := int64(0); h < 14; h += 2 {
		shipBlock(t, raw, "team-a", 1, h*hour, (h+2)*hour, testStep)
	}
	bkt := &gatedMetaBucket{Bucket: raw, release: make(chan struct{}), gated: true}
	cfg := testConfig(t)
	cfg.BlockSyncConcurrency = 3
	cfg.MetaSyncConcurrency = 1
	c, err := New(cfg, bkt, discard, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.starting(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Compact(ctx) }()
	testkit.Eventually(t, 10*time.Second, "three meta.json reads held at once", func() bool { return bkt.inflight.Load() == 3 })
	bkt.mu.Lock()
	held := bkt.maxHeld
	bkt.gated = false
	bkt.mu.Unlock()
	close(bkt.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if held != 3 {
		t.Fatalf("%d meta.json files read at once of 7 blocks, want -compactor.block-sync-concurrency's 3", held)
	}
	if live := liveBlocks(t, raw, "team-a"); len(live) != 2 || live[0].MaxTime != 12*hour {
		t.Fatalf("live blocks %v, want the six compacted into 0h-12h, and 12h-14h", live)
	}
}

// With -compactor.block-deletion-marks-migration-enabled, a tenant's
// first cleanup copies the deletion marks in its block folders to the
// global markers, so that the bucket index sees the mark of a block it
// had indexed before an older tool marked it; without, it does not.
func TestBlockDeletionMarksMigration(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		ctx := context.Background()
		bkt := newFSBucket(t)
		id := shipBlock(t, bkt, "team-a", 1, 0, 2*hour, testStep)
		cfg := testConfig(t)
		c, err := New(cfg, bkt, discard, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		// Marked in its folder only, as Cortex before 1.7 and Thanos'
		// tools write it, after the index listed the block.
		mark, err := json.Marshal(block.DeletionMark{ID: id, Version: 1, DeletionTime: time.Now().Unix()})
		if err != nil {
			t.Fatal(err)
		}
		if err := bkt.Upload(ctx, path.Join("team-a", id.String(), block.DeletionMarkFilename), strings.NewReader(string(mark))); err != nil {
			t.Fatal(err)
		}

		cfg.BlockDeletionMarksMigrationEnabled = enabled
		restarted, err := New(cfg, bkt, discard, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := restarted.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		global, err := bkt.Exists(ctx, path.Join("team-a", block.GlobalDeletionMarkPath(id)))
		if err != nil {
			t.Fatal(err)
		}
		idx, err := bucketindex.ReadIndex(ctx, bkt, "team-a")
		if err != nil {
			t.Fatal(err)
		}
		if global != enabled || (len(idx.BlockDeletionMarks) == 1) != enabled {
			t.Fatalf("migration %v: global mark %v, index marks %v", enabled, global, idx.BlockDeletionMarks)
		}
		if enabled && (idx.BlockDeletionMarks[0].ID != id || idx.BlockDeletionMarks[0].DeletionTime == 0) {
			t.Fatalf("index marks %v, want block %s's", idx.BlockDeletionMarks, id)
		}
	}
}

// countingGets counts the bucket's reads of each object.
type countingGets struct {
	objstore.Bucket
	mu   sync.Mutex
	gets map[string]int
}

func (b *countingGets) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	b.gets[name]++
	b.mu.Unlock()
	return b.Bucket.Get(ctx, name)
}

func (b *countingGets) count(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gets[name]
}

func metadataCache(t *testing.T) storegateway.MetadataCacheConfig {
	t.Helper()
	var cfg storegateway.MetadataCacheConfig
	cfg.RegisterFlags(newFlagSet())
	cfg.Backend = storegateway.CacheBackendInMemory
	return cfg
}

// With -compactor.caching-bucket-enabled a compaction reads meta.json
// through the metadata cache, but never a deletion mark: a block an older
// tool marked in its folder after the compaction cached what it read of it
// is not compacted. The store-gateway's caching bucket, which caches
// deletion marks, would have merged it (its cached block listing, which
// would hide the new block, is turned off to show it).
func TestCompactionCachingBucket(t *testing.T) {
	for _, tc := range []struct {
		name      string
		wrap      func(objstore.Bucket, prometheus.Registerer) (objstore.Bucket, error)
		compacted bool
	}{
		{"compactor's", func(b objstore.Bucket, reg prometheus.Registerer) (objstore.Bucket, error) {
			return storegateway.NewCompactorCachingBucket(metadataCache(t), false, b, "compactor", nil, discard, reg)
		}, false},
		{"store-gateway's, listing blocks uncached", func(b objstore.Bucket, reg prometheus.Registerer) (objstore.Bucket, error) {
			cfg := metadataCache(t)
			cfg.TenantBlocksListTTL = 0
			return storegateway.NewMetadataCachingBucket(cfg, b, "compactor", nil, discard, reg)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			raw := &countingGets{Bucket: newFSBucket(t), gets: map[string]int{}}
			reg := prometheus.NewPedanticRegistry()
			cached, err := tc.wrap(raw, reg)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t)
			compact := func() {
				t.Helper()
				// A new compactor each pass: nothing remembered but the cache.
				c, err := New(cfg, raw, discard, prometheus.NewRegistry(), WithCachingBuckets(cached, nil))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.starting(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.Compact(ctx); err != nil {
					t.Fatal(err)
				}
			}
			x := shipBlock(t, raw, "team-a", 2, 0, 2*hour, testStep)
			// A later block, so that 0h-2h is not the newest range.
			z := shipBlock(t, raw, "team-a", 2, 12*hour, 14*hour, testStep)
			compact()
			metaX := path.Join("team-a", x.String(), block.MetaFilename)
			if n := raw.count(metaX); n != 1 {
				t.Fatalf("meta.json of block %s read %d times from the bucket, want 1", x, n)
			}

			mark, err := json.Marshal(block.DeletionMark{ID: x, Version: 1, DeletionTime: time.Now().Unix()})
			if err != nil {
				t.Fatal(err)
			}
			if err := raw.Upload(ctx, path.Join("team-a", x.String(), block.DeletionMarkFilename), strings.NewReader(string(mark))); err != nil {
				t.Fatal(err)
			}
			y := shipBlock(t, raw, "team-a", 2, 0, 2*hour, testStep)
			compact()

			if n := raw.count(metaX); n != 1 {
				t.Errorf("meta.json of block %s read %d times from the bucket, want once: cached", x, n)
			}
			if hits := testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "component", "compactor", "operation", "get", "config", "metafile"); hits < 1 {
				t.Errorf("%v meta.json cache hits, want at least 1", hits)
			}
			live := liveBlocks(t, raw, "team-a")
			merged := len(live) == 2 && live[0].ID != x && live[0].ID != y && live[1].ID == z
			if merged != tc.compacted {
				t.Fatalf("live blocks %v after block %s was marked for deletion: merged %v, want %v", live, x, merged, tc.compacted)
			}
		})
	}
}

// With -compactor.cleaner-caching-bucket-enabled the cleanup reads
// meta.json content through the cache, but reads the tenant deletion
// mark, whose finish time it writes, from the bucket every time.
func TestCleanerCachingBucket(t *testing.T) {
	ctx := context.Background()
	raw := &countingGets{Bucket: newFSBucket(t), gets: map[string]int{}}
	reg := prometheus.NewPedanticRegistry()
	cached, err := storegateway.NewCompactorCachingBucket(metadataCache(t), true, raw, "cleaner", nil, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cleanup := func() {
		t.Helper()
		c, err := New(cfg, raw, discard, prometheus.NewRegistry(), WithCachingBuckets(nil, cached))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	x := shipBlock(t, raw, "team-a", 1, 0, 2*hour, testStep)
	cleanup()
	// Without the bucket index, the next cleanup reads every meta.json.
	if err := bucketindex.DeleteIndex(ctx, raw, "team-a"); err != nil {
		t.Fatal(err)
	}
	cleanup()
	metaX := path.Join("team-a", x.String(), block.MetaFilename)
	if n := raw.count(metaX); n != 1 {
		t.Errorf("meta.json of block %s read %d times from the bucket, want once: cached", x, n)
	}
	if hits := testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_hits_total", "component", "cleaner", "operation", "get", "config", "metafile"); hits != 1 {
		t.Errorf("%v meta.json cache hits, want 1", hits)
	}
	if n := testkit.MetricSum(t, reg, "thanos_store_bucket_cache_operation_requests_total", "component", "cleaner", "operation", "exists"); n != 0 {
		t.Errorf("%v existence checks through the cache, want none: the cleanup caches no existence", n)
	}
	markPath := bucketindex.TenantDeletionMarkPath("team-a")
	before := raw.count(markPath)
	cleanup()
	cleanup()
	if n := raw.count(markPath) - before; n != 2 {
		t.Errorf("tenant deletion mark read %d times from the bucket in two cleanups, want 2: never cached", n)
	}
}
