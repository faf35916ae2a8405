package storegateway

import (
	"context"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
)

// With -blocks-storage.bucket-store.metadata-cache.partitioned-groups-list-ttl
// the compactor's cleanup lists a tenant's partitioned-groups/ folder from
// the cache until the TTL passes; the compaction always lists the bucket.
func TestCompactorCachesPartitionedGroupsListing(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	var cfg MetadataCacheConfig
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	if cfg.PartitionedGroupsListTTL != 0 {
		t.Fatalf("default TTL %s, want Cortex's 0", cfg.PartitionedGroupsListTTL)
	}
	cfg.Backend = CacheBackendInMemory
	cfg.PartitionedGroupsListTTL = time.Hour
	list := func(b objstore.Bucket) []string {
		t.Helper()
		var names []string
		if err := objstore.NewPrefixedBucket(b, "team-a").Iter(ctx, "partitioned-groups", func(n string) error {
			names = append(names, n)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names
	}
	if err := bkt.Upload(ctx, "team-a/partitioned-groups/1.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	cleaner, err := NewCompactorCachingBucket(cfg, true, bkt, "cleaner", nil, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	compaction, err := NewCompactorCachingBucket(cfg, false, bkt, "compactor", nil, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	first := list(cleaner)
	if err := bkt.Upload(ctx, "team-a/partitioned-groups/2.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if got := list(cleaner); !slices.Equal(got, first) || len(got) != 1 {
		t.Fatalf("cleaner's second listing %v, want the cached %v", got, first)
	}
	if got := list(compaction); len(got) != 2 {
		t.Fatalf("compaction's listing %v, want both plans from the bucket", got)
	}
	if err := (&MetadataCacheConfig{PartitionedGroupsListTTL: -time.Second, BucketCacheBackend: cfg.BucketCacheBackend}).Validate(); err == nil || !strings.Contains(err.Error(), "-blocks-storage.bucket-store.metadata-cache.partitioned-groups-list-ttl must not be negative") {
		t.Fatalf("negative TTL: %v", err)
	}
}
