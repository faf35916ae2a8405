package ingester

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func dirExists(t *testing.T, dir string) bool {
	t.Helper()
	_, err := os.Stat(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// An ingester that finds a tenant's deletion mark stops shipping the
// tenant and deletes its local TSDB; the other tenants keep theirs.
func TestTenantDeletionRemovesLocalData(t *testing.T) {
	ctx := context.Background()
	dir, root := t.TempDir(), t.TempDir()
	cfg := shipConfig(t, dir)
	bkt := newTestBucket(t, root)
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(bkt))

	start := base - 5*60*1000
	pushRange(h, "tenant-a", start, base, 15*1000)
	pushedB := pushRange(h, "tenant-b", start, base, 15*1000)
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		u := h.ing.getTSDB(tenant)
		testkit.Eventually(t, 20*time.Second, tenant+"'s blocks shipped", func() bool {
			return len(localBlocks(u)) > 0 && slices.Equal(readShipped(t, dir, tenant), localBlocks(u))
		})
	}
	shippedA := bucketBlocks(t, root, "tenant-a")
	if err := bucketindex.WriteTenantDeletionMark(ctx, bkt, "tenant-a", bucketindex.NewTenantDeletionMark(time.Now())); err != nil {
		t.Fatal(err)
	}

	testkit.Eventually(t, 20*time.Second, "tenant-a's local TSDB deleted", func() bool {
		return !dirExists(t, filepath.Join(dir, "tenant-a")) && h.ing.getTSDB("tenant-a") == nil
	})
	if got := h.query("tenant-a", start, base, eq("__name__", "m")); len(got) != 0 {
		t.Fatalf("tenant-a still answers %d series", len(got))
	}
	if v := testutil.ToFloat64(h.ing.metrics.memUsers); v != 1 {
		t.Errorf("cortex_ingester_memory_users = %v, want 1", v)
	}
	// tenant-b keeps its TSDB and every sample.
	if !dirExists(t, filepath.Join(dir, "tenant-b", "wal")) {
		t.Fatal("tenant-b's WAL was deleted")
	}
	got := 0
	for _, s := range h.query("tenant-b", start, base, eq("__name__", "m")) {
		got += len(s.Samples)
	}
	if got != len(pushedB) {
		t.Fatalf("tenant-b answers %d samples, want the %d pushed", got, len(pushedB))
	}

	// Samples pushed while the mark exists open a new TSDB, which is
	// deleted again and never shipped.
	pushRange(h, "tenant-a", start, base, 15*1000)
	testkit.Eventually(t, 20*time.Second, "tenant-a's new TSDB deleted too", func() bool {
		return !dirExists(t, filepath.Join(dir, "tenant-a")) && h.ing.getTSDB("tenant-a") == nil
	})
	if got := bucketBlocks(t, root, "tenant-a"); !slices.Equal(got, shippedA) {
		t.Fatalf("tenant-a's blocks in the bucket: %v, want only the %v shipped before the mark", got, shippedA)
	}
}

// A tenant marked before its first block is cut ships nothing.
func TestTenantMarkedBeforeShippingShipsNothing(t *testing.T) {
	ctx := context.Background()
	dir, root := t.TempDir(), t.TempDir()
	bkt := newTestBucket(t, root)
	if err := bucketindex.WriteTenantDeletionMark(ctx, bkt, "tenant-a", bucketindex.NewTenantDeletionMark(time.Now())); err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, shipConfig(t, dir), newTestLimits(t, nil), WithBucket(bkt))
	pushRange(h, "tenant-a", base-5*60*1000, base, 15*1000)
	testkit.Eventually(t, 20*time.Second, "tenant-a's local TSDB deleted", func() bool {
		return !dirExists(t, filepath.Join(dir, "tenant-a")) && h.ing.getTSDB("tenant-a") == nil
	})
	if got := bucketBlocks(t, root, "tenant-a"); len(got) != 0 {
		t.Fatalf("blocks of a tenant marked for deletion shipped: %v", got)
	}
}
