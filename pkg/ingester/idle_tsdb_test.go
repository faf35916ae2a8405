package ingester

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// With -blocks-storage.tsdb.close-idle-tsdb-timeout, an idle tenant's TSDB
// is closed and deleted once its head is compacted and its blocks are in
// the bucket, which then answers for all its samples; a tenant still
// pushing keeps its TSDB, and a push after the close opens a new one.
func TestCloseIdleTSDB(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	cfg := shipConfig(t, dir)
	cfg.TSDB.HeadCompactionIdleTimeout = 300 * time.Millisecond
	cfg.TSDB.CloseIdleTSDBTimeout = 600 * time.Millisecond
	h := startHarness(t, cfg, newTestLimits(t, nil), WithBucket(newTestBucket(t, root)))

	start := base - 5*60*1000
	pushed := pushRange(h, "idle", start, base, 15*1000)
	testkit.Eventually(t, 20*time.Second, "the idle tenant's TSDB closed and deleted", func() bool {
		// The active tenant pushes all along.
		pushRange(h, "active", time.Now().UnixMilli(), time.Now().UnixMilli(), 1)
		return !dirExists(t, filepath.Join(dir, "idle")) && h.ing.getTSDB("idle") == nil
	})
	sameCounts(t, "the idle tenant's samples in the bucket", bucketSamples(t, root, "idle"), pushed)
	if h.ing.getTSDB("active") == nil || !dirExists(t, filepath.Join(dir, "active", "wal")) {
		t.Fatal("the active tenant's TSDB was closed")
	}
	checks := h.ing.metrics.idleTSDBChecks
	if v := testutil.ToFloat64(checks.WithLabelValues(idleCheckClosed)); v != 1 {
		t.Errorf(`cortex_ingester_idle_tsdb_checks_total{result="idle_closed"} = %v, want 1`, v)
	}
	if v := testutil.ToFloat64(checks.WithLabelValues(idleCheckNotIdle)); v == 0 {
		t.Error(`cortex_ingester_idle_tsdb_checks_total{result="not_idle"} = 0, want the active tenant's checks`)
	}
	if v := testutil.ToFloat64(h.ing.metrics.memUsers); v != 1 {
		t.Errorf("cortex_ingester_memory_users = %v, want 1", v)
	}

	now := time.Now().UnixMilli()
	pushRange(h, "idle", now, now, 1)
	if got := h.query("idle", now, now, eq("__name__", "m")); len(got) != 2 {
		t.Fatalf("a push after the close: %d series answered, want 2", len(got))
	}
}

// Without shipping, the local blocks are the only copy: an idle TSDB stays.
func TestCloseIdleTSDBNeedsShipping(t *testing.T) {
	dir := t.TempDir()
	cfg := shipConfig(t, dir)
	cfg.TSDB.ShipInterval = 0
	cfg.TSDB.HeadCompactionIdleTimeout = 100 * time.Millisecond
	cfg.TSDB.CloseIdleTSDBTimeout = 100 * time.Millisecond
	h := startHarness(t, cfg, newTestLimits(t, nil))
	pushRange(h, "idle", base-60*1000, base, 15*1000)
	checks := h.ing.metrics.idleTSDBChecks.WithLabelValues(idleCheckShippingDisabled)
	testkit.Eventually(t, 20*time.Second, "idle checks made", func() bool {
		return testutil.ToFloat64(checks) >= 5
	})
	if h.ing.getTSDB("idle") == nil || !dirExists(t, filepath.Join(dir, "idle", "wal")) {
		t.Fatal("an idle TSDB was closed with shipping off")
	}
}
