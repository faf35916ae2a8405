package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestRetentionAndTenantDeletion: retention and tenant deletion empty the
// bucket of what they should and nothing else. Two tenants ship blocks of
// three hours ago and of ten minutes ago; a runtime override then gives
// team-a a one-hour retention, and the compactor deletes team-a's old
// blocks only. Deleting team-a (POST /purger/delete_tenant) then removes
// all of its blocks, its bucket index, its markers and the ingester's
// local TSDB, and its status turns to blocks_deleted=true, while team-b
// answers the same query with the same values and keeps every block.
func TestRetentionAndTenantDeletion(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	dir := t.TempDir()
	bucketDir := filepath.Join(dir, "bucket")
	tsdbDir := filepath.Join(dir, "tsdb")
	runtimeFile := filepath.Join(dir, "runtime.yaml")
	writeRuntime := func(s string) {
		t.Helper()
		if err := os.WriteFile(runtimeFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRuntime("overrides:\n  team-b:\n    compactor_blocks_retention_period: 0s\n")
	testStart := time.Now()
	p, c := startBlocksProcess(t, certs,
		"-blocks-storage.tsdb.dir="+tsdbDir,
		"-blocks-storage.filesystem.dir="+bucketDir,
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-interval=1s",
		"-blocks-storage.bucket-store.ignore-deletion-marks-delay=1s",
		"-compactor.data-dir="+t.TempDir(),
		// One-minute blocks stay as shipped: only retention and deletion
		// change the bucket.
		"-compactor.block-ranges=1m",
		"-compactor.compaction-interval=1s",
		"-compactor.cleanup-interval=1s",
		"-compactor.deletion-delay=2s",
		"-compactor.tenant-cleanup-delay=2s",
		"-runtime-config.file="+runtimeFile,
		"-runtime-config.reload-period=100ms",
	)
	t.Logf("process ready after %v", time.Since(testStart).Round(100*time.Millisecond))
	bkt, err := filesystem.NewBucket(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	now := time.Now()
	oldStart := now.Add(-3 * time.Hour).Truncate(time.Minute).UnixMilli()
	recentStart := now.Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	for _, tenant := range []string{"team-a", "team-b"} {
		// Old samples first: a tenant's head takes samples in time order.
		c.pushScrapes(tenant, "kept", oldStart, 0, 16, 2)    // four minutes
		c.pushScrapes(tenant, "kept", recentStart, 0, 16, 2) // four minutes
	}
	c.flush(p)
	t.Logf("pushed and flushed after %v", time.Since(testStart).Round(100*time.Millisecond))

	const perWindow = 2 * 16 // two series, sixteen scrapes
	began := time.Now()
	var shippedB []string
	p.EventuallyNil(60*time.Second, "both tenants' old and recent blocks in the bucket, each indexed", func() error {
		for _, tenant := range []string{"team-a", "team-b"} {
			blocks, err := tryReadBlocks(bucketDir, tenant)
			if err != nil {
				return err
			}
			old, recent := samplesBefore(blocks, now.Add(-time.Hour).UnixMilli())
			if old != perWindow || recent != perWindow {
				return fmt.Errorf("%s: %d old and %d recent samples in %d blocks, want %d of each", tenant, old, recent, len(blocks), perWindow)
			}
			idx, err := bucketindex.ReadIndex(ctx, bkt, tenant)
			if err != nil {
				return err
			}
			if len(idx.Blocks) != len(blocks) {
				return fmt.Errorf("%s: bucket index lists %d blocks, the bucket holds %d", tenant, len(idx.Blocks), len(blocks))
			}
			if tenant == "team-b" {
				shippedB = blockIDs(blocks)
			}
		}
		return nil
	})
	t.Logf("blocks shipped and indexed after %v", time.Since(began).Round(100*time.Millisecond))

	instant := url.Values{"query": {`count_over_time(kept[4h])`}, "time": {secs(now.UnixMilli())}}
	baselineB := c.query("team-b", "query", instant)
	if len(baselineB.Data.Result) != 2 || fmt.Sprint(baselineB.Data.Result[0].Value[1]) != strconv.Itoa(2*16) {
		t.Fatalf("team-b before: %+v, want two series of %d samples", baselineB.Data, 2*16)
	}

	// A one-hour retention for team-a only, from the runtime configuration.
	writeRuntime("overrides:\n  team-a:\n    compactor_blocks_retention_period: 1h\n  team-b:\n    compactor_blocks_retention_period: 0s\n")
	began = time.Now()
	cutoff := now.Add(-time.Hour).UnixMilli()
	p.EventuallyNil(60*time.Second, "team-a's blocks older than its retention deleted, the recent ones and team-b's kept", func() error {
		blocks, err := tryReadBlocks(bucketDir, "team-a")
		if err != nil {
			return err
		}
		old, recent := samplesBefore(blocks, cutoff)
		if old != 0 || recent != perWindow {
			return fmt.Errorf("team-a: %d old and %d recent samples, want 0 and %d", old, recent, perWindow)
		}
		idx, err := bucketindex.ReadIndex(ctx, bkt, "team-a")
		if err != nil {
			return err
		}
		for _, b := range idx.Blocks {
			if b.MaxTime < cutoff {
				return fmt.Errorf("team-a's bucket index still lists block %s past retention", b.ID)
			}
		}
		return nil
	})
	t.Logf("retention applied after %v", time.Since(began).Round(100*time.Millisecond))
	if got := metricOf(t, c.client, p, `cortex_compactor_blocks_marked_for_deletion_total{reason="retention"}`); got < 1 {
		t.Errorf(`cortex_compactor_blocks_marked_for_deletion_total{reason="retention"} = %v`, got)
	}
	sameBlocks(t, bucketDir, "team-b", shippedB)

	// Tenant deletion.
	if st := deletionStatus(t, c, p, "team-a"); st.BlocksDeleted || st.TenantID != "team-a" {
		t.Fatalf("status before the deletion: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(tsdbDir, "team-a", "wal")); err != nil {
		t.Fatalf("team-a's local TSDB before the deletion: %v", err)
	}
	if code, body := do(t, c.client, http.MethodPost, "https://"+p.HTTPAddr+"/purger/delete_tenant", "team-a", nil); code != http.StatusOK {
		t.Fatalf("POST /purger/delete_tenant: %d %s", code, body)
	}
	began = time.Now()
	p.Eventually(60*time.Second, "delete_tenant_status turning to blocks_deleted=true", func() bool {
		return deletionStatus(t, c, p, "team-a").BlocksDeleted
	})
	t.Logf("blocks_deleted=true after %v", time.Since(began).Round(100*time.Millisecond))
	p.EventuallyNil(60*time.Second, "the ingester's TSDB of team-a deleted", func() error {
		if _, err := os.Stat(filepath.Join(tsdbDir, "team-a")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %v", filepath.Join(tsdbDir, "team-a"), err)
		}
		return nil
	})
	t.Logf("ingester data deleted after %v", time.Since(began).Round(100*time.Millisecond))
	p.EventuallyNil(60*time.Second, "nothing of team-a left in the bucket after -compactor.tenant-cleanup-delay", func() error {
		if _, err := os.Stat(filepath.Join(bucketDir, "team-a")); !errors.Is(err, os.ErrNotExist) {
			var left []string
			_ = filepath.Walk(filepath.Join(bucketDir, "team-a"), func(path string, _ os.FileInfo, _ error) error {
				left = append(left, path)
				return nil
			})
			return fmt.Errorf("left in the bucket: %v", left)
		}
		return nil
	})
	t.Logf("bucket emptied of team-a after %v", time.Since(began).Round(100*time.Millisecond))
	p.EventuallyNil(30*time.Second, "team-a's queries empty: store-gateway and ingester no longer serve it", func() error {
		resp, err := tryQuery(c, "team-a", instant)
		if err != nil {
			return err
		}
		if len(resp.Data.Result) != 0 {
			return fmt.Errorf("team-a still answers %+v", resp.Data.Result)
		}
		return nil
	})
	t.Logf("team-a's queries empty after %v", time.Since(began).Round(100*time.Millisecond))
	p.EventuallyNil(30*time.Second, "the store-gateway holding team-b's blocks only", func() error {
		if got := metricOf(t, c.client, p, "cortex_bucket_store_blocks_loaded"); got != float64(len(shippedB)) {
			return fmt.Errorf("cortex_bucket_store_blocks_loaded %v, want team-b's %d", got, len(shippedB))
		}
		return nil
	})
	if st := deletionStatus(t, c, p, "team-a"); !st.BlocksDeleted {
		t.Fatalf("status after the final cleanup: %+v", st)
	}

	// team-b: the same answer, every block and its index.
	if after := c.query("team-b", "query", instant); !reflect.DeepEqual(after.Data, baselineB.Data) {
		t.Fatalf("team-b after the deletion: %+v, want %+v", after.Data, baselineB.Data)
	}
	sameBlocks(t, bucketDir, "team-b", shippedB)
	if _, err := bucketindex.ReadIndex(ctx, bkt, "team-b"); err != nil {
		t.Fatalf("team-b's bucket index: %v", err)
	}
	if st := deletionStatus(t, c, p, "team-b"); st.BlocksDeleted {
		t.Fatalf("team-b's status: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(tsdbDir, "team-b", "wal")); err != nil {
		t.Fatalf("team-b's local TSDB: %v", err)
	}
}

// samplesBefore sums the samples of the blocks ending before t and of the
// others.
func samplesBefore(blocks []shippedBlock, t int64) (before, after uint64) {
	for _, b := range blocks {
		if b.MaxTime <= t {
			before += b.Stats.NumSamples
		} else {
			after += b.Stats.NumSamples
		}
	}
	return before, after
}

func blockIDs(blocks []shippedBlock) []string {
	ids := make([]string, 0, len(blocks))
	for _, b := range blocks {
		ids = append(ids, b.ULID)
	}
	slices.Sort(ids)
	return ids
}

func sameBlocks(t *testing.T, bucketDir, tenant string, want []string) {
	t.Helper()
	if got := blockIDs(readBlocks(t, bucketDir, tenant)); !slices.Equal(got, want) {
		t.Fatalf("%s's blocks: %v, want %v", tenant, got, want)
	}
}

type deleteTenantStatus struct {
	TenantID      string `json:"tenant_id"`
	BlocksDeleted bool   `json:"blocks_deleted"`
}

// deletionStatus asks GET /purger/delete_tenant_status as tenant.
func deletionStatus(t *testing.T, c *cluster, p *testkit.Cortex, tenant string) deleteTenantStatus {
	t.Helper()
	code, body := do(t, c.client, http.MethodGet, "https://"+p.HTTPAddr+"/purger/delete_tenant_status", tenant, nil)
	var st deleteTenantStatus
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("GET /purger/delete_tenant_status as %s: %d %s", tenant, code, body)
	}
	return st
}

// tryQuery is cluster.query for polling: an error or a failed query is an
// answer to retry on.
func tryQuery(c *cluster, tenantID string, params url.Values) (promResponse, error) {
	var out promResponse
	req, err := http.NewRequest(http.MethodGet, "https://"+c.querier.HTTPAddr+"/prometheus/api/v1/query?"+params.Encode(), nil)
	if err != nil {
		return out, err
	}
	req.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := c.client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		return out, fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	return out, nil
}
