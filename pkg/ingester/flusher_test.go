package ingester

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startFlusher starts NewForFlusher's ingester on cfg's directory.
func startFlusher(t *testing.T, cfg Config, limits *testLimits, bkt *testBucket) *Ingester {
	t.Helper()
	ing, err := NewForFlusher(cfg, limits.overridesFor(), testLogger(t), prometheus.NewRegistry(), WithBucket(bkt))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), ing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	return ing
}

// An ingester stopped without flushing leaves its samples in the WAL; the
// flusher's ingester replays it, compacts the heads into blocks and ships
// them. When the bucket fails, Flush names the tenant and block, the block
// stays on disk, and the next flusher ships it.
func TestFlusherShipsWhatAnIngesterLeft(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := testConfig(t, dir, newKV(t))
	cfg.TSDB.ShipInterval = time.Hour
	limits := newTestLimits(t, nil)
	bkt := newTestBucket(t, root)
	h := startHarness(t, cfg, limits, WithBucket(bkt))
	a := pushRange(h, "a", base-30*60*1000, base, 30*1000)
	b := pushRange(h, "b", base-10*60*1000, base, 60*1000)
	h.stop()
	for _, tenant := range []string{"a", "b"} {
		if got := bucketBlocks(t, root, tenant); len(got) != 0 {
			t.Fatalf("tenant %s: blocks %v shipped before the flusher ran", tenant, got)
		}
	}

	// The bucket refuses uploads: the heads are compacted, and the error
	// names each tenant and block that did not go.
	bkt.down.Store(true)
	f := startFlusher(t, cfg, limits, bkt)
	err := f.Flush(context.Background())
	if err == nil {
		t.Fatal("Flush with the bucket down: no error")
	}
	for _, tenant := range []string{"a", "b"} {
		u := f.getTSDB(tenant)
		if u == nil {
			t.Fatalf("tenant %s: TSDB not opened", tenant)
		}
		ids := localBlocks(u)
		if len(ids) == 0 || u.db.Head().NumSeries() != 0 {
			t.Fatalf("tenant %s: blocks %v, %d series left in the head, want the head compacted", tenant, ids, u.db.Head().NumSeries())
		}
		if want := "uploading block " + ids[0] + ` of tenant "` + tenant + `"`; !strings.Contains(err.Error(), want) {
			t.Errorf("Flush error %q does not name %q", err, want)
		}
	}
	if err := services.StopAndAwaitTerminated(context.Background(), f); err != nil {
		t.Fatal(err)
	}

	// The next flusher finds the blocks on disk, not in the record, and
	// ships them.
	bkt.down.Store(false)
	f = startFlusher(t, cfg, limits, bkt)
	if err := f.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	sameCounts(t, "tenant a in the bucket", bucketSamples(t, root, "a"), a)
	sameCounts(t, "tenant b in the bucket", bucketSamples(t, root, "b"), b)
	for _, tenant := range []string{"a", "b"} {
		if got := bucketBlocks(t, root, tenant); !slices.Equal(readShipped(t, dir, tenant), got) {
			t.Errorf("tenant %s: record %v, bucket %v", tenant, readShipped(t, dir, tenant), got)
		}
	}
	if got := testutil.ToFloat64(f.metrics.shipperUploads); got != float64(len(bucketBlocks(t, root, "a"))+len(bucketBlocks(t, root, "b"))) {
		t.Errorf("cortex_ingester_shipper_uploads_total %v, want one per block", got)
	}
	// The flusher took no part in the ring.
	if f.lifecycler != nil {
		t.Error("the flusher's ingester has a ring lifecycler")
	}
}

func TestFlusherNeedsTheTSDBDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	cfg := testConfig(t, missing, newKV(t))
	ing, err := NewForFlusher(cfg, newTestLimits(t, nil).overridesFor(), testLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	err = services.StartAndAwaitRunning(context.Background(), ing)
	if err == nil || !strings.Contains(err.Error(), `-blocks-storage.tsdb.dir "`+missing+`"`) {
		t.Fatalf("start on a missing directory: %v, want an error naming -blocks-storage.tsdb.dir", err)
	}
	if err := ing.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "ingester is failed") {
		t.Errorf("Flush of a failed ingester: %v", err)
	}
}
