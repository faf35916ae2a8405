package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestCompactorsShardTenants: two compactors on a gossiped compactor ring
// (the only memberlist ring of their processes, over mutual TLS) split the
// tenants: each compacts some, and every tenant is compacted once.
func TestCompactorsShardTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	bucketDir := filepath.Join(c.dir, "bucket")
	var compactors []*testkit.Cortex
	for i := range 2 {
		compactors = append(compactors, c.start("-target=compactor",
			// The ingester ring is not gossiped: the compactor ring alone
			// needs the gossip KV.
			"-ring.store=inmemory",
			"-blocks-storage.filesystem.dir="+bucketDir,
			"-compactor.data-dir="+t.TempDir(),
			"-compactor.compaction-interval=1s",
			"-compactor.cleanup-interval=1s",
			"-compactor.deletion-delay=0s",
			"-compactor.sharding-enabled",
			"-compactor.ring.store=memberlist",
			"-compactor.ring.instance-id=compactor-"+itoa(i),
			"-compactor.ring.instance-addr=127.0.0.1",
			"-compactor.ring.heartbeat-period=1s",
			"-compactor.ring.wait-stability-min-duration=0s",
		))
	}
	for _, p := range compactors {
		waitReady(p, c.client)
	}
	for _, p := range compactors {
		p.EventuallyNil(30*time.Second, "both compactors ACTIVE on the ring page", func() error {
			code, page := tryGet(c.client, "https://"+p.HTTPAddr+"/compactor/ring")
			if code != http.StatusOK || strings.Count(page, "ACTIVE") < 2 || !strings.Contains(page, "compactor-0") || !strings.Contains(page, "compactor-1") {
				return fmt.Errorf("GET /compactor/ring: %d %s", code, page)
			}
			return nil
		})
	}

	// Two overlapping replicas per tenant, written once both compactors
	// are in the ring: one compaction each merges them.
	bkt, err := filesystem.NewBucket(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	const tenants = 8
	for i := range tenants {
		tenant := "team-" + itoa(i)
		for range 2 {
			uploadBlock(t, bkt, tenant)
		}
	}
	compactions := func(p *testkit.Cortex) float64 {
		return metricOf(t, c.client, p, "cortex_compactor_group_compactions_total")
	}
	compactors[0].EventuallyNil(60*time.Second, "every tenant's replicas merged, by one compactor each", func() error {
		for i := range tenants {
			blocks, err := tryReadBlocks(bucketDir, "team-"+itoa(i))
			if err != nil {
				return err
			}
			if len(blocks) != 1 {
				return fmt.Errorf("team-%d: %d blocks", i, len(blocks))
			}
		}
		if a, b := compactions(compactors[0]), compactions(compactors[1]); a+b != tenants || a == 0 || b == 0 {
			return fmt.Errorf("compactions: %v and %v, want %d shared by both", a, b, tenants)
		}
		return nil
	})
}

// uploadBlock writes a two-hour block of one series, three hours old, to
// the tenant's directory as an ingester would ship it.
func uploadBlock(t *testing.T, bkt objstore.Bucket, tenant string) {
	t.Helper()
	uploadBlockOf(t, bkt, tenant, labels.FromStrings("__name__", "sharded", "tenant", tenant))
}

// uploadBlockOf writes a two-hour block of the series, a sample a minute,
// three to five hours old, to the tenant's directory as an ingester would
// ship it.
func uploadBlockOf(t *testing.T, bkt objstore.Bucket, tenant string, series ...labels.Labels) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	rangeMs := (2 * time.Hour).Milliseconds()
	minT := time.Now().Add(-5*time.Hour).UnixMilli() / rangeMs * rangeMs
	w, err := tsdb.NewBlockWriter(discard(), dir, rangeMs)
	if err != nil {
		t.Fatal(err)
	}
	app := w.Appender(ctx)
	for _, ls := range series {
		for ts := minT; ts < minT+rangeMs; ts += 60_000 {
			if _, err := app.Append(0, ls, ts, float64(ts)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	id, err := w.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	thanos := block.ThanosMeta{Labels: map[string]string{block.TenantIDExternalLabel: tenant}, Source: block.SourceReceive}
	if err := block.Upload(ctx, objstore.NewPrefixedBucket(bkt, tenant), filepath.Join(dir, id.String()), thanos); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
}
