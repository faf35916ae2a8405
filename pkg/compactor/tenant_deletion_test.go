package compactor

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// allFiles lists every object under prefix, recursively.
func allFiles(t *testing.T, bkt objstore.Bucket, prefix string) []string {
	t.Helper()
	var names []string
	if err := bkt.Iter(context.Background(), prefix, func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// A tenant marked for deletion is not compacted; the cleanup deletes its
// blocks and bucket index at once, then, after -compactor.tenant-cleanup-delay,
// the rest of it. Another tenant keeps everything.
func TestTenantDeletion(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	// Two replicas each: compaction would merge them.
	for range 2 {
		shipBlock(t, bkt, "team-a", 2, 0, 2*hour, testStep)
		shipBlock(t, bkt, "team-b", 2, 0, 2*hour, testStep)
	}
	cfg := testConfig(t)
	cfg.DeletionDelay = time.Hour
	cfg.TenantCleanupDelay = time.Hour
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, bkt, discard, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testkit.MetricSum(t, reg, "cortex_bucket_blocks_count", "user", "team-a"); got != 2 {
		t.Fatalf("cortex_bucket_blocks_count{user=team-a} = %v before the deletion, want 2", got)
	}

	requested := time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := bucketindex.WriteTenantDeletionMark(ctx, bkt, "team-a", bucketindex.NewTenantDeletionMark(requested)); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(blockDirs(t, bkt, "team-a")); n != 2 {
		t.Fatalf("the marked tenant was compacted: %d blocks, want its 2 replicas untouched", n)
	}
	if n := len(blockDirs(t, bkt, "team-b")); n != 3 {
		t.Fatalf("team-b: %d block directories after compaction, want the 2 sources (marked) and the merged block", n)
	}

	before := testkit.MetricSum(t, reg, "cortex_compactor_blocks_cleaned_total")
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testkit.MetricSum(t, reg, "cortex_compactor_blocks_cleaned_total") - before; got != 2 {
		t.Fatalf("cortex_compactor_blocks_cleaned_total grew by %v, want 2", got)
	}
	// Only the deletion mark is left, with the time the blocks went.
	if got, want := allFiles(t, bkt, "team-a"), []string{"team-a/markers/tenant-deletion-mark.json"}; !slices.Equal(got, want) {
		t.Fatalf("team-a holds %v, want only %v", got, want)
	}
	if _, err := bucketindex.ReadIndex(ctx, bkt, "team-a"); !errors.Is(err, bucketindex.ErrIndexNotFound) {
		t.Fatalf("team-a's bucket index: %v, want it deleted", err)
	}
	mark, err := bucketindex.ReadTenantDeletionMark(ctx, bkt, "team-a")
	if err != nil || mark == nil || mark.DeletionTime != requested.Unix() || mark.FinishedTime < requested.Unix() {
		t.Fatalf("mark after the deletion: %+v, %v", mark, err)
	}
	if got := testkit.MetricValues(t, reg, "cortex_bucket_blocks_count"); len(got) != 1 {
		t.Fatalf("cortex_bucket_blocks_count series %v, want team-b's only", got)
	}
	// The other tenant keeps its blocks (the merged one and the marked
	// sources, within their deletion delay) and its index.
	if n := len(blockDirs(t, bkt, "team-b")); n != 3 {
		t.Fatalf("team-b: %d block directories, want 3", n)
	}
	if idx, err := bucketindex.ReadIndex(ctx, bkt, "team-b"); err != nil || len(idx.Blocks) != 3 {
		t.Fatalf("team-b's index: %v, %v", idx, err)
	}

	// Within -compactor.tenant-cleanup-delay the mark stays; after it,
	// nothing of the tenant is left.
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := bucketindex.TenantDeletionMarkExists(ctx, bkt, "team-a"); !ok {
		t.Fatal("the deletion mark went within -compactor.tenant-cleanup-delay")
	}
	c.cfg.TenantCleanupDelay = 0
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := allFiles(t, bkt, "team-a"); len(got) != 0 {
		t.Fatalf("team-a still holds %v", got)
	}
	tenants, err := c.tenants(ctx)
	if err != nil || !slices.Equal(tenants, []string{"team-b"}) {
		t.Fatalf("tenants in the bucket: %v, %v; want team-b only", tenants, err)
	}
}

// A block an ingester ships after the deletion is deleted by the next
// cleanup, and the finished time moves on.
func TestTenantDeletionBlockShippedLate(t *testing.T) {
	ctx := context.Background()
	bkt := newFSBucket(t)
	if err := bucketindex.WriteTenantDeletionMark(ctx, bkt, "team-a", &bucketindex.TenantDeletionMark{DeletionTime: 100, FinishedTime: 200}); err != nil {
		t.Fatal(err)
	}
	shipBlock(t, bkt, "team-a", 1, 0, 2*hour, testStep)
	cfg := testConfig(t)
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(blockDirs(t, bkt, "team-a")); n != 0 {
		t.Fatalf("%d blocks left", n)
	}
	mark, err := bucketindex.ReadTenantDeletionMark(ctx, bkt, "team-a")
	if err != nil || mark == nil || mark.FinishedTime <= 200 {
		t.Fatalf("mark %+v, %v: want the finished time moved on", mark, err)
	}
}
